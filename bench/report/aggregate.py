"""Records -> one row per cell: mean +- std of the final-epoch accuracy over the cell's runs."""

from __future__ import annotations

import pandas as pd

from bench.plan import Plan
from bench.store import Store

# Population std, as `np.std` in the reference code (DatasetCondensation, MTT, IDM); stated in every report.
DDOF = 0

COLUMNS = ["method", "dataset", "ipc", "arch", "mean", "std", "n", "n_expected", "artifact_bytes",
           "distill_time_s"]


def aggregate(plan: Plan, store: Store) -> pd.DataFrame:
    """One row per planned cell, in plan order; cells without records have n = 0 and NaN mean/std."""
    keys = {}
    for e in plan.evaluate:
        keys.setdefault(e.cell, []).append(e.key)
    rows = []
    for cell in plan.cells:
        records = store.read_records(dict.fromkeys(keys[cell]))
        acc = pd.Series([r["accuracy"] for r in records], dtype=float)
        rows.append({"method": cell.method, "dataset": cell.dataset, "ipc": cell.ipc, "arch": cell.arch,
                     "mean": acc.mean() if len(acc) else float("nan"),
                     "std": acc.std(ddof=DDOF) if len(acc) else float("nan"),
                     "n": len(acc), "n_expected": len(set(keys[cell])),
                     "artifact_bytes": records[0]["artifact_bytes"] if records else None,
                     "distill_time_s": (sum({r["distill_key"]: r["distill_time_s"] for r in records}.values())
                                        if records else None)})
    return pd.DataFrame(rows, columns=COLUMNS)
