"""Benchmark: `bench run --dry-run` of a suite that imports a large file, with the imported files' hashes kept
between commands (`bench.methods.specs.hash_cache`) against hashing the file in every command.

Planning puts each imported file's SHA-256 in its distillation's key, so every `bench run`, `status` and `report`
hashes every import. Writes one file of --gb GB of random bytes (the dry run hashes it, it does not read it as a
set), waits out the racy-clean interval (`RACY_NS`) so its hash may be kept, then alternates, in a fresh process
each (interpreter start and imports included):

  every command hashes  BENCH_CACHE an empty folder each time
  hash kept             BENCH_CACHE one folder, filled by a first, untimed command

Prints each run's seconds, the best of each and their ratio.

Usage: python benchmarks/import_hashes.py [--gb 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.methods.specs import RACY_NS

SUITE = """\
name: imported
datasets: [digits]
ipc: [10]
eval_archs: [ConvNet]
methods:
  - {name: import, params: {path: images.pt}}
seeds: [0]
"""


def dry_run(root: Path, cache: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.cli", "run", "suite.yaml", "--dry-run"], cwd=root,
                          capture_output=True, text=True, env={**os.environ, "BENCH_CACHE": str(cache)})
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bench.yaml").write_text("store: results\nreports: reports\ndevice: cpu\nworkers: 1\n")
        (root / "suite.yaml").write_text(SUITE)
        with open(root / "images.pt", "wb") as f:
            for _ in range(round(args.gb * 1024)):
                f.write(os.urandom(1 << 20))
        time.sleep(RACY_NS / 1e9 + 0.5)
        kept = root / "kept"
        dry_run(root, kept)
        times: dict[str, list[float]] = {"every command hashes": [], "hash kept": []}
        for round_ in range(args.rounds):
            times["every command hashes"].append(dry_run(root, root / f"empty-{round_}"))
            times["hash kept"].append(dry_run(root, kept))
            print(f"round {round_ + 1}: " + ", ".join(f"{name} {t[-1]:.2f} s" for name, t in times.items()),
                  flush=True)
    every, cached = (min(t) for t in times.values())
    print(f"bench run --dry-run importing {args.gb:g} GB: every command hashes {every:.2f} s, hash kept "
          f"{cached:.2f} s (best of {args.rounds}): {every / cached:.2f}x")


if __name__ == "__main__":
    main()
