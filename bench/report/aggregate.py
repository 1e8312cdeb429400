"""Records -> one row per cell: mean +- std of the final-epoch accuracy over the cell's runs, and the
cost of the cell's synthetic set (stored bytes; distillation and expert-stage seconds per artifact)."""

from __future__ import annotations

import pandas as pd

from bench.plan import Plan
from bench.store import Store

# Population std, as `np.std` in the reference code (DatasetCondensation, MTT, IDM); stated in every report.
DDOF = 0

COLUMNS = ["method", "dataset", "ipc", "arch", "mean", "std", "n", "n_expected", "artifact_bytes", "ratio_pct",
           "distill_time_s", "expert_time_s"]


def aggregate(plan: Plan, store: Store) -> pd.DataFrame:
    """One row per planned cell, in plan order; cells without records have n = 0 and NaN mean/std."""
    keys = {}
    for e in plan.evaluate:
        keys.setdefault(e.cell, []).append(e.key)
    rows = []
    for cell in plan.cells:
        records = store.read_records(dict.fromkeys(keys[cell]))
        acc = pd.Series([r["accuracy"] for r in records], dtype=float)
        per_artifact = {r["distill_key"]: r for r in records}.values()
        rows.append({"method": cell.method, "dataset": cell.dataset, "ipc": cell.ipc, "arch": cell.arch,
                     "mean": acc.mean() if len(acc) else float("nan"),
                     "std": acc.std(ddof=DDOF) if len(acc) else float("nan"),
                     "n": len(acc), "n_expected": len(set(keys[cell])),
                     "artifact_bytes": records[0]["artifact_bytes"] if records else None,
                     # Compression ratio from the bytes stored (not the decoded image count), against the
                     # full training set as the same tensors (float32 images + int64 labels).
                     "ratio_pct": _ratio(records[0]) if records else None,
                     "distill_time_s": _mean(r["distill_time_s"] for r in per_artifact),
                     "expert_time_s": _mean(r.get("expert_time_s", 0.0) for r in per_artifact)})
    return pd.DataFrame(rows, columns=COLUMNS)


def _ratio(record: dict) -> float | None:
    """None for records written before bench stored the training set's size."""
    return 100 * record["artifact_bytes"] / record["train_bytes"] if "train_bytes" in record else None


def _mean(values) -> float | None:
    """Mean time per artifact (over distill seeds); None for a cell with no record yet."""
    values = list(values)
    return sum(values) / len(values) if values else None
