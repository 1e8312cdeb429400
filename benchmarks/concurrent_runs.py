"""Benchmark: one suite on one store, by one `bench run`, by two `bench run` at once, and by `--workers 2`.

Runs a suite to completion on an empty store three ways, each process with one torch thread:

  one      a single `bench run --workers 1`
  two      two `bench run --workers 1` started together: the store's task claims split the tasks
  workers  one `bench run --workers 2`: two worker processes, split the same way

and prints the wall time of each, the ratios to `one`, the records each store holds (a task computed twice would
show) and the tasks each process ran. The default suite is a small digits one (random and DM (60 iterations) at
IPC 1 and 10, 2 distillation seeds, ConvNet and MLP evaluations of 60 epochs over 2 seeds: 8 synthetic sets, 32
evaluations); `--suite`
runs another (e.g. suites/demo.yaml). With two free cores `two` and `workers` should take about half of
`one`'s time; on a loaded machine the figures are noisier, so run it when the machine is quiet.

Usage: python benchmarks/concurrent_runs.py [--suite FILE] [--keep DIR] [--modes one,two,workers]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """\
name: concurrent
datasets: [digits]
ipc: [1, 10]
eval_archs: [ConvNet, MLP]
distill_seeds: [0, 1]
seeds: [0, 1]
methods:
  - name: random
  - name: dm
    params: {iterations: 60}
eval: {epochs: 60}
"""


def run(workdir: Path, processes: int, workers: int) -> tuple[float, list[int]]:
    """Wall seconds until `processes` concurrent `bench run --workers W` of the suite in `workdir` have all
    finished, and the tasks each ran."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "bench.cli", "run", "suite.yaml", "--device", "cpu", "--workers", str(workers)]
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(processes)]
    outs = [p.communicate() for p in procs]
    seconds = time.perf_counter() - start
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0:
            sys.exit(f"bench run failed in {workdir}:\n{err}")
    ran = [int(re.search(r"done: (\d+) task\(s\) ran", out).group(1)) for out, _ in outs]
    return seconds, ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, help="suite file to run (default: a small digits suite)")
    parser.add_argument("--keep", type=Path, help="keep the work folders under this folder")
    parser.add_argument("--modes", default="one,two,workers", help="which of one, two, workers to run")
    args = parser.parse_args()
    modes = args.modes.split(",")
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-concurrent-"))
    text = args.suite.read_text() if args.suite else SUITE
    times = {}
    for label, processes, workers in (("one", 1, 1), ("two", 2, 1), ("workers", 1, 2)):
        if label not in modes:
            continue
        workdir = root / label
        workdir.mkdir(parents=True)
        (workdir / "suite.yaml").write_text(text)
        seconds, ran = run(workdir, processes, workers)
        records = len(list((workdir / "results" / "records").rglob("*.json")))
        times[label] = seconds
        print(f"{label:8s} {seconds:7.1f} s wall, tasks run per process {ran}, {records} records", flush=True)
    for label in (m for m in ("two", "workers") if m in times and "one" in times):
        print(f"{label} / one: {times[label] / times['one']:.2f}x the wall time "
              f"({times['one'] / times[label]:.2f}x the throughput), on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
