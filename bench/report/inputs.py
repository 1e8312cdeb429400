"""What a report is made of, as plain data: the cells it must show (`ExpectedCell`, each with the keys of the
records that fill it), the `RECORD_FIELDS` of those records, and what it says about the suite (`ReportOptions`).

The CLI builds these from the suite's plan (`bench.plan.expected_cells`, `bench.plan.report_options`) and reads
the records from the store, so nothing in bench/report imports config, plan, store, training code or the
method registry: these types are the report's whole contract with the rest of bench.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

WHOLE = "Whole Dataset"
# Default level of the tests that decide bold and ties in a column, and of the reported Δ intervals.
SIGNIFICANCE = 0.05

# The fields of `bench.records.Record` a report reads, in the order of each record row it is given.
RECORD_FIELDS = ("key", "accuracy", "wall_time_s", "artifact_bytes", "train_bytes", "distill_key", "distill_time_s",
                 "expert_time_s", "over_budget", "diverged")


@dataclass(frozen=True)
class ExpectedCell:
    """A row the report must show, with or without results: a method at a data set, IPC and evaluation
    architecture, or a Whole Dataset row (group "whole", no IPC); `keys` are its planned runs' records."""

    method: str  # the label a report shows
    group: str  # coreset | distillation | plugin | whole
    dataset: str
    ipc: int | None
    arch: str
    keys: tuple[str, ...]


def record_keys(cells: Iterable[ExpectedCell]) -> list[str]:
    """Every record key the cells expect, once, in order: the records to read for a report."""
    return list(dict.fromkeys(k for c in cells for k in c.keys))


@dataclass(frozen=True)
class MethodOptions:
    """A method entry of the suite, as its report names and describes it."""

    label: str
    name: str  # the registered method: a paper's `bench:` name matches it
    preset: str  # the evaluation preset its recipe starts from
    params: dict[str, Any]  # the parameters the suite sets (not the preset's): a paper's number names them
    recipe: dict[str, Any]  # every evaluation recipe field, plus `passes` and the 0-based `decay_epochs`
    # What the fairness view pairs a cell with (content keys of recipes, from the plan): the entry's recipe, the
    # same protocol under hard labels and without augmentation, and the label of its Whole Dataset row.
    recipe_key: str = ""
    hard_key: str = ""
    bare_key: str = ""
    whole: str = ""


@dataclass(frozen=True)
class ReportOptions:
    """The suite as its report describes it: grid, seeds, methods, Whole Dataset settings, `report:` key."""

    name: str
    description: str
    datasets: tuple[str, ...]
    ipcs: tuple[int, ...]
    eval_archs: tuple[str, ...]
    distill_arch: str
    seeds: tuple[int, ...]
    distill_seeds: tuple[int, ...]
    methods: tuple[MethodOptions, ...]
    whole_dataset: bool = False
    whole_epochs: int | None = None  # the Whole Dataset row's named deviations from the suite's protocol
    whole_seeds: tuple[int, ...] | None = None
    views: tuple[str, ...] | None = None  # None: every view that applies
    compare_to: tuple[str, ...] = ()  # bench.reference paper keys
    tolerance: float = 1.0
    match: dict[str, str] = field(default_factory=dict)  # method label -> method name in the papers
    ablation: tuple[str, ...] | None = None
    older_code: tuple[str, ...] = ()  # per plugin method, the sets in the store an older version of its code made
    significance: float = SIGNIFICANCE  # of the two-sided Welch t-tests (bold / ≈); Δ intervals cover 1 − it
    paper_runs: int = 5  # runs assumed behind a paper's printed std, for the Δ intervals (IID states 5)
    deviations: tuple[tuple[str, str], ...] = ()  # (name, why): the suite's named departures from the paper
    fairness: bool = False  # `report: {fairness: ...}`: the suite planned the runs DD-Ranking's scores need
    lrs_weight: float = 0.5  # DD-Ranking's w (LRS) and gamma (ARS)
    ars_weight: float = 0.5
    fairness_columns: tuple[str, ...] = ()  # `report: {fairness: {columns}}`: DD-Ranking's scores in the paper table
    font: str = "cm"  # the figures' typeface: a key of bench.report.plots.FONTS
