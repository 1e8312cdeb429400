"""Benchmark: `bench report` on a store of 100,000 evaluation records.

Fabricates a suite of 40 methods x 5 data sets x 5 IPCs x 4 evaluation architectures (4,000 cells) with
5 distillation x 5 evaluation seeds each, writes one record per run into a temporary store with the
same fields `bench run` writes, then times:

  in one process, interleaved, best of two:
    new       the suite's expected cells, Store.read_fields through the suite's roll-up (rollups/<suite>.json:
              only records new since the last report are parsed) + the vectorised `aggregate`
    baseline  the per-record path bench used before: for each cell, `Store.read_record` on each of its keys
              (pathlib read + json) and one pandas Series per cell
  `bench report` as a user runs it, a fresh process each (interpreter start and imports included):
    cold      no roll-up and no figures yet: every record parsed, every figure drawn (one process per core)
    warm      nothing changed since: best of three, against the 5 s budget on an idle 2-core machine
    100 new   after 100 runs of one data set were written again (new files, as `bench run` writes them): their
              records parsed, the figures whose numbers changed drawn again

Usage: python benchmarks/report_100k.py [--keep DIR]   (needs ~0.5 GB of disk for the records)
"""

from __future__ import annotations

import argparse
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import pandas as pd

from bench.config import load_suite
from bench.plan import Plan, content_key, expected_cells, make_plan
from bench.records import Record
from bench.report.aggregate import DDOF, aggregate
from bench.report.inputs import RECORD_FIELDS, record_keys
from bench.store import Store

BUDGET_S = 5.0
DATASETS = ["svhn", "cifar10", "cifar100", "mnist", "fashionmnist"]


def suite_yaml() -> str:
    methods = [f"  - name: {m}" for m in ("random", "herding", "kcenter", "forgetting")]
    methods += [f"  - {{name: dm, label: dm-{i:02d}, params: {{iterations: {100 + i}}}}}" for i in range(36)]
    return "\n".join([
        "name: report-100k", "description: 100,000 fabricated records (benchmarks/report_100k.py).",
        f"datasets: [{', '.join(DATASETS)}]", "ipc: [1, 10, 20, 50, 100]",
        "eval_archs: [ConvNet, AlexNet, VGG11, ResNet18]", "seeds: [0, 1, 2, 3, 4]",
        "distill_seeds: [0, 1, 2, 3, 4]", "whole_dataset: true", "methods:", *methods]) + "\n"


def fabricate(plan: Plan, store: Store) -> None:
    """One record per evaluation run, written by Store.write_record (so the files are exactly what the store
    reads), with fsync switched off: durability is irrelevant for a throw-away store, and 100,000 fsyncs
    would take minutes."""
    rng = random.Random(0)
    versions = {"bench": "0.1.0", "torch": "2.5.1", "numpy": "2.1.0", "python": "3.11.7"}
    with mock.patch.object(os, "fsync", lambda fd: None):
        for e in plan.evaluate:
            d = e.distill
            base = 20 + 10 * math.log10(d.ipc) + (15 if d.method.cls.name == "dm" else 0)
            store.write_record(Record(
                key=e.key, suite=plan.suite.name, group=d.method.cls.group, method=d.method.cls.name,
                method_label=d.method.label, method_version=1, params=d.identity["params"],
                params_hash=content_key(d.identity["params"]), dataset=d.dataset, ipc=d.ipc,
                distill_arch=d.arch, distill_seed=d.seed, distill_key=d.key,
                artifact_bytes=d.ipc * 10 * 3 * 32 * 32 * 4, train_bytes=50_000 * 3 * 32 * 32 * 4,
                distill_time_s=rng.uniform(1, 100), expert_time_s=0.0, zca=False,
                artifact_format="images", eval_arch=e.arch, recipe=e.recipe.as_dict(),
                recipe_hash=content_key(e.recipe.as_dict()), lr_used=0.01, eval_seed=e.seed,
                accuracy=base + rng.gauss(0, 1), wall_time_s=rng.uniform(10, 60),
                created="2025-01-01T00:00:00+00:00", device="NVIDIA H100", versions=versions,
                git_commit="0" * 40, job_id="123456_7", host="node01"))


def new_aggregate(plan: Plan, store: Store) -> pd.DataFrame:
    """What `bench report` does: the suite's expected cells, their records' fields, the vectorised aggregate."""
    cells = expected_cells(plan)
    return aggregate(cells, store.read_fields(record_keys(cells), RECORD_FIELDS, rollup=plan.suite.name))


def baseline_aggregate(plan: Plan, store: Store) -> pd.DataFrame:
    """The per-record path: each cell reads its records one by one and builds its own pandas Series."""
    keys: dict = {}
    for e in plan.evaluate:
        keys.setdefault(e.cell, []).append(e.key)
    rows = []
    for cell in plan.cells:
        records = [r for r in map(store.read_record, dict.fromkeys(keys[cell])) if r is not None]
        acc = pd.Series([r.accuracy for r in records], dtype=float)
        per_artifact = list({r.distill_key: r for r in records}.values())
        rows.append({"method": cell.method, "dataset": cell.dataset, "ipc": cell.ipc, "arch": cell.arch,
                     "mean": acc.mean(), "std": acc.std(ddof=DDOF), "n": len(acc),
                     "n_expected": len(set(keys[cell])),
                     "artifact_bytes": records[0].artifact_bytes if records else None,
                     "ratio_pct": 100 * records[0].artifact_bytes / records[0].train_bytes if records else None,
                     "distill_time_s": sum(r.distill_time_s for r in per_artifact) / max(len(per_artifact), 1)})
    return pd.DataFrame(rows)


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the store's reader workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(label: str, fn, *args) -> tuple[object, float, float]:
    """Run fn(*args); print and return (result, wall seconds, CPU seconds incl. worker processes)."""
    wall, cpu = time.perf_counter(), _cpu()
    result = fn(*args)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    print(f"  {label:<46} {wall:7.2f} s wall {cpu:7.2f} s CPU", flush=True)
    return result, wall, cpu


def run_cli(root: Path) -> None:
    """`bench report` as a user runs it: a fresh process, interpreter start and imports included."""
    (root / "bench.yaml").write_text("store: store\nreports: reports\n")
    subprocess.run([sys.executable, "-m", "bench.cli", "--config", str(root / "bench.yaml"), "report",
                    str(root / "suite.yaml")], check=True, stdout=subprocess.DEVNULL)


def rewrite(plan: Plan, store: Store, n: int) -> None:
    """Write the records of the first `n` evaluations again with another accuracy: n runs that just finished."""
    with mock.patch.object(os, "fsync", lambda fd: None):
        for e in plan.evaluate[:n]:
            old = store.read_record(e.key)
            store.write_record(replace(old, accuracy=old.accuracy + 0.5))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="fabricate into (or reuse) this folder and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-100k-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        (root / "suite.yaml").write_text(suite_yaml())
        suite, *t_load = timed("load suite", load_suite, root / "suite.yaml")
        plan, *t_plan = timed("plan (cells -> task keys)", make_plan, suite)
        store = Store(root / "store")
        if not (root / "store" / "records").exists():
            print(f"fabricating {len(plan.evaluate):,} records in {root} ...", flush=True)
            timed("fabricate (not part of the report)", fabricate, plan, store)
        shutil.rmtree(root / "store" / "rollups", ignore_errors=True)
        shutil.rmtree(root / "reports", ignore_errors=True)
        print(f"{len(plan.cells):,} cells, {len(plan.evaluate):,} records; {len(os.sched_getaffinity(0))} cores; "
              f"load average {os.getloadavg()[0]:.1f} (other processes inflate wall times, not CPU times)")
        # Both paths read the same 100,000 files: interleave them and keep each one's best of two, so neither
        # gains from finding the page cache warmed by the other. The first new read builds the roll-up.
        timed("aggregate, new, building the roll-up", new_aggregate, plan, store)
        runs: dict[str, list[tuple[float, float]]] = {"new": [], "old": []}
        for _ in range(2):
            frame, *t = timed("aggregate, new (through the roll-up)", new_aggregate, plan, store)
            runs["new"].append(tuple(t))
            old, *t = timed("aggregate, baseline (per-record, per-cell)", baseline_aggregate, plan, store)
            runs["old"].append(tuple(t))
        t_new, t_old = min(runs["new"]), min(runs["old"])
        check = frame[frame["group"] != "whole"].reset_index(drop=True)
        assert (check["n"] == old["n"]).all() and ((check["mean"] - old["mean"]).abs() < 1e-9).all()
        shutil.rmtree(root / "store" / "rollups", ignore_errors=True)
        _, *t_cold = timed("`bench report`, cold (no roll-up, no figures)", run_cli, root)
        t_warm = min((timed("`bench report`, warm (nothing new)", run_cli, root) for _ in range(3)),
                     key=lambda r: r[1])[1:]
        rewrite(plan, store, 100)
        _, *t_new100 = timed("`bench report` after 100 runs were written again", run_cli, root)
        print(f"\naggregate: new {t_new[0]:.2f} s wall ({t_new[1]:.2f} s CPU), baseline {t_old[0]:.2f} s wall "
              f"({t_old[1]:.2f} s CPU): speed-up {t_old[0] / t_new[0]:.2f}x wall")
        print(f"plan: {t_plan[0]:.2f} s wall")
        print(f"`bench report` end to end: cold {t_cold[0]:.2f} s, warm {t_warm[0]:.2f} s ({t_warm[1]:.2f} s CPU), "
              f"after 100 new runs {t_new100[0]:.2f} s wall; budget {BUDGET_S:.0f} s wall (warm) on an idle 2-core "
              f"machine: {'OK' if t_warm[0] < BUDGET_S else 'OVER (see the load average)'}")
        return 0 if t_warm[0] < BUDGET_S else 1
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
