"""The local executor: every pending task of a plan, in this process (or in worker processes,
`bench.executors.workers`), with a progress board."""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Container, TextIO

import torch

from bench.config import Site
from bench.executors import Outcome, TaskStatus
from bench.executors.tasks import (Busy, DatasetCache, check_data, fmt_time, progress_lines, resolve_device,
                                   run_seeds, run_task)
from bench.executors.todo import Pending, Task, inputs_of, is_done, plan_tasks, stage_of
from bench.plan import EvalTask, Plan
from bench.store import Store
from bench.train import Progress


@dataclass
class ProgressBoard:
    """Prints suite progress (tasks done / total, ETA) and, every few seconds, where a task is."""

    left: dict[str, int]
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    every_s: float = 5.0
    done: int = 0
    times: dict[str, list[float]] = field(default_factory=lambda: {"expert": [], "distill": [], "evaluate": []})
    seen: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.left.values()) + self.done

    def task_progress(self, label: str) -> Progress:
        return progress_lines(label, self.stream, self.every_s)

    def finished(self, kind: str, label: str, seconds: float, result: str = "", key: str = "") -> None:
        if not self._first(key):
            return
        total = self.total
        self.done += 1
        self.left[kind] -= 1
        self.times[kind].append(seconds)
        self._print(f"[{self.done}/{total}] {label}{result} in {fmt_time(seconds)} | ETA {self._eta()}")

    def failed(self, kind: str, label: str, exc: BaseException | str | None, skipped: dict[str, int],
               keys: list[str] = ()) -> None:
        """A failed task (its exception, or its traceback as text), how many tasks that needed its output are
        skipped with it, and the keys of all of them."""
        if not all(map(self._first, keys)):
            return
        total = self.total
        self.done += 1 + sum(skipped.values())
        self.left[kind] -= 1
        for k, n in skipped.items():
            self.left[k] -= n
        tb = exc if isinstance(exc, str) else "".join(traceback.format_exception(exc)) if exc else ""
        tb = tb.rstrip().replace("\n", "\n    ")
        also = f" (skipping {sum(skipped.values())} task(s) that need it)" if any(skipped.values()) else ""
        self._print(f"[{self.done}/{total}] FAILED {label}{also}\n    {tb}")

    def waiting(self, count: int, holders: list[str]) -> None:
        """Nothing left to run here but `count` tasks that other live runs hold (or that need their output)."""
        by = f" (held by {'; '.join(holders)})" if holders else ""
        self._print(f"waiting for {count} task(s) that another run is computing{by}")

    def _first(self, key: str) -> bool:
        """Whether the task `key` ("" for an unnamed one) is reported for the first time: workers of one run may
        each see a task end (one ran it, the others found it done)."""
        if not key:
            return True
        if key in self.seen:
            return False
        self.seen.add(key)
        return True

    def _eta(self) -> str:
        known = [t for ts in self.times.values() for t in ts]
        mean = {k: (sum(ts) / len(ts) if ts else sum(known) / len(known)) for k, ts in self.times.items()}
        return fmt_time(sum(n * mean[k] for k, n in self.left.items()))

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


def default_workers(device: torch.device) -> int:
    """One worker per GPU on CUDA, else one per two cores: on a CPU two 1-thread processes do more than one
    2-thread process (small convolutions scale poorly over threads)."""
    if device.type == "cuda":
        return max(1, torch.cuda.device_count()) if device.index is None else 1
    return max(1, available_cores() // 2)


def available_cores() -> int:
    """The cores this process may run on (a SLURM or container allotment, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class LocalExecutor:
    """Runs tasks here, one after another: experts, then each artifact followed by its evaluations."""

    datasets: DatasetCache
    device: torch.device
    checkpoint_every: int = 100
    stream: TextIO | None = None
    workers: int = 1
    name: str = "local"

    @classmethod
    def from_site(cls, site: Site, device: str | None = None, workers: int | None = None) -> LocalExecutor:
        chosen = resolve_device(device or site.device)
        return cls(DatasetCache(site.data_root, site.store / "cache"), chosen, site.checkpoint_every,
                   workers=workers or default_workers(chosen))

    def run(self, plan: Plan, store: Store, todo: Pending) -> Outcome:
        check_data(todo.tasks, self.datasets)
        board = ProgressBoard({"expert": len(todo.experts), "distill": len(todo.distill),
                               "evaluate": len(todo.evaluate)}, self.stream or sys.stderr)
        if self.workers > 1:
            from bench.executors.workers import run_workers
            ran, failed = run_workers(plan, todo, store, self.datasets, self.device, board, self.checkpoint_every,
                                      self.workers)
        else:
            ran, failed = run_local(plan, todo, store, self.datasets, self.device, board, self.checkpoint_every)
        if failed:
            return Outcome(f"{len(failed)} task(s) failed (tracebacks above); {ran} ran. Fix the cause and run the "
                           f"same command again: finished work is kept.", failed)
        return Outcome(f"done: {ran} task(s) ran, suite complete.")

    def status(self, plan: Plan, store: Store) -> tuple[list[TaskStatus], str]:
        """From the store alone: done, running (a live run holds its claim), or not run."""
        def state(task: Task) -> TaskStatus:
            if is_done(task, store):
                return TaskStatus(task, "done")
            holder = store.holder(task.key)
            return TaskStatus(task, "running", detail=str(holder)) if holder else TaskStatus(task, "not run")
        return [state(t) for t in plan_tasks(plan)], ""


POLL_S = 2.0  # how often a run waiting on tasks another run holds looks again


def run_local(plan: Plan, todo: Pending, store: Store, datasets: DatasetCache, device: torch.device,
              board: ProgressBoard, checkpoint_every: int = 100,
              given_up: Container[str] = frozenset()) -> tuple[int, list[str]]:
    """Run the plan's pending tasks (`todo`) in this process; (tasks run, labels of the failed ones).

    Order: experts and whole-dataset runs, then each synthetic set followed by its evaluations. A task another
    live run holds (`Busy`) is left for later, with what needs it, and this run goes on with the rest; once
    nothing else is left it waits for them: each then turns out done by the other run, or is run here if that
    run died. A failing task is reported with its traceback and the rest of the suite goes on; tasks that need
    its output are skipped and counted as failed. A task in `given_up` (failed in a sibling worker, which
    reported it) is dropped with what needs it, unreported.
    """
    evals_of: dict[str, list[EvalTask]] = {}
    for e in todo.evaluate:
        evals_of.setdefault(e.distill.key, []).append(e)
    distill_todo = {d.key for d in todo.distill}
    queue: dict[str, Task] = {t.key: t for t in [*todo.experts] + [
        t for d in plan.distill for t in ([d] if d.key in distill_todo else []) + evals_of.get(d.key, [])]}
    failed: list[str] = []
    ran = 0

    def needing(key: str) -> list[Task]:
        """The queued tasks that need the output of `key`, directly or through another."""
        out = [t for t in queue.values() if key in inputs_of(t)]
        return out + [u for t in out for u in needing(t.key)]

    def attempt(task: Task) -> bool:
        """Run `task`; False where another run holds it (it stays queued)."""
        nonlocal ran
        kind, label = stage_of(task), task.describe()
        start = time.perf_counter()
        if task.key in given_up:
            for t in [task, *needing(task.key)]:
                queue.pop(t.key, None)
            return True
        try:
            if is_done(task, store):
                board.finished(kind, label, 0.0, " (done by another run)", key=task.key)
                return True
            if isinstance(task, EvalTask) and task.recipe.batch_seeds:
                return seeds_of(task)
            result = run_task(task, store, datasets, device, board.task_progress(label), plan.suite.name,
                              checkpoint_every)
        except Busy:
            return False
        except Exception as exc:  # noqa: BLE001 - reported, and the suite goes on
            skipped = list({t.key: t for t in needing(task.key)}.values())
            board.failed(kind, label, exc, {k: sum(1 for t in skipped if stage_of(t) == k) for k in ("distill",
                                                                                                    "evaluate")},
                         keys=[task.key] + [t.key for t in skipped])
            failed.extend([label] + [f"{t.describe()} (needs {label})" for t in skipped])
            for t in skipped:
                queue.pop(t.key, None)
            return True
        ran += 1
        board.finished(kind, label, time.perf_counter() - start, result, key=task.key)
        return True

    def seeds_of(task: EvalTask) -> bool:
        """`task` and the queued evaluations that differ from it only in seed, trained together (`batch_seeds`);
        False where another run holds `task`."""
        group = [task] + [t for t in queue.values() if isinstance(t, EvalTask) and t is not task and
                          (t.distill.key, t.arch, t.recipe) == (task.distill.key, task.arch, task.recipe)]
        start = time.perf_counter()
        said = run_seeds(group, store, datasets, device, board.task_progress(task.describe()), plan.suite.name)
        for t in group:
            if t.key in said:
                board.finished("evaluate", t.describe(), (time.perf_counter() - start) / len(said), said[t.key],
                               key=t.key)
                queue.pop(t.key, None)
        nonlocal ran
        ran += len(said)
        if task.key not in said and is_done(task, store):
            board.finished("evaluate", task.describe(), 0.0, " (done by another run)", key=task.key)
        return task.key in said or is_done(task, store)

    held: frozenset[str] = frozenset()
    while queue:
        progressed = False
        for key, task in list(queue.items()):
            ready = key in queue and not any(k in queue for k in inputs_of(task))  # inputs done, or failed
            if ready and attempt(task):
                queue.pop(key, None)
                progressed = True
        if queue and not progressed:
            now = frozenset(queue)
            if now != held:
                holders = {str(h) for key in queue if (h := store.holder(key)) is not None}
                board.waiting(len(queue), sorted(holders))
                held = now
            time.sleep(POLL_S)
    return ran, failed
