"""The task functions, the unit of work of every executor: build an expert, distill one artifact,
evaluate one network, train one on the whole data set.

Each reads its inputs from the store, computes, and writes its output to the store atomically. A
task that fails leaves nothing behind, and a task whose output exists already does nothing, so a
rerun (or a requeued SLURM job) does exactly the missing work. Distillation keeps a checkpoint in
the store while it runs, so an interrupted one resumes where it was.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import time
from dataclasses import replace
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Callable

import torch

from bench import data, nets
from bench.config import ConfigError
from bench.data import zca as zca_module
from bench.data.readers import DataFileError
from bench.executors.board import Board
from bench.executors.todo import Task, is_done, is_whole
from bench.experts import EXPERT_BUILDERS, EXPERT_PARTS, Builder, ExpertContext
from bench.methods.base import SYNSET_FORMATS, Checkpoint, DistillContext
from bench.methods.registry import load_builtin_maths
from bench.methods.specs import InputError
from bench.plan import DistillTask, EvalTask, ExpertTask, content_key
from bench.records import ArtifactMeta, DamagedFile, Record
from bench.store import Claim, Holder, Parts, Store, atomic_write
from bench.batched import evaluate_synset_batched
from bench.teacher import load_teacher
from bench.train import (Criterion, Diverged, Progress, evaluate_synset, hard_cross_entropy, soft_criterion,
                         teacher_criterion)
from bench.whole import train_whole_dataset


load_builtin_maths()  # their synthetic-set formats and expert builders, which the tasks look up by name


class InvalidSet(ValueError):
    """A method returned a set that cannot be stored (wrong shape or labels, NaN or Inf values)."""


class Busy(Exception):
    """Another live run holds the task's claim: it is computing it now."""

    def __init__(self, holder: Holder):
        super().__init__(f"another run holds it ({holder})")
        self.holder = holder


class MissingInput(RuntimeError):
    """A task's input is not in the store: the task that makes it failed, was cancelled or never ran."""


def _load_input(store: Store, key: str, what: str) -> tuple[dict[str, torch.Tensor | Parts], ArtifactMeta]:
    """The artifact `key`, verified: whole, or for a stage stored one file per expert its main file, each
    expert being verified when the method first reads it. Loaded once: checking with `has_artifact` first
    would read a stage stored whole twice."""
    try:
        return store.load_artifact(key)
    except (FileNotFoundError, DamagedFile):
        raise MissingInput(f"this task needs {what} [{key}], which is not in the store {store.root}: the task "
                           f"that makes it failed, was cancelled or has not run. `bench status` shows why; "
                           f"`bench run` again submits it.") from None


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


def slurm_job_id() -> str | None:
    """The SLURM job of this process as `squeue` shows it: '12_3' for an array element, else '12'."""
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{index}" if array and index else os.environ.get("SLURM_JOB_ID")


def provenance(device: torch.device) -> dict:
    """What a record needs to be trusted later: where and with what it was computed (torch's threads too: they
    change the wall time, and on a CPU the last bits of the results)."""
    import numpy
    from importlib.metadata import version
    return {"device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
            "versions": {"bench": version("bench"), "torch": torch.__version__, "numpy": numpy.__version__,
                         "python": platform.python_version()},
            "git_commit": _git_commit(), "job_id": slurm_job_id(), "host": socket.gethostname(),
            "threads": torch.get_num_threads()}


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


def _build_expert(task: ExpertTask, build: Builder, datasets: DatasetCache, device: torch.device,
                  progress: Progress) -> tuple[dict[str, torch.Tensor], float]:
    """The builder's tensors for this stage, and the seconds it took."""
    spec = task.spec
    dataset = datasets(spec.dataset, spec.zca)
    ctx = ExpertContext(spec=spec, dataset=dataset, device=device, make_net=_builder(spec.arch, dataset.spec),
                        dsa_strategy=dataset.spec.dsa_strategy, progress=progress)
    start = time.perf_counter()
    tensors = build(ctx)
    return tensors, time.perf_counter() - start


def run_expert(task: ExpertTask, store: Store, datasets: DatasetCache, device: torch.device,
               progress: Progress) -> None:
    tensors, seconds = _build_expert(task, EXPERT_BUILDERS[task.spec.kind], datasets, device, progress)
    store.save_artifact({k: [t.detach().cpu() for t in v] if isinstance(v, list) else v.detach().cpu()
                         for k, v in tensors.items()},
                        ArtifactMeta(task.key, task.identity, seconds, provenance(device)),
                        parts=EXPERT_PARTS.get(task.spec.kind, ()))


def run_whole(task: ExpertTask, store: Store, datasets: DatasetCache, device: torch.device,
              progress: Progress, suite: str) -> Record:
    """A run of the Whole Dataset row (the whole-dataset builder), stored as a record of kind "whole".

    A bench that stored these runs as artifacts left their accuracy in the store: it is kept, not recomputed."""
    diverged = None
    if store.has_artifact(task.key):
        tensors, meta = store.load_artifact(task.key)
        acc, seconds, where = float(tensors["accuracy"]), meta.time_s, meta.provenance
    else:
        start = time.perf_counter()
        acc, diverged = _scored(lambda: float(_build_expert(task, train_whole_dataset, datasets, device,
                                                            progress)[0]["accuracy"]))
        seconds, where = time.perf_counter() - start, provenance(device)
    spec = task.spec
    recipe = spec.params["recipe"]
    record = Record(
        key=task.key, kind="whole", group="whole", suite=suite, method=spec.kind,
        method_version=task.identity["version"], dataset=spec.dataset, zca=spec.zca, eval_arch=spec.arch,
        eval_seed=spec.params["seed"], recipe=recipe, recipe_hash=content_key(recipe), lr_used=recipe["lr"],
        train_bytes=_train_bytes(datasets(spec.dataset, spec.zca)), accuracy=acc, diverged=diverged,
        wall_time_s=seconds, created=_now(), **where)
    store.write_record(record)
    return record


def _scored(train: Callable[[], float]) -> tuple[float | None, str | None]:
    """(accuracy, None) of a training run, or (None, why) where its loss became NaN or Inf."""
    try:
        return train(), None
    except Diverged as exc:
        return None, str(exc)


def run_distill(task: DistillTask, store: Store, datasets: DatasetCache, device: torch.device,
                progress: Progress, checkpoint_every: int = 100) -> None:
    dataset = datasets(task.dataset, task.zca)
    smallest = dataset.smallest_class()
    if task.ipc > smallest:
        raise ValueError(f"IPC {task.ipc} is larger than the smallest class of '{task.dataset}' under the data "
                         f"root ({smallest} images); use an IPC of at most {smallest}.")
    method = task.method.cls.implementation()(task.params)
    inputs = {e.spec.kind: _load_input(store, e.key, e.describe()) for e in task.experts}
    checkpoint = Checkpoint(store.checkpoint_path(task.key), checkpoint_every)
    ctx = DistillContext(dataset=dataset, ipc=task.ipc, seed=task.seed, device=device,
                         make_net=_builder(task.arch or "ConvNet", dataset.spec),
                         dsa_strategy=dataset.spec.dsa_strategy, progress=progress,
                         experts={kind: tensors for kind, (tensors, _) in inputs.items()}, checkpoint=checkpoint)
    start = time.perf_counter()
    synset = method.distill(ctx)
    if problems := synset.problems(task.ipc, dataset.spec):
        raise InvalidSet(f"{task.method.label} ('{task.method.cls.name}', params {task.identity['params']}) returned "
                         f"a synthetic set that cannot be stored for {task.dataset} at IPC {task.ipc}: "
                         f"{'; '.join(problems)}. Nothing was stored; fix the method and run again.")
    meta = ArtifactMeta(task.key, task.identity, time.perf_counter() - start, provenance(device),
                        expert_time_s=sum(meta.time_s for _, meta in inputs.values()),
                        **synset.storage(task.ipc, dataset))
    store.save_artifact({k: v.detach().cpu() for k, v in synset.tensors().items()}, meta)
    if task.lineage is not None:
        store.add_version(task.lineage, task.identity["source"], task.key)
    checkpoint.path.unlink(missing_ok=True)


def run_evaluate(task: EvalTask, store: Store, datasets: DatasetCache, device: torch.device,
                 progress: Progress, suite: str) -> Record:
    return run_evaluations([task], store, datasets, device, progress, suite)[0]


def run_evaluations(tasks: list[EvalTask], store: Store, datasets: DatasetCache, device: torch.device,
                    progress: Progress, suite: str) -> list[Record]:
    """Evaluations of one synthetic set with one architecture and recipe, differing only in seed: one at a time,
    or, where there are several, trained together (`bench.batched`, the recipe's `batch_seeds`); a record each."""
    first, d = tasks[0], tasks[0].distill
    dataset = datasets(d.dataset, d.zca)
    tensors, meta = _load_input(store, d.key, f"the artifact of `{d.describe()}`")
    synset = SYNSET_FORMATS[meta.format].from_tensors(tensors)
    x, y = synset.training_data()
    recipe = replace(first.recipe, lr=synset.eval_lr(first.recipe.lr))
    build, spec = _builder(first.arch, dataset.spec), dataset.spec
    y, criterion = _regime(first, synset.soft_labels, y, store, dataset, device)
    start = time.perf_counter()
    if len(tasks) > 1:
        scores = evaluate_synset_batched(build, x, y, dataset.x_test, dataset.y_test, recipe,
                                         [t.seed for t in tasks], spec.dsa_strategy, device, progress)
    else:
        scores = [_scored(lambda: evaluate_synset(build, x, y, dataset.x_test, dataset.y_test, recipe,
                                                  seed=first.seed, dsa_strategy=spec.dsa_strategy, device=device,
                                                  progress=progress, criterion=criterion))]
    seconds = (time.perf_counter() - start) / len(tasks)
    together = sorted(t.seed for t in tasks) if len(tasks) > 1 else None  # `Record.trained_with`
    asked = first.recipe.as_dict()  # the recipe as the suite asked for it (the key's), not with the lr used
    records = [Record(
        key=task.key, suite=suite, group=d.method.cls.group, method=d.method.cls.name, method_label=d.method.label,
        method_version=d.method.cls.version, params=d.identity["params"],
        params_hash=content_key(d.identity["params"]), dataset=d.dataset, ipc=d.ipc, distill_arch=d.arch,
        distill_seed=d.seed, distill_key=d.key, artifact_bytes=meta.bytes, budget_bytes=meta.budget_bytes,
        over_budget=meta.over_budget, train_bytes=_train_bytes(dataset), distill_time_s=meta.time_s,
        expert_time_s=meta.expert_time_s, zca=d.zca, artifact_format=meta.format, eval_arch=task.arch,
        recipe=asked, recipe_hash=content_key(asked), lr_used=recipe.lr,
        eval_seed=task.seed, accuracy=acc, diverged=diverged, wall_time_s=seconds, created=_now(),
        imported=list(d.inputs) or None, trained_with=together,
        **provenance(device)) for task, (acc, diverged) in zip(tasks, scores)]
    for record in records:
        store.write_record(record)
    return records


def _regime(task: EvalTask, soft_labels: torch.Tensor | None, labels: torch.Tensor, store: Store,
            dataset: data.Dataset, device: torch.device) -> tuple[torch.Tensor, Criterion]:
    """The targets and loss of the recipe's label regime: the class labels and cross-entropy, the set's soft
    labels and soft cross-entropy, or the class labels and KL to the teacher's outputs."""
    recipe = task.recipe
    if recipe.labels == "soft":
        if soft_labels is None:
            raise ValueError(f"`labels: soft` trains on the soft labels stored with the set, and the set of "
                             f"`{task.distill.describe()}` stores none; evaluate it under labels hard or teacher.")
        return soft_labels, soft_criterion(recipe.temperature)
    if recipe.labels == "teacher":
        assert task.teacher is not None, "the plan gives every teacher-regime evaluation its teacher stage"
        tensors, _ = _load_input(store, task.teacher.key, task.teacher.describe())
        net = load_teacher(_builder(task.teacher.spec.arch, dataset.spec)(), tensors).to(device)
        return labels, teacher_criterion(net, recipe.temperature)
    return labels, hard_cross_entropy


def _train_bytes(dataset: data.Dataset) -> int:
    """Bytes of the full training set as the same tensors a synthetic set stores (images and labels)."""
    return sum(t.nelement() * t.element_size() for t in (dataset.x_train, dataset.y_train))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_data(tasks: list[Task], datasets: DatasetCache) -> None:
    """Load every data set these tasks read before any of them starts, so a missing data root is one
    clear error up front instead of a failure per task."""
    names = (t.spec.dataset if isinstance(t, ExpertTask) else t.dataset if isinstance(t, DistillTask)
             else t.distill.dataset for t in tasks)
    for name in dict.fromkeys(names):
        try:
            datasets(name)
        except (data.DatasetNotFound, DataFileError) as exc:  # each names the files, where to get them and the
            raise ConfigError(str(exc)) from None             # settings of the data root
    for task in tasks:
        if isinstance(task, DistillTask) and task.inputs:
            _check_inputs(task, datasets)


def _check_inputs(task: DistillTask, datasets: DatasetCache) -> None:
    """Read a pending task's outside files as its distillation will, so a missing, changed or mismatched file is
    one error before any task starts (`MethodSpec.inputs`, and the method's `check_inputs` where it has one)."""
    where = f"{task.method.origin}: {task.method.label} ({task.dataset}, IPC {task.ipc}, distill seed {task.seed})"
    method = task.method.cls.implementation()(task.params)
    try:
        now = method.inputs(task.dataset, task.ipc, task.seed)
        if changed := [i["path"] for i, was in zip(now, task.inputs) if i["sha256"] != was["sha256"]]:
            raise InputError(f"{changed[0]} changed while the suite was planned; run the command again.")
        if hasattr(method, "check_inputs"):
            method.check_inputs(datasets(task.dataset, task.zca), task.ipc, task.seed)
    except InputError as exc:
        raise ConfigError(f"{where}: {exc} Nothing has run.") from None


def run_task(task: Task, store: Store, datasets: DatasetCache, device: torch.device, progress: Progress,
             suite: str, checkpoint_every: int = 100) -> str:
    """Run one task of any kind under its claim (`Busy` where another live run holds it; a task already done is
    not redone); what to say after its name when it ends: an evaluation's or whole-dataset run's accuracy, or
    that it diverged."""
    if is_done(task, store):
        return ""
    claim = store.claim(task.key)
    if isinstance(claim, Holder):
        raise Busy(claim)
    with claim:
        if is_done(task, store):  # finished by the holder whose claim was released just before ours
            return ""
        if isinstance(task, DistillTask):
            run_distill(task, store, datasets, device, progress, checkpoint_every)
            return ""
        if isinstance(task, ExpertTask) and not is_whole(task):
            run_expert(task, store, datasets, device, progress)
            return ""
        run = run_whole if is_whole(task) else run_evaluate
        return said(run(task, store, datasets, device, progress, suite))


def run_seeds(tasks: list[EvalTask], store: Store, datasets: DatasetCache, device: torch.device, board: Board,
              suite: str) -> dict[str, str]:
    """Evaluations that differ only in seed (`batch_seeds`), trained together, each under its claim and each
    reported to `board` when they end; by key, what to say after the name of each one run here (one done or held
    elsewhere is left to its holder)."""
    with contextlib.ExitStack() as held:
        mine = []
        for task in tasks:
            claim = None if is_done(task, store) else store.claim(task.key)
            if isinstance(claim, Claim):
                held.enter_context(claim)
                mine.append(task)
        if not mine:
            return {}
        start = time.perf_counter()
        records = run_evaluations(mine, store, datasets, device,
                                  board.task_progress(mine[0].key, mine[0].describe(), "evaluate"), suite)
    seconds = (time.perf_counter() - start) / len(mine)
    for task, record in zip(mine, records):
        board.finished("evaluate", task.describe(), seconds, said(record), key=task.key)
    return {r.key: said(r) for r in records}


def said(record: Record) -> str:
    """What the board says after a run's name: its accuracy, or that it diverged."""
    return f": diverged ({record.diverged})" if record.diverged else f": {record.accuracy:.2f}%"

