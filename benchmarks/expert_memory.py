"""Benchmark: peak memory of a distillation loading MTT's expert stage, one file per expert against one tensor
(with --stage features, of a coreset loading its feature stage, one file per class; with --stage bank, of IID
drawing from its bank of pretrained networks, one file per network).

Builds a CIFAR-100-shaped trajectory stage (--experts experts x (--epochs + 1) snapshots of the parameters of a
ConvNet of width 128 and depth 3 on 32x32x3 images with 100 classes, random values) in a temporary store,
through `Store.save_artifact` as `run_expert` calls it: stored as mtt's builder declares it (one file per expert,
`bench.store.Parts`) and stored whole (one tensor in one file: the format of a bench before per-expert files,
which bench still reads). Then, each in a fresh process, measures the peak RSS (`ru_maxrss`) of what a
distillation does: load the stage as `run_distill` does (`_load_input`), then fetch --segments segments with
mtt's `next_segment`. A process that only imports the same modules gives the floor. Prints the three side by
side and the ratio, and deletes the store.

With --stage features: a CIFAR-10-shaped feature stage of the coresets (--classes x --per-class embeddings of
--dim floats: 50,000 x 2,048, the ConvNet's embedding of a 32x32 image, 0.41 GB), stored as the feature
network's builder stores it (one file per class) and whole (its format before per-class files); the measured
work is a herding selection of 10 images in every class, reading the features as `_Coreset.distill` does.

With --stage bank: IID's bank of --members ResNet18s for 32x32x3 images and 10 classes (45 MB each; 50 make
2.2 GB), stored one file per member and whole (`state.<key>` stacked: its format before); the measured work is
--segments draws through `PretrainedBank`, which keeps members on the device up to `RESIDENT_BYTES` (1 GB).

The stage stored whole is measured only where the memory it needs (about twice the stage: the file's bytes,
then its tensors) is available; elsewhere it is skipped with a message (run with fewer --experts).

Usage: python benchmarks/expert_memory.py [--experts 100] [--epochs 50] [--segments 20] [--dir TMPDIR]
       (writes about 2 x 10.3 GB for the defaults, 1 x where the stage stored whole is skipped)
       python benchmarks/expert_memory.py --stage features [--classes 10] [--per-class 5000] [--dim 2048]
       python benchmarks/expert_memory.py --stage bank [--members 50] [--segments 20]
"""

from __future__ import annotations

import argparse
import importlib
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
ROW = {"trajectories": "expert", "features": "class", "bank": "member"}  # what each file of a stage stored apart holds


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


def resnet18():
    """The bank network of IID's default: ResNet18 for CIFAR-10's images."""
    from bench import nets
    return nets.get_network("ResNet18", 3, 10, 32)


def stage_bytes(a: argparse.Namespace) -> int:
    if a.stage == "features":
        return a.classes * a.per_class * a.dim * 4
    if a.stage == "bank":
        return a.members * sum(v.numel() for v in resnet18().state_dict().values()) * 4
    return a.experts * (a.epochs + 1) * convnet_parameters() * 4


def build(a: argparse.Namespace, whole: bool) -> None:
    """Write the stage into the store at `a.root`: as its builder stores it, and (with `whole`) as one tensor."""
    import torch

    for module in ("coresets", "iid"):  # register their stages' parts
        importlib.import_module(f"bench.methods.{module}")
    from bench.experts import EXPERT_PARTS
    from bench.executors.tasks import provenance
    from bench.methods.specs import BANK, FEATURE_NET
    from bench.records import ArtifactMeta
    from bench.store import Store
    g = torch.Generator().manual_seed(0)
    if a.stage == "features":
        rows = [torch.randn(a.per_class, a.dim, generator=g) for _ in range(a.classes)]
        common = {"forgetting": torch.zeros(a.classes * a.per_class, dtype=torch.int64), "accuracy": torch.tensor(0.0)}
        stored = {NEW: {"class_features": rows, **common}, OLD: {"features": torch.cat(rows), **common}}
        parts = EXPERT_PARTS[FEATURE_NET]
    elif a.stage == "bank":
        shapes = {k: v.shape for k, v in resnet18().state_dict().items()}
        accuracy = torch.zeros(a.members)
        stored = {NEW: {"members": torch.randn(a.members, sum(s.numel() for s in shapes.values()), generator=g),
                        "accuracy": accuracy}}
        if whole:
            stored[OLD] = {**{f"state.{k}": torch.randn(a.members, *s, generator=g) for k, s in shapes.items()},
                           "accuracy": accuracy}
        parts = EXPERT_PARTS[BANK]
    else:
        tensors = {"trajectories": torch.randn(a.experts, a.epochs + 1, convnet_parameters(), generator=g),
                   "test_accuracy": 100 * torch.rand(a.experts, generator=g)}
        stored, parts = {NEW: tensors, OLD: tensors}, EXPERT_PARTS["trajectories"]
    store = Store(Path(a.root))
    for key in (NEW, OLD) if whole else (NEW,):
        meta = ArtifactMeta(key, {"kind": "expert", "expert": a.stage, "benchmark": key}, 0.0,
                            provenance(torch.device("cpu")))
        store.save_artifact(stored[key], meta, parts=parts if key == NEW else ())


def measure(a: argparse.Namespace) -> None:
    """Print the peak RSS of loading the stage `a.key` and using it: fetching `a.segments` segments as MTT does,
    or selecting 10 images per class with herding as the coresets do (key "": only the imports, the floor)."""
    import torch

    from bench.executors.tasks import _load_input
    from bench.methods.coresets import class_features, herding
    from bench.methods.iid import PretrainedBank
    from bench.methods.mtt import next_segment
    from bench.store import Store
    start = time.perf_counter()
    if a.key:
        stage = _load_input(Store(Path(a.root)), a.key, "the benchmark's stage")[0]
        if a.stage == "features":
            labels = torch.arange(a.classes).repeat_interleave(a.per_class)
            for c in range(a.classes):
                herding(class_features(stage, c, torch.nonzero(labels == c).flatten()), 10)
        elif a.stage == "bank":
            bank, g = PretrainedBank(stage, resnet18, torch.device("cpu")), torch.Generator().manual_seed(0)
            for _ in range(a.segments):
                bank.draw(g)
        else:
            trajectories = stage["trajectories"]
            snapshots = trajectories.shape[1]
            expert_epochs = min(2, snapshots - 1)  # CIFAR-100's MTT presets: 2 expert epochs, start epochs below 20
            max_start = min(20, snapshots - expert_epochs)
            g, order = torch.Generator().manual_seed(0), []
            for _ in range(a.segments):
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
    parser.add_argument("--stage", choices=["trajectories", "features", "bank"], default="trajectories")
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the temporary store goes")
    parser.add_argument("--mode", choices=["build", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--key", default="", help=argparse.SUPPRESS)
    parser.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.mode == "build":
        return build(a, a.whole)
    if a.mode == "measure":
        return measure(a)

    stage = stage_bytes(a)
    free, memory = shutil.disk_usage(a.dir).free, available_bytes()
    whole = memory > 2.2 * stage + 2 * GB
    if memory < stage + 2 * GB or free < stage * (1 + whole) + 1 * GB:
        sys.exit(f"a stage of {stage / GB:.2f} GB needs {(stage + 2 * GB) / GB:.1f} GB of memory to build "
                 f"({memory / GB:.1f} available) and {stage * (1 + whole) / GB:.1f} GB of disk under {a.dir} "
                 f"({free / GB:.1f} free): run with fewer --experts")
    if a.stage == "features":
        print(f"stage: {a.classes} classes x {a.per_class} images x {a.dim} features, float32: {stage / GB:.2f} GB",
              flush=True)
    elif a.stage == "bank":
        print(f"stage: a bank of {a.members} ResNet18s (32x32x3, 10 classes), float32: {stage / GB:.2f} GB", flush=True)
    else:
        print(f"stage: {a.experts} experts x {a.epochs + 1} snapshots x {convnet_parameters():,} parameters "
              f"(ConvNet width 128, depth 3, 32x32x3, 100 classes), float32: {stage / GB:.2f} GB", flush=True)
    root = tempfile.mkdtemp(prefix="expert-memory-", dir=a.dir)
    try:
        start = time.perf_counter()
        sizes = ["--stage", a.stage, "--experts", str(a.experts), "--epochs", str(a.epochs), "--classes",
                 str(a.classes), "--per-class", str(a.per_class), "--dim", str(a.dim), "--members", str(a.members)]
        run("--mode", "build", "--root", root, *sizes, *(["--whole"] if whole else []))
        files = sorted(Path(root, "artifacts").rglob("*.pt"))
        rows = [f for f in files if f.parent.name.endswith(".parts")]
        print(f"written through Store.save_artifact in {time.perf_counter() - start:.0f} s: per {ROW[a.stage]}, "
              f"{len(rows)} files of {rows[0].stat().st_size / 1e6:.0f} MB + a main file of "
              f"{Path(root, 'artifacts', NEW[:2], f'{NEW}.pt').stat().st_size / 1e3:.0f} KB"
              + (f"; whole, one file of {Path(root, 'artifacts', OLD[:2], f'{OLD}.pt').stat().st_size / GB:.2f} GB"
                 if whole else ""), flush=True)
        measured = {name: run("--mode", "measure", "--root", root, "--key", key, "--segments", str(a.segments),
                              *sizes)
                    for name, key in (("floor", ""), ("new", NEW), *((("old", OLD),) if whole else ()))}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    floor = measured["floor"]["peak"]
    use = {"features": "herding's selection of 10 images per class",
           "bank": f"{a.segments} draws of a member as IID's PretrainedBank makes them"}.get(
        a.stage, f"{a.segments} segments as mtt's next_segment fetches them")
    print(f"peak RSS of a distillation's loading, each in a fresh process: _load_input of the stage, then {use}")
    labels = {"floor": "imports only (python, torch, bench)", "new": f"new: one file per {ROW[a.stage]}",
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
