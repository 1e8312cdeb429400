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
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import TextIO

import torch

from bench import data, nets
from bench.data import zca as zca_module
from bench.experts import EXPERT_BUILDERS, ExpertContext
from bench.methods import DistillContext
from bench.methods.base import SYNSET_FORMATS
from bench.plan import DistillTask, EvalTask, ExpertTask, Plan, content_key
from bench.store import Store, atomic_write
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
    """Loads each data set once per process; ZCA fits are also kept on disk under `cache_dir`."""

    def __init__(self, root: Path, cache_dir: Path):
        self.root = root
        self.cache_dir = cache_dir
        self._loaded: dict[tuple[str, bool], data.Dataset] = {}

    def __call__(self, name: str, zca: bool = False) -> data.Dataset:
        if (name, zca) not in self._loaded:
            self._loaded[name, zca] = self._whitened(name) if zca else data.load_dataset(name, self.root)
        return self._loaded[name, zca]

    def _whitened(self, name: str) -> data.Dataset:
        plain = self(name)
        path = self.cache_dir / f"zca-{name}-eps{zca_module.EPS}.pt"
        if path.exists():
            fit = torch.load(path, weights_only=True)
        else:
            fit = zca_module.fit_zca(zca_module.unnormalise(plain, plain.x_train))
            atomic_write(path, lambda f: torch.save(fit, f))
        return zca_module.whiten(plain, fit)


def _builder(arch: str, spec: data.DatasetSpec):
    return lambda: nets.get_network(arch, spec.channels, spec.num_classes, spec.image_size)


def run_expert(task: ExpertTask, store: Store, datasets: DatasetCache, device: torch.device,
               progress: Progress) -> None:
    spec = task.spec
    dataset = datasets(spec.dataset, spec.zca)
    ctx = ExpertContext(spec=spec, dataset=dataset, device=device, make_net=_builder(spec.arch, dataset.spec),
                        dsa_strategy=dataset.spec.dsa_strategy, progress=progress)
    start = time.perf_counter()
    tensors = EXPERT_BUILDERS[spec.kind].build(ctx)
    meta = {**task.identity, "key": task.key, "time_s": time.perf_counter() - start, **provenance(device)}
    store.save_artifact(task.key, {k: v.detach().cpu() for k, v in tensors.items()}, meta)


def run_distill(task: DistillTask, store: Store, datasets: DatasetCache, device: torch.device,
                progress: Progress) -> None:
    dataset = datasets(task.dataset, task.zca)
    smallest = dataset.smallest_class()
    if task.ipc > smallest:
        raise ValueError(f"IPC {task.ipc} is larger than the smallest class of '{task.dataset}' under the data "
                         f"root ({smallest} images); use an IPC of at most {smallest}.")
    method = task.method.cls(task.params)
    experts = {e.spec.kind: store.load_artifact(e.key)[0] for e in task.experts}
    ctx = DistillContext(dataset=dataset, ipc=task.ipc, seed=task.seed, device=device,
                         make_net=_builder(task.arch or "ConvNet", dataset.spec),
                         dsa_strategy=dataset.spec.dsa_strategy, progress=progress, experts=experts)
    start = time.perf_counter()
    synset = method.distill(ctx)
    meta = {**task.identity, "key": task.key, "format": synset.format, "bytes": synset.nbytes,
            "distill_time_s": time.perf_counter() - start,
            "expert_time_s": sum(store.load_artifact(e.key)[1]["time_s"] for e in task.experts),
            **provenance(device)}
    store.save_artifact(task.key, {k: v.detach().cpu() for k, v in synset.tensors().items()}, meta)


def run_evaluate(task: EvalTask, store: Store, datasets: DatasetCache, device: torch.device,
                 progress: Progress, suite: str) -> float:
    dataset = datasets(task.distill.dataset, task.distill.zca)
    tensors, meta = store.load_artifact(task.distill.key)
    synset = SYNSET_FORMATS[meta["format"]].from_tensors(tensors)
    x, y = synset.training_data()
    recipe = task.recipe
    if recipe.lr == "learned":
        if synset.lr is None:
            raise ValueError(f"the evaluation recipe trains with the learned lr, but '{task.distill.method.label}' "
                             f"stores none; use the 'standard' preset or a numeric `eval: lr:` for this method.")
        recipe = replace(recipe, lr=float(synset.lr))
    start = time.perf_counter()
    acc = evaluate_synset(_builder(task.arch, dataset.spec), x, y, dataset.x_test, dataset.y_test, recipe,
                          seed=task.seed, dsa_strategy=dataset.spec.dsa_strategy, device=device,
                          progress=progress)
    d = task.distill
    store.write_record({
        "key": task.key, "suite": suite, "method": d.method.cls.name, "method_label": d.method.label,
        "method_version": d.method.cls.version, "params": d.identity["params"],
        "params_hash": content_key(d.identity["params"]), "dataset": d.dataset, "ipc": d.ipc,
        "distill_arch": d.arch, "distill_seed": d.seed, "distill_key": d.key, "artifact_bytes": meta["bytes"],
        "train_bytes": sum(t.nelement() * t.element_size() for t in (dataset.x_train, dataset.y_train)),
        "distill_time_s": meta["distill_time_s"], "expert_time_s": meta["expert_time_s"], "zca": d.zca,
        "artifact_format": meta["format"], "eval_arch": task.arch, "recipe": task.recipe.as_dict(),
        "recipe_hash": content_key(task.recipe.as_dict()), "lr_used": recipe.lr, "eval_seed": task.seed,
        "accuracy": acc,
        "wall_time_s": time.perf_counter() - start,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **provenance(device)})
    return acc


@dataclass
class Pending:
    """What a plan still needs, given the store."""

    experts: list[ExpertTask]
    distill: list[DistillTask]
    evaluate: list[EvalTask]
    done: int
    total: int

    @property
    def tasks(self) -> list[ExpertTask | DistillTask | EvalTask]:
        return [*self.experts, *self.distill, *self.evaluate]


def pending(plan: Plan, store: Store) -> Pending:
    """Evaluate tasks without a record, the artifacts they need and lack, and the experts those need."""
    evals = list({e.key: e for e in plan.evaluate}.values())
    todo = [e for e in evals if not store.has_record(e.key)]
    needed = {e.distill.key for e in todo}
    distill = [d for d in plan.distill if d.key in needed and not store.has_artifact(d.key)]
    needed_experts = {e.key for d in distill for e in d.experts}
    experts = [e for e in plan.experts if e.key in needed_experts and not store.has_artifact(e.key)]
    total = len(evals) + len(plan.distill) + len(plan.experts)
    return Pending(experts, distill, todo, total - len(todo) - len(distill) - len(experts), total)


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

    left: dict[str, int]
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    every_s: float = 5.0
    done: int = 0
    times: dict[str, list[float]] = field(default_factory=lambda: {"expert": [], "distill": [], "evaluate": []})

    @property
    def total(self) -> int:
        return sum(self.left.values()) + self.done

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
        total = self.total
        self.done += 1
        self.left[kind] -= 1
        self.times[kind].append(seconds)
        self._print(f"[{self.done}/{total}] {label}{result} in {_fmt_time(seconds)} | ETA {self._eta()}")

    def failed(self, kind: str, label: str, exc: BaseException | None, skipped: dict[str, int]) -> None:
        """A failed task, and how many tasks that needed its output are skipped with it."""
        total = self.total
        self.done += 1 + sum(skipped.values())
        self.left[kind] -= 1
        for k, n in skipped.items():
            self.left[k] -= n
        tb = "".join(traceback.format_exception(exc)).rstrip().replace("\n", "\n    ") if exc else ""
        also = f" (skipping {sum(skipped.values())} task(s) that need it)" if any(skipped.values()) else ""
        self._print(f"[{self.done}/{total}] FAILED {label}{also}\n    {tb}")

    def _eta(self) -> str:
        known = [t for ts in self.times.values() for t in ts]
        mean = {k: (sum(ts) / len(ts) if ts else sum(known) / len(known)) for k, ts in self.times.items()}
        return _fmt_time(sum(n * mean[k] for k, n in self.left.items()))

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


@dataclass
class RunResult:
    ran: int
    failed: list[str]


def run_local(plan: Plan, store: Store, datasets: DatasetCache, device: torch.device,
              stream: TextIO | None = None) -> RunResult:
    """Run every pending task of the plan in this process: experts, then each artifact and its evaluations.

    A failing task is reported with its traceback and the rest of the suite goes on; tasks that
    need the failed task's output are skipped and counted as failed.
    """
    todo = pending(plan, store)
    board = ProgressBoard({"expert": len(todo.experts), "distill": len(todo.distill),
                           "evaluate": len(todo.evaluate)}, stream or sys.stderr)
    failed: list[str] = []
    ran = 0

    def attempt(kind: str, task, work, skipped: list) -> bool:
        nonlocal ran
        label = task.describe()
        start = time.perf_counter()
        try:
            result = work(board.task_progress(label))
        except Exception as exc:  # noqa: BLE001 - reported, and the suite goes on
            counts = {k: sum(1 for t in skipped if isinstance(t, cls))
                      for k, cls in (("distill", DistillTask), ("evaluate", EvalTask))}
            board.failed(kind, label, exc, counts)
            failed.extend([label] + [f"{t.describe()} (needs {label})" for t in skipped])
            return False
        ran += 1
        board.finished(kind, label, time.perf_counter() - start, "" if result is None else f": {result:.2f}%")
        return True

    evals_of: dict[str, list[EvalTask]] = {}
    for e in todo.evaluate:
        evals_of.setdefault(e.distill.key, []).append(e)
    distill_todo = {d.key for d in todo.distill}
    broken_experts: set[str] = set()
    for task in todo.experts:
        users = [d for d in todo.distill if task.key in {e.key for e in d.experts}]
        dependants = users + [e for d in users for e in evals_of.get(d.key, [])]
        if not attempt("expert", task, lambda p, t=task: run_expert(t, store, datasets, device, p), dependants):
            broken_experts.add(task.key)
    for task in plan.distill:
        evals = evals_of.get(task.key, [])
        if task.key in distill_todo:
            if broken_experts & {e.key for e in task.experts}:
                continue  # already counted as skipped when its expert failed
            if not attempt("distill", task, lambda p, t=task: run_distill(t, store, datasets, device, p), evals):
                continue
        for e in evals:
            attempt("evaluate", e, lambda p, t=e: run_evaluate(t, store, datasets, device, p, plan.suite.name), [])
    return RunResult(ran, failed)
