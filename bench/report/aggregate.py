"""Records -> one DataFrame with one row per cell: mean ± std of the final-epoch accuracy over the cell's runs,
the cost of the cell's synthetic set (stored bytes, share of the training set, seconds), the method's group,
and one "Whole Dataset" row per data set x eval arch (x recipe) measured by the whole-dataset stage.

Every view renders this one frame; `reference_frame` builds the same shape from a paper's published table,
so a paper's own table goes through exactly the code that renders a reproduction.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pandas as pd

from bench.config import Suite
from bench.plan import Plan, whole_dataset_recipe
from bench.reference import PAPERS
from bench.store import Store
from bench.whole import whole_recipe

# Population std, as `np.std` in the reference code (DatasetCondensation, MTT, IDM); stated in every report.
DDOF = 0

COLUMNS = ["method", "group", "dataset", "ipc", "arch", "mean", "std", "n", "n_expected", "artifact_bytes",
           "train_bytes", "ratio_pct", "distill_time_s", "expert_time_s", "over_budget"]

# What aggregate reads of each record (train_bytes and expert_time_s are absent from older records).
RECORD_FIELDS = ("key", "accuracy", "artifact_bytes", "train_bytes", "distill_key", "distill_time_s", "expert_time_s",
                 "over_budget")
WHOLE = "Whole Dataset"
CORESETS = frozenset({"random", "herding", "kcenter", "forgetting"})
# Row groups of a paper table, in order; reference tables add the papers' own groups.
GROUP_TITLES = {"coreset": "Coresets", "distillation": "Distillation methods",
                "parametrization": "Parametrized synthetic sets", "proposed": "Proposed in the paper",
                "plugin": "Your methods", "whole": WHOLE}


def method_groups(suite: Suite) -> dict[str, str]:
    """Label -> group: coresets by name, methods from plugins or entry points as the user's, others distillation."""
    from bench.methods.registry import ORIGIN
    groups = {}
    for m in suite.methods:
        if m.cls.name in CORESETS:
            groups[m.label] = "coreset"
        elif ORIGIN.get(m.cls.name, "built-in") != "built-in":
            groups[m.label] = "plugin"
        else:
            groups[m.label] = "distillation"
    return groups


def aggregate(plan: Plan, store: Store) -> pd.DataFrame:
    """One row per planned cell, in plan order, then the whole-dataset rows; a cell without records has n = 0
    and NaN mean/std.

    Vectorised: the store is read once for every key of the plan, and pandas groups the runs by cell, so a
    100,000-record store costs one pass over its files, not one DataFrame per cell.
    """
    cell_index = {cell: i for i, cell in enumerate(plan.cells)}
    links = pd.DataFrame({"cell": [cell_index[e.cell] for e in plan.evaluate],
                          "key": [e.key for e in plan.evaluate]}).drop_duplicates()
    records = pd.DataFrame(store.read_fields(links["key"].drop_duplicates(), RECORD_FIELDS), columns=RECORD_FIELDS)
    runs = links.merge(records.fillna({"expert_time_s": 0.0, "over_budget": False}), on="key")
    by_cell = runs.groupby("cell", sort=True)
    per_artifact = runs.drop_duplicates(["cell", "distill_key"]).groupby("cell")

    groups = method_groups(plan.suite)
    cells = pd.DataFrame({"method": [c.method for c in plan.cells], "group": [groups[c.method] for c in plan.cells],
                          "dataset": [c.dataset for c in plan.cells],
                          "ipc": pd.array([c.ipc for c in plan.cells], dtype="Int64"),
                          "arch": [c.arch for c in plan.cells]})
    cells["mean"] = by_cell["accuracy"].mean()
    cells["std"] = by_cell["accuracy"].std(ddof=DDOF)
    cells["n"] = by_cell.size().reindex(cells.index, fill_value=0)
    cells["n_expected"] = links.groupby("cell").size().reindex(cells.index, fill_value=0)
    # Bytes of the first run's artifact; the compression ratio is computed from the bytes stored (not the
    # decoded image count), against the full training set as the same tensors (float32 images + int64 labels).
    first = by_cell[["artifact_bytes", "train_bytes"]].first()
    cells["artifact_bytes"] = first["artifact_bytes"].astype("Int64")
    cells["train_bytes"] = first["train_bytes"].astype("Int64")
    cells["ratio_pct"] = 100 * first["artifact_bytes"] / first["train_bytes"]
    # Seconds per artifact (mean over distill seeds) and of the shared expert stages it needed.
    cells["distill_time_s"] = per_artifact["distill_time_s"].mean()
    cells["expert_time_s"] = per_artifact["expert_time_s"].mean()
    # Stored image values above IPC plain images per class (NSD Eq. 3): marked in every view.
    cells["over_budget"] = by_cell["over_budget"].any().reindex(cells.index, fill_value=False).astype(bool)
    whole = whole_rows(plan, store, cells)
    frame = pd.concat([cells, whole], ignore_index=True) if len(whole) else cells
    return frame[COLUMNS]


def whole_rows(plan: Plan, store: Store, cells: pd.DataFrame) -> pd.DataFrame:
    """The whole-dataset stage's accuracies, one row per data set x eval arch x recipe (mean ± std over seeds).

    Labelled "Whole Dataset"; when methods of the suite use different recipes, each recipe gets its own row,
    named after the first method evaluated with it.
    """
    recipe_users: dict[str, list[str]] = defaultdict(list)
    for m in plan.suite.methods:
        recipe = whole_recipe(whole_dataset_recipe(plan.suite, m.recipe))
        recipe_users[json.dumps(recipe.as_dict(), sort_keys=True)].append(m.label)
    runs: dict[tuple[str, str, str], list[tuple[float, float]]] = defaultdict(list)
    expected: dict[tuple[str, str, str], int] = defaultdict(int)
    for task in plan.whole:
        spec = task.spec
        group = (spec.dataset, spec.arch, json.dumps(spec.params["recipe"], sort_keys=True))
        expected[group] += 1
        if store.has_artifact(task.key):
            tensors, meta = store.load_artifact(task.key)
            runs[group].append((float(tensors["accuracy"]), meta["time_s"]))
    train_bytes = cells.dropna(subset=["train_bytes"]).groupby("dataset")["train_bytes"].first()
    rows = []
    for (dataset, arch, recipe), n_expected in expected.items():
        done = runs.get((dataset, arch, recipe), [])
        acc = pd.Series([a for a, _ in done], dtype=float)
        label = WHOLE if len(recipe_users) == 1 else f"{WHOLE} ({recipe_users[recipe][0]}'s recipe)"
        rows.append({"method": label, "group": "whole", "dataset": dataset, "ipc": pd.NA, "arch": arch,
                     "mean": acc.mean(), "std": acc.std(ddof=DDOF) if len(acc) else float("nan"),
                     "n": len(acc), "n_expected": n_expected, "artifact_bytes": train_bytes.get(dataset, pd.NA),
                     "train_bytes": train_bytes.get(dataset, pd.NA), "ratio_pct": 100.0,
                     "distill_time_s": float("nan"),
                     "expert_time_s": sum(t for _, t in done) / len(done) if done else float("nan"),
                     "over_budget": False})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.astype({"ipc": "Int64", "artifact_bytes": "Int64", "train_bytes": "Int64", "n": int,
                         "n_expected": int})


def reference_frame(paper: str, table: str) -> pd.DataFrame:
    """A paper's published table in aggregate's shape (plus `venue`), so views render it like a reproduction.

    n and n_expected are 0: the papers state their number of runs in prose, not per cell.
    """
    values = PAPERS[paper].tables[table].values
    frame = pd.DataFrame({
        "method": [v.method for v in values], "group": [v.group for v in values],
        "dataset": [v.dataset for v in values], "ipc": pd.array([v.ipc for v in values], dtype="Int64"),
        "arch": [v.arch for v in values], "mean": [v.mean for v in values],
        "std": [float("nan") if v.std is None else v.std for v in values], "n": 0, "n_expected": 0,
        "artifact_bytes": pd.array([None] * len(values), dtype="Int64"),
        "train_bytes": pd.array([None] * len(values), dtype="Int64"),
        "ratio_pct": [float("nan") if v.ratio_pct is None else v.ratio_pct for v in values],
        "distill_time_s": float("nan"), "expert_time_s": float("nan"),
        "venue": [v.venue for v in values]})
    return frame
