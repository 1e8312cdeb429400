"""Executing a plan: the task functions (distill one artifact, evaluate one network) and the local executor.

The task functions are the unit of work for every executor: they read their inputs from the
store, compute, and write their output to the store atomically. A task that fails leaves nothing
behind, so a rerun does exactly the missing work.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import TextIO

import torch

from bench import data, nets
from bench.methods import DistillContext, SyntheticSet
from bench.plan import DistillTask, EvalTask, Plan, content_key
from bench.store import Store
from bench.train import Progress, evaluate_synset


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@cache
def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def provenance(device: torch.device) -> dict:
    """What a record needs to be trusted later: where and with what it was computed."""
    import numpy
    from importlib.metadata import version
    return {"device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
            "versions": {"bench": version("bench"), "torch": torch.__version__, "numpy": numpy.__version__,
                         "python": platform.python_version()},
            "git_commit": _git_commit(), "job_id": os.environ.get("SLURM_JOB_ID"), "host": socket.gethostname()}


class DatasetCache:
    """Loads each data set once per process."""

    def __init__(self, root: Path):
        self.root = root
        self._loaded: dict[str, data.Dataset] = {}

    def __call__(self, name: str) -> data.Dataset:
        if name not in self._loaded:
            self._loaded[name] = data.load_dataset(name, self.root)
        return self._loaded[name]


def _builder(arch: str, spec: data.DatasetSpec):
    return lambda: nets.get_network(arch, spec.channels, spec.num_classes, spec.image_size)


def run_distill(task: DistillTask, store: Store, datasets: DatasetCache, device: torch.device,
                progress: Progress) -> None:
    dataset = datasets(task.dataset)
    smallest = dataset.smallest_class()
    if task.ipc > smallest:
        raise ValueError(f"IPC {task.ipc} is larger than the smallest class of '{task.dataset}' under the data "
                         f"root ({smallest} images); use an IPC of at most {smallest}.")
    method = task.method.cls(task.method.params)
    ctx = DistillContext(dataset=dataset, ipc=task.ipc, seed=task.seed, device=device,
                         make_net=_builder(task.arch or "ConvNet", dataset.spec),
                         dsa_strategy=dataset.spec.dsa_strategy, progress=progress)
    start = time.perf_counter()
    synset = method.distill(ctx)
    meta = {**task.identity, "key": task.key, "bytes": synset.nbytes,
            "distill_time_s": time.perf_counter() - start, **provenance(device)}
    store.save_artifact(task.key, {"images": synset.images, "labels": synset.labels}, meta)


def run_evaluate(task: EvalTask, store: Store, datasets: DatasetCache, device: torch.device,
                 progress: Progress, suite: str) -> float:
    dataset = datasets(task.distill.dataset)
    tensors, meta = store.load_artifact(task.distill.key)
    x, y = SyntheticSet(tensors["images"], tensors["labels"]).training_data()
    start = time.perf_counter()
    acc = evaluate_synset(_builder(task.arch, dataset.spec), x, y, dataset.x_test, dataset.y_test, task.recipe,
                          seed=task.seed, dsa_strategy=dataset.spec.dsa_strategy, device=device,
                          progress=progress)
    d = task.distill
    store.write_record({
        "key": task.key, "suite": suite, "method": d.method.cls.name, "method_label": d.method.label,
        "method_version": d.method.cls.version, "params": d.identity["params"],
        "params_hash": content_key(d.identity["params"]), "dataset": d.dataset, "ipc": d.ipc,
        "distill_arch": d.arch, "distill_seed": d.seed, "distill_key": d.key, "artifact_bytes": meta["bytes"],
        "distill_time_s": meta["distill_time_s"], "eval_arch": task.arch, "recipe": task.recipe.as_dict(),
        "recipe_hash": content_key(task.recipe.as_dict()), "eval_seed": task.seed, "accuracy": acc,
        "wall_time_s": time.perf_counter() - start,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **provenance(device)})
    return acc


@dataclass
class Pending:
    """What a plan still needs, given the store."""

    distill: list[DistillTask]
    evaluate: list[EvalTask]
    done: int
    total: int


def pending(plan: Plan, store: Store) -> Pending:
    """Evaluate tasks without a record, and the distill tasks whose artifact they need and lack."""
    evals = list({e.key: e for e in plan.evaluate}.values())
    todo = [e for e in evals if not store.has_record(e.key)]
    needed = {e.distill.key for e in todo}
    distill = [d for d in plan.distill if d.key in needed and not store.has_artifact(d.key)]
    total = len(evals) + len(plan.distill)
    return Pending(distill, todo, total - len(todo) - len(distill), total)


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@dataclass
class ProgressBoard:
    """Prints suite progress (tasks done / total, ETA) and, every few seconds, where a task is."""

    n_distill: int
    n_evaluate: int
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    every_s: float = 5.0
    done: int = 0
    times: dict[str, list[float]] = field(default_factory=lambda: {"distill": [], "evaluate": []})

    def task_progress(self, label: str) -> Progress:
        last = [time.monotonic()]
        start = last[0]

        def report(step: int, total: int, detail: str) -> None:
            now = time.monotonic()
            if now - last[0] >= self.every_s:
                last[0] = now
                unit, _, rest = detail.partition(",")
                self._print(f"    {label}: {unit} {step}/{total}{',' + rest if rest else ''} "
                            f"({_fmt_time(now - start)})")
        return report

    def finished(self, kind: str, label: str, seconds: float, result: str = "") -> None:
        self.done += 1
        self.times[kind].append(seconds)
        self._print(f"[{self.done}/{self.n_distill + self.n_evaluate}] {label}{result} in {_fmt_time(seconds)}"
                    f" | ETA {self._eta()}")

    def failed(self, label: str, exc: BaseException) -> None:
        self.done += 1
        tb = "".join(traceback.format_exception(exc)).rstrip().replace("\n", "\n    ")
        self._print(f"[{self.done}/{self.n_distill + self.n_evaluate}] FAILED {label}\n    {tb}")

    def _eta(self) -> str:
        left = {"distill": self.n_distill - len(self.times["distill"]),
                "evaluate": self.n_evaluate - len(self.times["evaluate"])}
        known = [t for ts in self.times.values() for t in ts]
        seconds = sum(n * (sum(self.times[k]) / len(self.times[k]) if self.times[k] else sum(known) / len(known))
                      for k, n in left.items())
        return _fmt_time(max(seconds, 0.0))

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


@dataclass
class RunResult:
    ran: int
    failed: list[str]


def run_local(plan: Plan, store: Store, datasets: DatasetCache, device: torch.device,
              stream: TextIO | None = None) -> RunResult:
    """Run every pending task of the plan in this process; each artifact is followed by its evaluations.

    A failing task is reported with its traceback and the rest of the suite goes on; evaluations
    of a failed distillation are skipped and counted as failed.
    """
    todo = pending(plan, store)
    board = ProgressBoard(len(todo.distill), len(todo.evaluate), stream or sys.stderr)
    failed: list[str] = []
    by_artifact: dict[str, list[EvalTask]] = {}
    for e in todo.evaluate:
        by_artifact.setdefault(e.distill.key, []).append(e)
    distill_todo = {d.key for d in todo.distill}
    ran = 0
    for task in plan.distill:
        evals = by_artifact.get(task.key, [])
        if task.key in distill_todo:
            label = task.describe()
            start = time.perf_counter()
            try:
                run_distill(task, store, datasets, device, board.task_progress(label))
            except Exception as exc:  # noqa: BLE001 - reported, and the suite goes on
                board.failed(label, exc)
                failed += [label] + [f"{e.describe()} (its artifact failed)" for e in evals]
                board.done += len(evals)
                continue
            ran += 1
            board.finished("distill", label, time.perf_counter() - start)
        for e in evals:
            label = e.describe()
            start = time.perf_counter()
            try:
                acc = run_evaluate(e, store, datasets, device, board.task_progress(label), plan.suite.name)
            except Exception as exc:  # noqa: BLE001
                board.failed(label, exc)
                failed.append(label)
                continue
            ran += 1
            board.finished("evaluate", label, time.perf_counter() - start, f": {acc:.2f}%")
    return RunResult(ran, failed)
