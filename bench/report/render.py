"""Render the aggregated cells: a terminal table, reports/<suite>/table.md and results.csv."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.config import Suite
from bench.train import EvalRecipe
from bench.report.aggregate import DDOF

MISSING = "–"


def cell_text(row: pd.Series) -> str:
    """'mean ± std', '–' when there is no run, and '(n=k/N)' when runs are missing."""
    if row["n"] == 0 or math.isnan(row["mean"]):
        return MISSING
    text = f"{row['mean']:.1f} ± {row['std']:.1f}"
    if row["n"] < row["n_expected"]:
        text += f" (n={row['n']}/{row['n_expected']})"
    return text


def pivot_tables(cells: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """One table per evaluation architecture: methods as rows, dataset x IPC as columns."""
    tables = {}
    for arch, group in cells.groupby("arch", sort=False):
        group = group.assign(text=group.apply(cell_text, axis=1),
                             column=group["dataset"] + " IPC " + group["ipc"].astype(str))
        table = group.pivot(index="method", columns="column", values="text")
        table = table.loc[group["method"].unique(), group["column"].unique()]
        tables[arch] = table.rename_axis(index="Method", columns=None)
    return tables


def recipe_text(preset: str, r: EvalRecipe) -> str:
    lr = "the learned lr stored with the set" if r.lr == "learned" else f"lr {r.lr}"
    return (f"preset '{preset}': {r.epochs} epochs (+1), SGD {lr}, momentum {r.momentum}, weight decay "
            f"{r.weight_decay}, batch {r.batch_size}, lr x{r.decay_factor} at epoch {r.decay_epoch}, "
            f"augmentation {r.augment}")


def runtime_table(cells: pd.DataFrame) -> pd.DataFrame:
    """Cost of each synthetic set: stored size as % of the training set, and seconds to distill it
    (+ shared expert stages)."""
    def text(row: pd.Series) -> str:
        if pd.isna(row["distill_time_s"]):
            return MISSING
        expert = f" (+{row['expert_time_s']:.0f} experts)" if row["expert_time_s"] else ""
        ratio = MISSING if pd.isna(row["ratio_pct"]) else f"{row['ratio_pct']:.2f}%"
        return f"{ratio}, {row['distill_time_s']:.1f}s{expert}"
    first = cells.drop_duplicates(["method", "dataset", "ipc"])
    first = first.assign(text=first.apply(text, axis=1),
                         column=first["dataset"] + " IPC " + first["ipc"].astype(str))
    table = first.pivot(index="method", columns="column", values="text")
    return table.loc[first["method"].unique(), first["column"].unique()].rename_axis(index="Method", columns=None)


def notes(suite: Suite) -> list[str]:
    recipes: dict[str, list[str]] = {}
    for m in suite.methods:
        recipes.setdefault(recipe_text(m.preset, m.recipe), []).append(m.label)
    if len(recipes) == 1:
        evaluation = [f"Evaluation {next(iter(recipes))}."]
    else:
        evaluation = [f"Evaluation of {', '.join(labels)}: {text}." for text, labels in recipes.items()]
    return [
        "Accuracy (%) is the test accuracy after the last training epoch of a network trained from scratch on "
        "the synthetic set (never the best epoch).",
        f"Cells show mean ± std over the runs of the cell (distill seeds {list(suite.distill_seeds)} x "
        f"evaluation seeds {list(suite.seeds)}); std is the population standard deviation (ddof={DDOF}), as "
        "np.std in the reference code.",
        f"{MISSING} marks a cell with no result; (n=k/N) marks a cell with k of its N planned runs.",
        *evaluation,
    ]


def markdown(suite: Suite, tables: dict[str, pd.DataFrame], runtime: pd.DataFrame) -> str:
    lines = [f"# {suite.name}", ""]
    if suite.description:
        lines += [suite.description.strip(), ""]
    for arch, table in tables.items():
        lines += [f"## Evaluated on {arch}", "", tabulate(table, headers="keys", tablefmt="github"), ""]
    lines += ["## Cost: stored bytes as % of the training set; seconds to distill one synthetic set "
              "(+ shared expert stages, once per stage)", "",
              tabulate(runtime, headers="keys", tablefmt="github"), ""]
    lines += ["Notes:", ""] + [f"- {n}" for n in notes(suite)]
    return "\n".join(lines) + "\n"


def terminal(tables: dict[str, pd.DataFrame], runtime: pd.DataFrame) -> str:
    parts = [f"Evaluated on {arch}\n{tabulate(t, headers='keys', tablefmt='simple')}" for arch, t in tables.items()]
    parts.append(f"Size (% of training set) and seconds per synthetic set\n"
                 f"{tabulate(runtime, headers='keys', tablefmt='simple')}")
    return "\n\n".join(parts)


def write_report(suite: Suite, cells: pd.DataFrame, out_dir: Path) -> str:
    """Write table.md and results.csv under out_dir; return the terminal rendering."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables, runtime = pivot_tables(cells), runtime_table(cells)
    (out_dir / "table.md").write_text(markdown(suite, tables, runtime), encoding="utf-8")
    cells.to_csv(out_dir / "results.csv", index=False, float_format="%.4f")
    return terminal(tables, runtime)
