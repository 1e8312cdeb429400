"""Views: each turns the one aggregated DataFrame into a section (tables, figures) of the report model.

paper_table   methods (grouped) x data set/IPC, Ratio (%) header row, Whole Dataset row, a significantly best
              mean in bold, else the means tied with the best marked ≈ (bench.report.significance); DD-Ranking's
              scores beside each cell with `report: {fairness: {columns: [...]}}`
cross_arch    methods x evaluation architectures for one data set/IPC, with the largest drop
curve         accuracy against IPC and against stored bytes (bench.report.plots)
ablation      variants of one method, with the difference to the first (the baseline)
reported      published numbers beside reproduced ones, with a 95% interval of the difference, flagged outside a
              tolerance unless the interval covers 0 (within the noise)
fairness      label regimes side by side, each cell beside random real images (IOR) and DD-Ranking's HLR, LRS, ARS
              (bench.report.fairness)
cost          stored size and seconds per synthetic set

`VIEWS` is the registry {name: view}, in the order a report shows them; a suite names views by its keys.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from bench.machine import map_forked
from bench.reference import PAPERS, Reported
from bench.report.aggregate import DDOF, GROUP_TITLES
from bench.report.inputs import WHOLE, MethodOptions, ReportOptions
from bench.report.model import MISSING, Cell, Group, Report, Row, Section, Table
from bench.report.significance import BEST, SIGNIFICANCE, TIE, TIED, column_verdict, delta_interval


def _nan(x) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def fmt_acc(mean: float, std: float, n: int = 0, n_expected: int = 0, diverged: int = 0) -> str:
    """'48.5 ± 0.6', a bare mean where no std is known, '–' when there is no run, '(n=k/N)' when runs are missing,
    '(n=1)' for a single run (its '± 0.0' would read as no spread, not as no second run), 'diverged' (with a
    count) for runs whose loss became NaN or Inf: they are never part of the mean."""
    if _nan(mean):
        return f"{DIVERGED} ({diverged}/{n_expected})" if diverged else MISSING
    text = f"{mean:.1f}" if _nan(std) or n == 1 else f"{mean:.1f} ± {std:.1f}"
    count = f"n={n}/{n_expected}" if 0 < n < n_expected else "n=1" if n == 1 else ""
    parts = [count] * bool(count) + [f"{diverged} {DIVERGED}"] * bool(diverged)
    return f"{text} ({', '.join(parts)})" if parts else text


def _fmt_row(r: Any) -> str:
    """`fmt_acc` of one aggregated row."""
    return fmt_acc(r.mean, r.std, r.n, r.n_expected, getattr(r, "n_diverged", 0))


DIVERGED = "diverged"
OVER_BUDGET = "†"


def fmt_ratio(pct: float) -> str:
    """A share of the training set in % with three significant digits and no exponent (0.0014, 0.796, 7.96, 10,
    100): the Ratio row and the Cost table both write it so, so they agree to the digit."""
    return np.format_float_positional(pct, precision=3, unique=False, fractional=False, trim="-") if pct < 100 \
        else f"{pct:.0f}"


def _acc_cell(row, mark: str = "", extra: str = "") -> Cell:
    """A cell for one aggregated row (None: no such cell), sorted by its mean; `mark`: its `column_verdict`."""
    if row is None:
        return Cell(MISSING)
    budget = f" {OVER_BUDGET}" if getattr(row, "over_budget", False) is True else ""
    tie = f" {TIE}" if mark == TIED else ""
    return Cell(_fmt_row(row) + budget + extra + tie,
                None if _nan(row.mean) else row.mean, bold=mark == BEST)


def _columns(data: pd.DataFrame) -> list[tuple[str, int]]:
    """(data set, IPC) columns: data sets in order of appearance, IPCs ascending."""
    order = {d: i for i, d in enumerate(dict.fromkeys(data["dataset"]))}
    cols = set(zip(data["dataset"], data["ipc"]))
    return sorted(cols, key=lambda c: (order[c[0]], c[1]))


def _spans(columns: list[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    spans: list[list] = []
    for dataset, _ in columns:
        if spans and spans[-1][0] == dataset:
            spans[-1][1] += 1
        else:
            spans.append([dataset, 1])
    return tuple((d, n) for d, n in spans)


def _grouped(methods: dict[str, str]) -> list[tuple[str, list[str]]]:
    """Methods (label -> group) in group order, each group keeping the methods' own order."""
    by_group: dict[str, list[str]] = defaultdict(list)
    for method, group in methods.items():
        by_group[group].append(method)
    order = [g for g in GROUP_TITLES if g in by_group] + [g for g in by_group if g not in GROUP_TITLES]
    return [(g, by_group[g]) for g in order]


def _printed(data: pd.DataFrame) -> tuple[str, ...]:
    """The note of a table drawn from a paper's printed numbers (`reference_frame`), which has no runs to test."""
    if data.empty or (data["n_expected"] > 0).any():
        return ()
    return ("Bold: the largest mean of its column, as the paper printed it (no runs here to test).",)


@dataclass(frozen=True)
class ExtraColumns:
    """Columns the paper table shows after each accuracy column (DD-Ranking's scores, bench.report.fairness): their
    titles, their cells per (method, data set, IPC), and the notes that say what they are."""

    titles: tuple[str, ...]
    cells: dict[tuple[str, str, int], tuple[Cell, ...]]
    notes: tuple[str, ...] = ()


def paper_table(frame: pd.DataFrame, arch: str, key: str, title: str, level: float = SIGNIFICANCE,
                extra: ExtraColumns | None = None) -> Table:
    """Methods as rows (grouped), data set x IPC as columns, a Ratio (%) row, a Whole Dataset row. With `extra`,
    each data set and IPC spans its accuracy column and the extra ones; a row without extra cells (random, the
    baseline) leaves them empty, a cell without results shows them as missing."""
    at_arch = frame[frame["arch"] == arch]
    data, whole = at_arch[at_arch["group"] != "whole"], at_arch[at_arch["group"] == "whole"]
    columns = _columns(data)
    cells = {(r.method, r.dataset, r.ipc): r for r in data.itertuples(index=False)}
    methods = dict(zip(data["method"], data["group"]))
    venue = "venue" in data and data["venue"].notna().any()
    venues = dict(zip(data["method"], data["venue"])) if venue else {}
    marks = {c: column_verdict({m: cells[(m, *c)] for m in methods if (m, *c) in cells}, level) for c in columns}

    groups = []
    for group, members in _grouped(methods):
        rows = []
        for m in members:
            row_cells = []
            for c in columns:
                row_cells.append(_acc_cell(cells.get((m, *c)), marks[c].get(m, "")))
                if extra is not None:
                    unscored = Cell(MISSING if (m, *c) not in cells else "")  # no cell, or random's
                    row_cells += extra.cells.get((m, *c), (unscored,) * len(extra.titles))
            rows.append(Row((m, venues.get(m) or "") if venue else (m,), tuple(row_cells)))
        groups.append(Group(GROUP_TITLES.get(group, group), tuple(rows)))

    pad = ("",) if venue else ()
    blank = (Cell(""),) * (len(extra.titles) if extra is not None else 0)  # under the extra columns
    ratios = []
    for c in columns:
        values = sorted({round(r.ratio_pct, 12) for m in methods if (r := cells.get((m, *c))) is not None
                         and not _nan(r.ratio_pct)})
        text = MISSING if not values else (fmt_ratio(values[0]) if len(values) == 1
                                           else f"{fmt_ratio(values[0])}–{fmt_ratio(values[-1])}")
        ratios += (Cell(text, values[0] if values else None), *blank)
    head = (Row(("Ratio (%)",) + pad, tuple(ratios)),)

    foot = []
    spans = _spans(columns)
    for label in dict.fromkeys(whole["method"]):
        rows = {r.dataset: r for r in whole[whole["method"] == label].itertuples(index=False)}
        # The value spans its data set's IPC columns, or, with extra columns between them, stands under each.
        under = spans if extra is None else tuple((d, 1) for d, _ in columns)
        foot.append(Row((label,) + pad, tuple(c for d, n in under for c in (_whole_cell(rows.get(d), n), *blank))))
    titles = tuple(f"IPC {ipc}" for _, ipc in columns)
    if extra is not None:  # a header span per data set and IPC over its accuracy and extra columns
        spans = tuple((f"{d} IPC {ipc}", 1 + len(blank)) for d, ipc in columns)
        titles = tuple(t for _ in columns for t in ("Accuracy", *extra.titles))
    return Table(key=key, title=title, label_columns=("Method", "Venue") if venue else ("Method",),
                 columns=titles, spans=spans, groups=tuple(groups), head=head, foot=tuple(foot),
                 notes=_printed(data) + (extra.notes if extra is not None else ()))


def _whole_cell(row: Any, span: int) -> Cell:
    return Cell(MISSING, span=span) if row is None else Cell(_fmt_row(row), None if _nan(row.mean) else row.mean,
                                                             span=span)


def cross_arch_table(frame: pd.DataFrame, dataset: str, ipc: int, distill_arch: str, key: str, title: str,
                     level: float = SIGNIFICANCE) -> Table:
    """Methods x evaluation architectures for one data set and IPC, and the largest drop from the
    distillation architecture (from the first architecture when the distillation one was not evaluated)."""
    data = frame[(frame["dataset"] == dataset) & (frame["ipc"] == ipc) & (frame["group"] != "whole")]
    archs = list(dict.fromkeys(data["arch"]))
    ref = distill_arch if distill_arch in archs else archs[0]
    cells = {(r.method, r.arch): r for r in data.itertuples(index=False)}
    methods = dict(zip(data["method"], data["group"]))
    marks = {a: column_verdict({m: cells[m, a] for m in methods if (m, a) in cells}, level) for a in archs}
    groups = []
    for group, members in _grouped(methods):
        rows = []
        for m in members:
            row_cells = [_acc_cell(cells.get((m, a)), marks[a].get(m, "")) for a in archs]
            base = cells.get((m, ref))
            drops = [(base.mean - cells[m, a].mean, a) for a in archs
                     if a != ref and (m, a) in cells and base is not None and not _nan(base.mean)
                     and not _nan(cells[m, a].mean)]
            drop, worst = max(drops) if drops else (None, "")
            row_cells.append(Cell(f"{drop:.1f} ({worst})", drop) if drop is not None else Cell(MISSING))
            rows.append(Row((m,), tuple(row_cells)))
        groups.append(Group(GROUP_TITLES.get(group, group), tuple(rows)))
    columns = tuple(f"{a} (distill)" if a == distill_arch else a for a in archs) + (f"Largest drop from {ref}",)
    return Table(key=key, title=title, label_columns=("Method",), columns=columns, groups=tuple(groups),
                 notes=_printed(data))


def ablation_table(frame: pd.DataFrame, labels: list[str], arch: str, key: str, title: str,
                   level: float = SIGNIFICANCE) -> Table:
    """Variants of a method as rows (the first is the baseline), data set x IPC as columns, each cell with
    its difference to the baseline."""
    data = frame[frame["method"].isin(labels) & (frame["arch"] == arch) & (frame["group"] != "whole")]
    columns = _columns(data)
    cells = {(r.method, r.dataset, r.ipc): r for r in data.itertuples(index=False)}
    marks = {c: column_verdict({m: cells[(m, *c)] for m in labels if (m, *c) in cells}, level) for c in columns}
    rows = []
    for i, m in enumerate(labels):
        row_cells = []
        for c in columns:
            r, base = cells.get((m, *c)), cells.get((labels[0], *c))
            delta = ""
            if i and r is not None and base is not None and not _nan(r.mean) and not _nan(base.mean):
                delta = f" ({r.mean - base.mean:+.1f})"
            row_cells.append(_acc_cell(r, marks[c].get(m, ""), extra=delta))
        rows.append(Row((m,), tuple(row_cells)))
    return Table(key=key, title=title, label_columns=("Variant",), columns=tuple(f"IPC {ipc}" for _, ipc in columns),
                 spans=_spans(columns), groups=(Group("", tuple(rows)),), notes=_printed(data))


def reported_table(frame: pd.DataFrame, options: ReportOptions) -> Table:
    """Each reproduced cell beside the published numbers it reproduces, with the difference and its interval
    (`_difference`); a difference larger than the suite's tolerance is flagged unless it is within the noise.

    A cell reproduces a published number when data set, IPC and architecture agree and the suite entry is the
    one the paper's row names (`bench:` and `bench_params:` in the reference file, `Reported.reproduced_by`), or
    the one `report: {match: ...}` maps to it. Whole-dataset rows are compared with the papers' Whole Dataset
    numbers. Where several tables of one paper print the cell, it is compared with one (`_compared_with`) and
    a note lists what the others print.
    """
    entries = {m.label: m for m in options.methods}
    published = defaultdict(list)
    for ref in (v for p in options.compare_to for v in PAPERS[p].values()):
        published[ref.dataset, ref.arch].append(ref)
    rows, used, disagree = [], {}, []
    for r in frame.itertuples(index=False):
        refs, other = _compared_with([ref for ref in published.get((r.dataset, r.arch), [])
                                      if _reproduces(r, ref, entries.get(r.method), options.match)])
        disagree += [f"{_source(o)} prints {o.text} for {r.method} on {r.dataset}" + (
            "" if _nan(r.ipc) else f" IPC {r.ipc}") + f", {r.arch}; this report compares with {_source(ref)} "
            f"({ref.text})" for ref, o in other]
        for ref in refs:
            source = _source(ref)
            used[source] = PAPERS[ref.paper].tables[ref.table].notes
            delta, status = _difference(r, ref, options)
            rows.append(Row((r.method,), (
                Cell(r.dataset), Cell("" if _nan(r.ipc) else str(r.ipc), None if _nan(r.ipc) else float(r.ipc)),
                Cell(r.arch), _acc_cell(r), Cell(ref.text.replace("±", " ± "), ref.mean, note=ref.method),
                delta,
                Cell(source, note=ref.method),
                status)))
    return Table(key="reported", title="Reproduced vs reported", label_columns=("Method",),
                 columns=("Data set", "IPC", "Arch", "Reproduced", "Reported", "Δ", "Source", "Status"),
                 groups=(Group("", tuple(rows)),),
                 notes=tuple([f"{source}: {text}" for source, text in used.items() if text] + (
                     [f"Tables of one paper disagree: {'; '.join(disagree)}."] if disagree else [])))


def _source(ref: Reported) -> str:
    return f"{PAPERS[ref.paper].short}, {ref.source.split(' ', 1)[1]}"  # "IID (CVPR 2024), Table 1"


def _reproduces(r: Any, ref: Reported, entry: MethodOptions | None, match: dict[str, str]) -> bool:
    """Whether the aggregated row `r` (of the suite entry `entry`) reproduces the published `ref`."""
    if r.group == "whole" or ref.group == "whole":
        return r.group == ref.group
    if ref.ipc != r.ipc:
        return False
    if r.method in match:
        return match[r.method] == ref.method
    return entry is not None and ref.reproduced_by(entry.name, entry.params)


def _compared_with(refs: list[Reported]) -> tuple[list[Reported], list[tuple[Reported, Reported]]]:
    """One published number per paper for a cell: its main table's where it has one, else its first table's;
    and, per paper, (the chosen, another) for every other table that prints a different number."""
    chosen: dict[str, Reported] = {}
    for ref in sorted(refs, key=lambda v: v.kind != "main"):  # stable: file order within a kind
        chosen.setdefault(ref.paper, ref)
    other = [(chosen[v.paper], v) for v in refs if v is not chosen[v.paper] and v.text != chosen[v.paper].text]
    return list(chosen.values()), other


def _difference(r: Any, ref: Any, options: ReportOptions) -> tuple[Cell, Cell]:
    """The Δ cell (reproduced − reported, with its `delta_interval`) and the Status cell: "ok" within the
    tolerance, "within the noise" outside it but with an interval covering 0, else flagged "outside ±tolerance"
    (also with fewer than 2 runs, which give no interval)."""
    if _nan(r.mean):
        return Cell(MISSING), Cell(MISSING)
    delta = r.mean - ref.mean
    ci = delta_interval(r.mean, r.std, r.n, ref.mean, ref.std, options.paper_runs, options.significance)
    text = f"{delta:+.1f}" + ("" if ci is None else f" [{ci[0]:+.1f}, {ci[1]:+.1f}]")
    if abs(delta) <= options.tolerance:
        status = "ok"
    elif ci is not None and ci[0] <= 0 <= ci[1]:
        status = "within the noise"
    else:
        return Cell(text, delta, flag=True), Cell(f"outside ±{options.tolerance:g}", flag=True)
    return Cell(text, delta), Cell(status)


def cost_table(frame: pd.DataFrame) -> Table:
    """Cost of each synthetic set: stored size as % of the training set, and seconds to distill it
    (+ shared expert stages)."""
    data = frame[frame["group"] != "whole"].drop_duplicates(["method", "dataset", "ipc"])
    columns = _columns(data)
    cells = {(r.method, r.dataset, r.ipc): r for r in data.itertuples(index=False)}
    methods = dict(zip(data["method"], data["group"]))

    def cell(r) -> Cell:
        if r is None or _nan(r.distill_time_s):
            return Cell(MISSING)
        ratio = MISSING if _nan(r.ratio_pct) else f"{fmt_ratio(r.ratio_pct)}%"
        expert = f" (+{r.expert_time_s:.0f} experts)" if r.expert_time_s else ""
        return Cell(f"{ratio}, {r.distill_time_s:.1f}s{expert}", r.distill_time_s)

    groups = tuple(Group(GROUP_TITLES.get(g, g), tuple(Row((m,), tuple(cell(cells.get((m, *c))) for c in columns))
                                                       for m in members)) for g, members in _grouped(methods))
    return Table(key="cost", title="Cost: stored bytes as % of the training set; seconds to distill one synthetic "
                                   "set (+ shared expert stages, once per stage)",
                 label_columns=("Method",), columns=tuple(f"IPC {ipc}" for _, ipc in columns),
                 spans=_spans(columns), groups=groups)


def recipe_text(preset: str, r: dict[str, Any]) -> str:
    """`r`: a `MethodOptions.recipe` (the recipe's fields, its passes and 0-based decay epochs)."""
    lr = "the learned lr stored with the set" if r["lr"] == "learned" else f"lr {r['lr']}"
    decays = ", ".join(str(e + 1) for e in r["decay_epochs"])
    extras = (["DSA applied as IDC's DiffAug"] if r["dsa_mode"] == "idc" else []) + \
        ([f"CutMix on {r['cutmix_prob']:g} of the batches (beta {r['cutmix_beta']:g})"] if r["cutmix_prob"] else []) + \
        ([_regime_text(r)] if r.get("labels", "hard") != "hard" else [])
    return (f"preset '{preset}': {r['epochs']} epochs ({r['passes']} passes over the set), SGD {lr}, momentum "
            f"{r['momentum']}, weight decay {r['weight_decay']}, batch {r['batch_size']}, lr x{r['decay_factor']} "
            f"after pass {decays}, augmentation {r['augment']}" + "".join(f", {e}" for e in extras))


def _regime_text(r: dict[str, Any]) -> str:
    """The label regime of a recipe other than hard labels, as the notes say it."""
    if r["labels"] == "soft":
        return f"soft cross-entropy on the set's stored soft labels at temperature {r['temperature']:g}"
    teacher = r["teacher_arch"] or "the evaluation architecture"
    return (f"KL divergence at temperature {r['temperature']:g} to a teacher ({teacher}, {r['teacher_epochs']} epochs "
            f"on the full training set) relabelling each augmented batch")


def notes(options: ReportOptions) -> list[str]:
    recipes: dict[str, list[str]] = {}
    for m in options.methods:
        recipes.setdefault(recipe_text(m.preset, m.recipe), []).append(m.label)
    if len(recipes) == 1:
        evaluation = [f"Evaluation {next(iter(recipes))}."]
    else:
        evaluation = [f"Evaluation of {', '.join(labels)}: {text}." for text, labels in recipes.items()]
    whole = ([f"{WHOLE}: the evaluation architecture trained on the full training set with the same recipe and "
              f"evaluation seeds (a learned lr, which real data does not have, is replaced by the standard "
              f"preset's){_whole_deviation(options)}."] if options.whole_dataset else [])
    return [
        "Accuracy (%) is the test accuracy after the last training epoch of a network trained from scratch on "
        "the synthetic set (never the best epoch).",
        f"Cells show mean ± std over the runs of the cell (distill seeds {list(options.distill_seeds)} x "
        f"evaluation seeds {list(options.seeds)}); std is the population standard deviation (ddof={DDOF}), as "
        "np.std in the reference code.",
        _significance_note(options),
        *_interval_note(options),
        "Ratio (%): bytes stored for the synthetic set (images, labels, and any decoder or learned lr) over the "
        "bytes of the full training set as the same tensors, so parametrised sets are counted as stored. A "
        "range means the methods of that column store different amounts (per-method values: Cost table and "
        "results.csv).",
        f"{MISSING} marks a cell with no result; (n=k/N) marks a cell with k of its N planned runs.",
        *whole,
        *evaluation,
        *(f"Not used: {line}" for line in options.older_code),
        *(f"Deviation '{name}' (named in the suite): {why}" for name, why in options.deviations),
    ]


def _significance_note(options: ReportOptions) -> str:
    """How bold and ties are decided: readers should not take a 0.1-point lead for a win."""
    level, runs = f"{options.significance:g}", len(options.distill_seeds) * len(options.seeds)
    return (f"Bold: the best mean of its column, where a two-sided Welch t-test (unequal variances) of its runs "
            f"({runs} planned per cell) against the runner-up's is significant at level {level}; otherwise {TIE} "
            f"marks the best mean and every mean that test cannot tell from it (p ≥ {level}), and none is bold. A "
            f"cell with fewer than 2 runs cannot be tested: never bold or {TIE}, and a column whose best or "
            f"runner-up has one has no bold; a partial cell (n=k/N) is never bold; nor is a column's only result.")


def _interval_note(options: ReportOptions) -> list[str]:
    """How the reported view's Δ intervals are made, and what they assume about the papers' runs."""
    if not options.compare_to:
        return []
    return [f"Δ intervals ({100 * (1 - options.significance):g}%): a t-interval of the reproduced mean where the "
            f"paper prints no std; where it prints one, Welch's interval of the difference, assuming the paper's "
            f"std is np.std (ddof=0) over {options.paper_runs} runs. A cell with fewer than 2 runs has no interval, "
            f"so a Δ beyond the tolerance is then flagged."]


def applicable(options: ReportOptions) -> list[str]:
    """The views a suite gets when it names none: every one that has something to show."""
    views = ["paper_table"]
    if len(options.eval_archs) > 1:
        views.append("cross_arch")
    if len(options.ipcs) > 1:
        views.append("curve")
    if ablation_sets(options):
        views.append("ablation")
    if options.compare_to:
        views.append("reported")
    if options.fairness or any(m.recipe.get("labels", "hard") != "hard" for m in options.methods):
        views.append("fairness")
    return views + ["cost"]


def ablation_sets(options: ReportOptions) -> list[list[str]]:
    """The method labels each ablation table compares: the suite's `report: {ablation: [...]}`, else every
    group of entries that share a method (e.g. IID's baseline / +CC / +CM / both)."""
    if options.ablation:
        return [list(options.ablation)]
    by_name: dict[str, list[str]] = defaultdict(list)
    for m in options.methods:
        by_name[m.name].append(m.label)
    return [labels for labels in by_name.values() if len(labels) > 1]


def reference_arch(options: ReportOptions) -> str:
    """The architecture curves and ablations are shown for: the distillation one if evaluated, else the first."""
    return options.distill_arch if options.distill_arch in options.eval_archs else options.eval_archs[0]


def paper_table_view(frame: pd.DataFrame, options: ReportOptions) -> Section:
    """A paper table per evaluation architecture; with `report: {fairness: {columns: [...]}}`, DD-Ranking's scores
    beside each cell (bench.report.fairness.paper_columns)."""
    extra: dict[str, ExtraColumns] = {}
    if options.fairness_columns:
        from bench.report.fairness import paper_columns
        extra = paper_columns(frame, options)
    tables = tuple(paper_table(frame, a, f"paper_table-{a}", f"Evaluated on {a}", options.significance, extra.get(a))
                   for a in options.eval_archs)
    return Section("paper_table", "Results", tables=tables)


def cross_arch_view(frame: pd.DataFrame, options: ReportOptions) -> Section:
    """A table per data set and IPC, and per data set a heat map of every method on every architecture."""
    from bench.report import plots
    title, arch = "Cross-architecture generalisation", options.distill_arch
    if len(options.eval_archs) < 2:
        return Section("cross_arch", title, intro="Needs at least two `eval_archs`; this suite has one.")
    tables = tuple(cross_arch_table(frame, d, i, arch, f"cross_arch-{d}-ipc{i}", f"{d}, IPC {i}, distilled on {arch}",
                                    options.significance) for d in options.datasets for i in options.ipcs)
    data = frame[frame["group"] != "whole"]
    methods = [m for _, members in _grouped(dict(zip(data["method"], data["group"]))) for m in members]
    figures = tuple(plots.cross_arch(frame, d, list(options.ipcs), list(options.eval_archs), reference_arch(options),
                                     methods, f"cross_arch-{d}", options.font) for d in options.datasets)
    return Section("cross_arch", title, tables=tables, figures=figures)


def curve_view(frame: pd.DataFrame, options: ReportOptions) -> Section:
    """One figure per data set and evaluation architecture, the reference architecture's first."""
    from bench.report import plots
    first = reference_arch(options)
    archs = [first] + [a for a in options.eval_archs if a != first]
    parts = dict(tuple(frame.groupby(["dataset", "arch"], sort=False)))  # one pass, not one filter per figure
    figures = tuple(plots.curve(parts.get((d, a), frame.iloc[:0]), d, a, f"curve-{d}-{a}", options.font)
                    for d in options.datasets for a in archs)
    return Section("curve", "Compression-ratio curves", figures=figures,
                   intro=f"Accuracy on each evaluation architecture ({', '.join(archs)}) against IPC and against the "
                         f"bytes stored, mean ± std band over the runs"
                         + (f"; dashed: {WHOLE}." if options.whole_dataset else "."))


def ablation_view(frame: pd.DataFrame, options: ReportOptions) -> Section:
    arch, sets = reference_arch(options), ablation_sets(options)
    tables = tuple(ablation_table(frame, labels, arch, f"ablation-{i}", f"{labels[0]} and its variants, evaluated on "
                                  f"{arch}", options.significance) for i, labels in enumerate(sets))
    return Section("ablation", "Ablation", tables=tables, intro="" if sets else (
        "No ablation: name the variants with `report: {ablation: [baseline, variant, ...]}` or add several entries "
        "of one method with distinct labels."))


def reported_view(frame: pd.DataFrame, options: ReportOptions) -> Section:
    title = "Reproduced vs reported"
    if not options.compare_to:
        return Section("reported", title, intro=(
            "Name the paper(s) to compare with: `report: {compare_to: iid2024, tolerance: 1.0}`."))
    table = reported_table(frame, options)
    papers = ", ".join(PAPERS[p].short for p in options.compare_to)
    confidence = f"{100 * (1 - options.significance):g}%"
    intro = (f"Published numbers from {papers}; Δ = reproduced − reported, with its {confidence} interval in "
             f"brackets; \"ok\" when |Δ| ≤ {options.tolerance:g} accuracy points, \"within the noise\" when |Δ| is "
             f"larger but the interval covers 0, else flagged \"outside ±{options.tolerance:g}\".")
    if not table.groups[0].rows:
        intro += " No cell of this suite matches a published number (same method, data set, IPC, architecture)."
    return Section("reported", title, intro=intro, tables=(table,))


def fairness_view(frame: pd.DataFrame, options: ReportOptions) -> Section:
    from bench.report.fairness import fairness_view as view
    return view(frame, options)


def cost_view(frame: pd.DataFrame, options: ReportOptions) -> Section:
    return Section("cost", "Cost", tables=(cost_table(frame),))


# Every view a suite may name, in the order a report shows them (bench.names.VIEW_NAMES lists the same names).
VIEWS: dict[str, Callable[[pd.DataFrame, ReportOptions], Section]] = {
    "paper_table": paper_table_view, "cross_arch": cross_arch_view, "curve": curve_view,
    "ablation": ablation_view, "reported": reported_view, "fairness": fairness_view, "cost": cost_view}


def build_report(options: ReportOptions, frame: pd.DataFrame, workers: int = 1) -> Report:
    """The suite's views over its aggregated frame (its `report: {views: [...]}`, else every applicable one), in
    `workers` forked processes where that is more than one: each view is a function of the frame alone."""
    wanted = list(options.views) if options.views is not None else applicable(options)
    views = [view for name, view in VIEWS.items() if name in wanted]
    sections = tuple(map_forked(lambda view: view(frame, options), views, workers=workers))
    data = frame[frame["group"] != "whole"]
    ran = data["n"] + data["n_diverged"]
    complete = int(((ran == data["n_expected"]) & (ran > 0)).sum())
    return Report(name=options.name, description=" ".join(options.description.split()), sections=sections,
                  notes=tuple(notes(options) + _budget_note(frame) + _diverged_note(frame)),
                  citations=tuple(PAPERS[p].citation for p in options.compare_to),
                  complete=complete, total=len(data))


def _whole_deviation(options: ReportOptions) -> str:
    """The suite's named deviation from the protocol for the Whole Dataset row, said in the notes."""
    parts = ([f"{options.whole_epochs} epochs"] if options.whole_epochs else []) + \
        ([f"seeds {', '.join(map(str, options.whole_seeds))}"] if options.whole_seeds else [])
    return f", except: {' and '.join(parts)}, as the suite sets" if parts else ""


def _budget_note(frame: pd.DataFrame) -> list[str]:
    if not frame["over_budget"].any():
        return []
    return [f"{OVER_BUDGET} over the storage budget (NSD Eq. 3): the synthetic set stores more image values than "
            f"IPC plain images per class would, so it is not a like-for-like comparison at that IPC."]


def _diverged_note(frame: pd.DataFrame) -> list[str]:
    count = int(frame["n_diverged"].sum())
    if not count:
        return []
    cells = frame[frame["n_diverged"] > 0]
    where = "; ".join(f"{r.method}, {r.dataset}" + (f" IPC {r.ipc}" if not _nan(r.ipc) else "") + f", {r.arch}: "
                      f"{r.n_diverged} of {r.n_expected}" for r in cells.itertuples(index=False))
    return [f"{count} run(s) {DIVERGED}: the training loss became NaN or Inf, so they have no accuracy; they are "
            f"excluded from the means and counted in their cells ({where}). Each record says where it diverged."]
