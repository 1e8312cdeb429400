"""Benchmark: peak memory of a distillation loading MTT's expert stage, one file per expert against one tensor.

Builds a CIFAR-100-shaped trajectory stage (--experts experts x (--epochs + 1) snapshots of the parameters of a
ConvNet of width 128 and depth 3 on 32x32x3 images with 100 classes, random values) in a temporary store,
through `Store.save_artifact` as `run_expert` calls it: stored as mtt's builder declares it (one file per expert,
`bench.store.Parts`) and stored whole (one tensor in one file: the format of a bench before per-expert files,
which bench still reads). Then, each in a fresh process, measures the peak RSS (`ru_maxrss`) of what a
distillation does: load the stage as `run_distill` does (`_load_input`), then fetch --segments segments with
mtt's `next_segment`. A process that only imports the same modules gives the floor. Prints the three side by
side and the ratio, and deletes the store.

The stage stored whole is measured only where the memory it needs (about twice the stage: the file's bytes,
then its tensors) is available; elsewhere it is skipped with a message (run with fewer --experts).

Usage: python benchmarks/expert_memory.py [--experts 100] [--epochs 50] [--segments 20] [--dir TMPDIR]
       (writes about 2 x 10.3 GB for the defaults, 1 x where the stage stored whole is skipped)
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GB = 1e9
NEW, OLD = "a1-per-expert", "b2-whole"  # the stage's two store keys


def convnet_parameters() -> int:
    """Parameters of the CIFAR-100 ConvNet (width 128, depth 3, instance norm): one snapshot of a trajectory."""
    from bench import nets
    return sum(p.numel() for p in nets.get_network("ConvNet", 3, 100, 32).parameters())


def available_bytes() -> int:
    """MemAvailable: what a process may take without pushing others out."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def build(root: str, experts: int, epochs: int, whole: bool) -> None:
    """Write the stage into the store at `root`: per expert, and (with `whole`) as one tensor."""
    import torch

    from bench.experts import EXPERT_PARTS
    from bench.executors.tasks import provenance
    from bench.records import ArtifactMeta
    from bench.store import Store
    g = torch.Generator().manual_seed(0)
    tensors = {"trajectories": torch.randn(experts, epochs + 1, convnet_parameters(), generator=g),
               "test_accuracy": 100 * torch.rand(experts, generator=g)}
    store = Store(Path(root))
    for key in (NEW, OLD) if whole else (NEW,):
        meta = ArtifactMeta(key, {"kind": "expert", "expert": "trajectories", "benchmark": key}, 0.0,
                            provenance(torch.device("cpu")))
        store.save_artifact(tensors, meta, parts=EXPERT_PARTS["trajectories"] if key == NEW else ())


def measure(root: str, key: str, segments: int) -> None:
    """Print the peak RSS of loading the stage `key` and fetching `segments` segments as MTT does (key "": only
    the imports, the floor)."""
    import torch

    from bench.executors.tasks import _load_input
    from bench.methods.mtt import next_segment
    from bench.store import Store
    start = time.perf_counter()
    if key:
        trajectories = _load_input(Store(Path(root)), key, "the benchmark's stage")[0]["trajectories"]
        snapshots = trajectories.shape[1]
        expert_epochs = min(2, snapshots - 1)  # CIFAR-100's MTT presets: 2 expert epochs, start epochs below 20
        max_start = min(20, snapshots - expert_epochs)
        g, order = torch.Generator().manual_seed(0), []
        for _ in range(segments):
            next_segment(trajectories, order, max_start, expert_epochs, g, torch.device("cpu"))
    print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "seconds": time.perf_counter() - start}))


def run(*args: str) -> dict:
    """This script in a fresh process, in one of its modes; what it printed last, as JSON."""
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experts", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the temporary store goes")
    parser.add_argument("--mode", choices=["build", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    parser.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.mode == "build":
        return build(a.root, a.experts, a.epochs, a.whole)
    if a.mode == "measure":
        return measure(a.root, a.key, a.segments)

    parameters = convnet_parameters()
    stage = a.experts * (a.epochs + 1) * parameters * 4
    free, memory = shutil.disk_usage(a.dir).free, available_bytes()
    whole = memory > 2.2 * stage + 2 * GB
    if memory < stage + 2 * GB or free < stage * (1 + whole) + 1 * GB:
        sys.exit(f"a stage of {stage / GB:.2f} GB needs {(stage + 2 * GB) / GB:.1f} GB of memory to build "
                 f"({memory / GB:.1f} available) and {stage * (1 + whole) / GB:.1f} GB of disk under {a.dir} "
                 f"({free / GB:.1f} free): run with fewer --experts")
    print(f"stage: {a.experts} experts x {a.epochs + 1} snapshots x {parameters:,} parameters (ConvNet width 128, "
          f"depth 3, 32x32x3, 100 classes), float32: {stage / GB:.2f} GB", flush=True)
    root = tempfile.mkdtemp(prefix="expert-memory-", dir=a.dir)
    try:
        start = time.perf_counter()
        sizes = ["--experts", str(a.experts), "--epochs", str(a.epochs)]
        run("--mode", "build", "--root", root, *sizes, *(["--whole"] if whole else []))
        files = sorted(Path(root, "artifacts").rglob("*.pt"))
        rows = [f for f in files if f.parent.name.endswith(".parts")]
        print(f"written through Store.save_artifact in {time.perf_counter() - start:.0f} s: per expert, "
              f"{len(rows)} files of {rows[0].stat().st_size / 1e6:.0f} MB + a main file of "
              f"{Path(root, 'artifacts', NEW[:2], f'{NEW}.pt').stat().st_size / 1e3:.0f} KB"
              + (f"; whole, one file of {Path(root, 'artifacts', OLD[:2], f'{OLD}.pt').stat().st_size / GB:.2f} GB"
                 if whole else ""), flush=True)
        measured = {name: run("--mode", "measure", "--root", root, "--key", key, "--segments", str(a.segments))
                    for name, key in (("floor", ""), ("new", NEW), *((("old", OLD),) if whole else ()))}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    floor = measured["floor"]["peak"]
    print(f"peak RSS of a distillation's loading, each in a fresh process: _load_input of the stage, then "
          f"{a.segments} segments as mtt's next_segment fetches them")
    labels = {"floor": "imports only (python, torch, bench)", "new": "new: one file per expert",
              "old": "old: one tensor, loaded whole"}
    for name, m in measured.items():
        over = f"  (+{(m['peak'] - floor) / GB:6.3f} GB over the imports)" if name != "floor" else " " * 34
        print(f"  {labels[name]:<38} {m['peak'] / GB:7.3f} GB{over}  {m['seconds']:6.1f} s")
    new = measured["new"]["peak"]
    if whole:
        old = measured["old"]["peak"]
        print(f"  ratio old / new: {old / new:.1f}x (over the imports: {(old - floor) / (new - floor):.0f}x)")
    else:
        print(f"  old: skipped, it needs about {2 * stage / GB:.1f} GB and {memory / GB:.1f} GB is available "
              f"(run with fewer --experts to compare)")
    print(f"target, new under 2 GB: {'met' if new < 2 * GB else 'MISSED'}")


if __name__ == "__main__":
    main()
