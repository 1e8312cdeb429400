"""Records -> one DataFrame with one row per expected cell: mean ± std of the final-epoch accuracy over the cell's
runs (a diverged run has no accuracy: it is counted in `n_diverged`, never averaged), the cost of the cell's synthetic set (stored bytes, share of the training set, seconds), the method's group,
and one "Whole Dataset" row per data set x eval arch (x recipe) from the whole-dataset runs' records.

Every view renders this one frame; `reference_frame` builds the same shape from a paper's published table,
so a paper's own table goes through exactly the code that renders a reproduction.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd

from bench.reference import PAPERS
from bench.report.inputs import RECORD_FIELDS, WHOLE, ExpectedCell

# Population std, as `np.std` in the reference code (DatasetCondensation, MTT, IDM); stated in every report.
DDOF = 0

COLUMNS = ["method", "group", "dataset", "ipc", "arch", "mean", "std", "n", "n_diverged", "n_expected",
           "artifact_bytes", "train_bytes", "ratio_pct", "distill_time_s", "expert_time_s", "over_budget"]

# Row groups of a paper table, in order; reference tables add the papers' own groups.
GROUP_TITLES = {"coreset": "Coresets", "distillation": "Distillation methods",
                "parametrization": "Parametrized synthetic sets", "proposed": "Proposed in the paper",
                "plugin": "Your methods", "whole": WHOLE}


def aggregate(cells: Sequence[ExpectedCell], records: Iterable[tuple]) -> pd.DataFrame:
    """One row per expected cell, in order; a cell without records has n = 0 and NaN mean/std.

    `records`: one tuple of `RECORD_FIELDS` per record (the store's `read_fields`). Vectorised: pandas groups
    the runs by cell, so a 100,000-record suite costs one pass over its records, not one DataFrame per cell.
    """
    links = pd.DataFrame({"cell": [i for i, c in enumerate(cells) for _ in c.keys],
                          "key": [k for c in cells for k in c.keys]}).drop_duplicates()
    runs = links.merge(pd.DataFrame(records, columns=RECORD_FIELDS), on="key")
    runs["accuracy"] = pd.to_numeric(runs["accuracy"]).astype(float)  # None (diverged) -> NaN, skipped by mean
    by_cell = runs.groupby("cell", sort=True)
    per_artifact = runs.drop_duplicates(["cell", "distill_key"]).groupby("cell")

    frame = pd.DataFrame({"method": [c.method for c in cells], "group": [c.group for c in cells],
                          "dataset": [c.dataset for c in cells],
                          "ipc": pd.array([c.ipc for c in cells], dtype="Int64"), "arch": [c.arch for c in cells]})
    frame["mean"] = by_cell["accuracy"].mean()
    frame["std"] = by_cell["accuracy"].std(ddof=DDOF)
    frame["n"] = by_cell["accuracy"].count().reindex(frame.index, fill_value=0)
    frame["n_diverged"] = by_cell["diverged"].count().reindex(frame.index, fill_value=0)
    frame["n_expected"] = links.groupby("cell").size().reindex(frame.index, fill_value=0)
    # Bytes of the first run's artifact; the compression ratio is computed from the bytes stored (not the
    # decoded image count), against the full training set as the same tensors (float32 images + int64 labels).
    first = by_cell[["artifact_bytes", "train_bytes"]].first()
    frame["artifact_bytes"] = first["artifact_bytes"].astype("Int64")
    frame["train_bytes"] = first["train_bytes"].astype("Int64")
    frame["ratio_pct"] = 100 * first["artifact_bytes"] / first["train_bytes"]
    # Seconds per artifact (mean over distill seeds) and of the shared expert stages it needed.
    frame["distill_time_s"] = per_artifact["distill_time_s"].mean()
    frame["expert_time_s"] = per_artifact["expert_time_s"].mean()
    # Stored image values above IPC plain images per class (NSD Eq. 3): marked in every view.
    frame["over_budget"] = by_cell["over_budget"].any().reindex(frame.index, fill_value=False).astype(bool)
    return _whole_rows(frame, by_cell["wall_time_s"].mean())[COLUMNS]


def _whole_rows(frame: pd.DataFrame, seconds: pd.Series) -> pd.DataFrame:
    """The Whole Dataset rows' cost: the full training set (its bytes as the data set's cells count them,
    100 %), and the seconds of a whole-dataset run (in `expert_time_s`, as a shared stage)."""
    cell = frame["group"] != "whole"
    train = frame[cell].dropna(subset=["train_bytes"]).groupby("dataset")["train_bytes"].first()
    whole_bytes = frame["dataset"].map(train).astype("Int64")
    frame["artifact_bytes"] = frame["artifact_bytes"].where(cell, whole_bytes)
    frame["train_bytes"] = frame["train_bytes"].where(cell, whole_bytes)
    frame["ratio_pct"] = frame["ratio_pct"].where(cell, 100.0)
    frame["distill_time_s"] = frame["distill_time_s"].where(cell)
    frame["expert_time_s"] = frame["expert_time_s"].where(cell, seconds)
    return frame


def reference_frame(paper: str, table: str) -> pd.DataFrame:
    """A paper's published table in aggregate's shape (plus `venue`), so views render it like a reproduction.

    n and n_expected are 0: the papers state their number of runs in prose, not per cell.
    """
    values = PAPERS[paper].tables[table].values
    frame = pd.DataFrame({
        "method": [v.method for v in values], "group": [v.group for v in values],
        "dataset": [v.dataset for v in values], "ipc": pd.array([v.ipc for v in values], dtype="Int64"),
        "arch": [v.arch for v in values], "mean": [v.mean for v in values],
        "std": [float("nan") if v.std is None else v.std for v in values], "n": 0, "n_diverged": 0, "n_expected": 0,
        "artifact_bytes": pd.array([None] * len(values), dtype="Int64"),
        "train_bytes": pd.array([None] * len(values), dtype="Int64"),
        "ratio_pct": [float("nan") if v.ratio_pct is None else v.ratio_pct for v in values],
        "distill_time_s": float("nan"), "expert_time_s": float("nan"),
        "venue": [v.venue for v in values]})
    return frame
