"""DD-Ranking's fairness scores (arXiv 2505.13300; NUS-HPC-AI-Lab/DD-Ranking `ddranking/metrics`): how much of a
synthetic set's accuracy its images earn, beside random real images evaluated the same way.

For a method cell (a set evaluated under a recipe and label regime), from the cells of the same suite:
- IOR, improvement over random: Acc(syn, regime) − Acc(random real images at the same IPC, same recipe and regime);
- HLR, hard-label recovery: Acc(full training set, hard labels) − Acc(syn, hard labels), the same protocol;
- LRS, label-robust score: alpha = w·IOR − (1 − w)·HLR, LRS = (e^alpha − e^−1) / (e − e^−1), w = 0.5;
- ARS, augmentation-robust score: beta = gamma·IOR(with augmentation) + (1 − gamma)·IOR(without), normalised as
  LRS, gamma = 0.5.
The weights are DD-Ranking's defaults (`lrs_lambda`, `ars_lambda` 0.5) and a suite's `report: {fairness:
{lrs_weight, ars_weight}}`. Differences enter alpha and beta as fractions (DD-Ranking's docs put alpha in
[-1, 1] and LRS in [0, 1]; its code feeds percentage points, which leaves LRS unbounded), and the reports show
LRS and ARS in %. They are computed from the cells' means over the same seeds; DD-Ranking averages per-run
scores, which for LRS and ARS differs by the convexity of exp (small when the runs agree).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from bench.report.inputs import MethodOptions, ReportOptions
from bench.report.model import MISSING, Cell, Group, Row, Section, Table
from bench.report.views import ExtraColumns, _acc_cell

REGIMES = ("hard", "soft", "teacher")


def _normalised(x: float) -> float:
    """DD-Ranking's map of a weighted score in [-1, 1] to [0, 1]."""
    return (math.exp(x) - math.exp(-1)) / (math.e - math.exp(-1))


def improvement_over_random(acc: float, random_acc: float) -> float:
    return acc - random_acc


def hard_label_recovery(whole_acc: float, hard_acc: float) -> float:
    return whole_acc - hard_acc


def label_robust_score(ior: float, hlr: float, weight: float = 0.5) -> float:
    """LRS in [0, 1] from IOR and HLR in accuracy points (%)."""
    return _normalised((weight * ior - (1 - weight) * hlr) / 100)


def augmentation_robust_score(ior_aug: float, ior_bare: float, weight: float = 0.5) -> float:
    """ARS in [0, 1] from the IOR with and without augmentation, in accuracy points (%)."""
    return _normalised((weight * ior_aug + (1 - weight) * ior_bare) / 100)


NEEDS = {
    "random": "Random, IOR: a `random` entry evaluated with the same recipe and regime (`report: {fairness: true}` "
              "adds it; under `labels: soft` random real images would need soft labels of their own, which bench's "
              "`random` does not store)",
    "hard": "HLR, LRS: an entry of the same method and params under `labels: hard` (`report: {fairness: true}` "
            "adds it)",
    "whole": "HLR, LRS: the Whole Dataset row (`whole_dataset: true`, or `report: {fairness: true}`)",
    "bare": "ARS: the same set and `random` also evaluated without augmentation (entries with `augment: none`, "
            "and `cutmix_prob: 0`); shown on the run with augmentation",
}
"""What fills each missing ingredient, said in the table notes."""


COLUMNS = {"ior": ("IOR", ("random",)), "hlr": ("HLR", ("hard", "whole")),
           "lrs": ("LRS (%)", ("random", "hard", "whole")), "ars": ("ARS (%)", ("random", "bare"))}
"""The scores `report: {fairness: {columns: [...]}}` adds to the paper table: their titles and the `NEEDS` they
lack where missing (bench.names.FAIRNESS_COLUMNS names the same keys)."""


def _set_of(m: MethodOptions) -> tuple[str, str]:
    """The synthetic sets an entry evaluates: its method and params (entries alike share their sets)."""
    return m.name, json.dumps(m.params, sort_keys=True, default=str)


def scores(frame: pd.DataFrame, options: ReportOptions) -> pd.DataFrame:
    """One row per method cell (not `random`, not Whole Dataset) of the suite: its regime, accuracy, the random
    accuracy, IOR, HLR, LRS and ARS (LRS and ARS in [0, 1]; NaN where an ingredient is missing), and `missing`:
    the keys of `NEEDS` that would fill them."""
    entries = {m.label: m for m in options.methods}
    mean = {(r.method, r.dataset, r.ipc, r.arch): r.mean for r in frame.itertuples(index=False)
            if r.group != "whole" and not pd.isna(r.mean)}
    whole = {(r.method, r.dataset, r.arch): r.mean for r in frame.itertuples(index=False)
             if r.group == "whole" and not pd.isna(r.mean)}
    by_recipe: dict[tuple[str, str, str], str] = {}  # (method, params, recipe key) -> label
    for m in options.methods:
        by_recipe.setdefault((*_set_of(m), m.recipe_key), m.label)
    rows = []
    for r in frame.itertuples(index=False):
        m = entries.get(r.method)
        if m is None or r.group == "whole" or m.name == "random":
            continue
        at = (r.dataset, r.ipc, r.arch)

        def acc(name: str, params: str, recipe: str) -> float:
            label = by_recipe.get((name, params, recipe))
            return mean.get((label, *at), math.nan)

        name, params = _set_of(m)
        random_of = {key: acc("random", json.dumps({}), key) for key in (m.recipe_key, m.bare_key)}
        own = {m.recipe_key: r.mean, m.hard_key: acc(name, params, m.hard_key), m.bare_key: acc(name, params,
                                                                                                  m.bare_key)}
        ior = improvement_over_random(r.mean, random_of[m.recipe_key])
        hlr = hard_label_recovery(whole.get((m.whole, r.dataset, r.arch), math.nan), own[m.hard_key])
        augmented = m.bare_key != m.recipe_key
        ior_bare = improvement_over_random(own[m.bare_key], random_of[m.bare_key])
        missing = [k for k, lacking in (("random", math.isnan(random_of[m.recipe_key])),
                                        ("hard", math.isnan(own[m.hard_key])),
                                        ("whole", (m.whole, r.dataset, r.arch) not in whole),
                                        ("bare", not augmented or math.isnan(ior_bare))) if lacking]
        rows.append({"method": r.method, "dataset": r.dataset, "ipc": r.ipc, "arch": r.arch,
                     "regime": m.recipe.get("labels", "hard"), "accuracy": r.mean,
                     "random": random_of[m.recipe_key], "ior": ior, "hlr": hlr,
                     "lrs": label_robust_score(ior, hlr, options.lrs_weight),
                     "ars": augmentation_robust_score(ior, ior_bare, options.ars_weight) if augmented else math.nan,
                     "missing": missing})
    return pd.DataFrame(rows, columns=["method", "dataset", "ipc", "arch", "regime", "accuracy", "random", "ior",
                                       "hlr", "lrs", "ars", "missing"])


def scores_note(options: ReportOptions) -> str:
    """The definitions and weights, as the notes of a table that shows the scores say them."""
    return (f"DD-Ranking's scores (arXiv 2505.13300), from the cells' means over the same seeds: IOR = Acc − Acc of "
            f"random real images (same IPC, recipe and label regime); HLR = Acc(Whole Dataset) − Acc(same set, hard "
            f"labels); LRS = (e^α − e^−1)/(e − e^−1) with α = w·IOR − (1 − w)·HLR, w = {options.lrs_weight:g}; ARS "
            f"likewise with β = γ·IOR(augmented) + (1 − γ)·IOR(not augmented), γ = {options.ars_weight:g}; "
            f"differences enter α and β as fractions, LRS and ARS are shown in %.")


def describe(row: Any) -> dict[str, str]:
    """Display texts of one `scores` row: accuracy points with one decimal, signed for IOR/HLR, LRS/ARS in %."""
    def num(x: float, sign: bool = False) -> str | None:
        return None if math.isnan(x) else (f"{x:+.1f}" if sign else f"{x:.1f}")
    return {"random": num(row.random), "ior": num(row.ior, True), "hlr": num(row.hlr, True),
            "lrs": num(100 * row.lrs), "ars": num(100 * row.ars)}


def _cell(text: str | None, value: float | None = None, note: str = "") -> Cell:
    return Cell(MISSING, note=note) if text is None else Cell(text, value)


def _notes(table: pd.DataFrame, options: ReportOptions,
           shown: tuple[str, ...] = tuple(NEEDS)) -> tuple[str, ...]:
    """The definitions, and what fills each missing ingredient among the `shown` keys of `NEEDS`."""
    needed = dict.fromkeys(k for ks in table["missing"] for k in ks if k in shown)
    return (scores_note(options), *(f"{MISSING} in {NEEDS[k]}." for k in needed))


def regimes_table(frame: pd.DataFrame, table: pd.DataFrame, options: ReportOptions, dataset: str, ipc: int,
                  arch: str) -> Table:
    """Each set (method and params, one protocol) as a row, the label regimes side by side: accuracy, IOR and LRS
    under each; `random`'s row shows its accuracies, against which the IORs are taken."""
    entries = list(options.methods)
    regimes = [g for g in REGIMES if any(m.recipe.get("labels", "hard") == g for m in entries)]
    at = frame[(frame["dataset"] == dataset) & (frame["ipc"] == ipc) & (frame["arch"] == arch)
               & (frame["group"] != "whole")]
    means = {r.method: r for r in at.itertuples(index=False)}
    scored = {r.method: r for r in table.itertuples(index=False)
              if (r.dataset, r.ipc, r.arch) == (dataset, ipc, arch)}
    rows: dict[tuple, dict[str, MethodOptions]] = {}
    for m in entries:
        rows.setdefault((*_set_of(m), m.hard_key), {})[m.recipe.get("labels", "hard")] = m
    out = []
    for by_regime in rows.values():
        label = (by_regime.get("hard") or next(iter(by_regime.values()))).label
        cells = []
        for regime in regimes:
            m = by_regime.get(regime)
            r = means.get(m.label) if m is not None else None
            cells.append(_acc_cell(r) if r is not None else Cell(MISSING))
            s = scored.get(m.label) if m is not None else None
            text = describe(s) if s is not None else {"ior": "", "lrs": ""}
            cells += [_cell(text["ior"], None if s is None else s.ior, NEEDS["random"]),
                      _cell(text["lrs"], None if s is None else s.lrs, f"{NEEDS['hard']}; {NEEDS['whole']}")]
        hard = scored.get(by_regime["hard"].label) if "hard" in by_regime else None
        hlr = next((s.hlr for m in by_regime.values() if (s := scored.get(m.label)) is not None
                    and not math.isnan(s.hlr)), math.nan)
        cells.append(_cell(None if math.isnan(hlr) else f"{hlr:+.1f}", hlr, f"{NEEDS['hard']}; {NEEDS['whole']}")
                     if hard is not None or not math.isnan(hlr) else Cell(MISSING))
        out.append(Row((label,), tuple(cells)))
    return Table(key=f"fairness-regimes-{dataset}-ipc{ipc}-{arch}", title=f"Label regimes side by side: {dataset}, "
                 f"IPC {ipc}, {arch}", label_columns=("Set",),
                 columns=tuple(c for _ in regimes for c in ("Accuracy", "IOR", "LRS (%)")) + ("HLR",),
                 spans=tuple((f"labels: {g}", 3) for g in regimes) + (("", 1),), groups=(Group("", tuple(out)),),
                 notes=_notes(table[(table["dataset"] == dataset) & (table["ipc"] == ipc) & (table["arch"] == arch)],
                              options))


def scores_table(table: pd.DataFrame, options: ReportOptions) -> Table:
    """Every method cell with its random baseline and DD-Ranking's scores."""
    rows = []
    for r in table.itertuples(index=False):
        text = describe(r)
        rows.append(Row((r.method,), (
            Cell(r.regime), Cell(r.dataset), Cell(str(r.ipc), float(r.ipc)), Cell(r.arch),
            Cell(f"{r.accuracy:.1f}", r.accuracy),
            _cell(text["random"], r.random, NEEDS["random"]), _cell(text["ior"], r.ior, NEEDS["random"]),
            _cell(text["hlr"], r.hlr, f"{NEEDS['hard']}; {NEEDS['whole']}"),
            _cell(text["lrs"], r.lrs, f"{NEEDS['hard']}; {NEEDS['whole']}"),
            _cell(text["ars"], r.ars, NEEDS["bare"]))))
    return Table(key="fairness-scores", title="Fairness scores per cell", label_columns=("Method",),
                 columns=("Regime", "Data set", "IPC", "Arch", "Accuracy", "Random", "IOR", "HLR", "LRS (%)",
                          "ARS (%)"), groups=(Group("", tuple(rows)),), notes=_notes(table, options))


def paper_columns(frame: pd.DataFrame, options: ReportOptions) -> dict[str, ExtraColumns]:
    """Per evaluation architecture, the scores the suite's `report: {fairness: {columns: [...]}}` names, as columns
    of the paper table beside each method cell, with the notes that define them."""
    table, keys = scores(frame, options), options.fairness_columns
    shown = tuple(dict.fromkeys(n for k in keys for n in COLUMNS[k][1]))
    out = {}
    for arch in options.eval_archs:
        at = table[table["arch"] == arch]
        cells = {}
        for r in at.itertuples(index=False):
            text = describe(r)
            cells[r.method, r.dataset, r.ipc] = tuple(
                _cell(text[k], getattr(r, k), "; ".join(NEEDS[n] for n in COLUMNS[k][1])) for k in keys)
        out[arch] = ExtraColumns(tuple(COLUMNS[k][0] for k in keys), cells, _notes(at, options, shown))
    return out


def fairness_view(frame: pd.DataFrame, options: ReportOptions) -> Section:
    table = scores(frame, options)
    title = "Fairness: label regimes and DD-Ranking's scores"
    if table.empty:
        return Section("fairness", title, intro="No method cell to score: the view needs method entries other "
                                                "than `random` (`report: {fairness: true}` adds the runs it needs).")
    cells = list(dict.fromkeys(zip(table["dataset"], table["ipc"], table["arch"])))
    tables = tuple(regimes_table(frame, table, options, d, i, a) for d, i, a in cells)
    return Section("fairness", title, tables=(*tables, scores_table(table, options)), intro=(
        "How much of each set's accuracy its images earn: each cell beside random real images at the same IPC, "
        "under the same recipe, label regime and seeds (IOR), and how far its hard-label accuracy falls short of "
        "the full training set's (HLR), combined as DD-Ranking's LRS and ARS."))
