"""Benchmark: `bench run --dry-run` (validate the suite, expand the plan, check the store) of a 10,000-cell suite.

Writes a suite of 20 method entries (DM with 20 distinct iteration counts) x 5 data sets x 10 IPCs x 10
evaluation architectures = 10,000 cells (1,000 distillations and 20,000 evaluations over 2 seeds), then times,
in a fresh process each (as a user runs it, interpreter start and imports included), best of 3:

  validate  `bench validate SUITE`
  dry-run   `bench run SUITE --dry-run` against an empty store (every task is pending)

Usage: python benchmarks/plan_10k.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASETS = ["mnist", "fashionmnist", "svhn", "cifar10", "cifar100"]
IPCS = [1, 2, 3, 4, 5, 10, 20, 30, 40, 50]
ARCHS = ["ConvNet", "ConvNetW64", "ConvNetW256", "ConvNetBN", "ConvNetIN", "ConvNetNN", "ConvNetAP", "ConvNetMP",
         "AlexNet", "MLP"]


def suite() -> str:
    methods = "\n".join(f"  - {{name: dm, label: dm-{i}, params: {{iterations: {100 * (i + 1)}}}}}" for i in range(20))
    return (f"name: plan-10k\ndatasets: [{', '.join(DATASETS)}]\nipc: [{', '.join(map(str, IPCS))}]\n"
            f"eval_archs: [{', '.join(ARCHS)}]\nmethods:\n{methods}\nseeds: [0, 1]\n")


def best_of(cmd: list[str], cwd: Path, runs: int = 3) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr}")
        out = done.stdout
    return min(times), out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-plan-10k-") as root:
        path = Path(root) / "plan-10k.yaml"
        path.write_text(suite())
        bench = [sys.executable, "-m", "bench.cli"]
        seconds, out = best_of([*bench, "validate", str(path)], Path(root))
        print(f"validate  {seconds:6.2f} s   {out.splitlines()[0][:120]}")
        seconds, out = best_of([*bench, "run", str(path), "--dry-run"], Path(root))
        print(f"dry-run   {seconds:6.2f} s   {out.splitlines()[0][:120]}")


if __name__ == "__main__":
    main()
