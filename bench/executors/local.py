"""The local executor: every pending task of a plan, in this process, with a progress board."""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import TextIO

import torch

from bench.config import Site
from bench.executors import Outcome, TaskStatus
from bench.executors.tasks import (DatasetCache, Pending, Task, check_data, fmt_time, is_done, plan_tasks,
                                   progress_lines, resolve_device, run_task)
from bench.plan import DistillTask, EvalTask, Plan
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

    @property
    def total(self) -> int:
        return sum(self.left.values()) + self.done

    def task_progress(self, label: str) -> Progress:
        return progress_lines(label, self.stream, self.every_s)

    def finished(self, kind: str, label: str, seconds: float, result: str = "") -> None:
        total = self.total
        self.done += 1
        self.left[kind] -= 1
        self.times[kind].append(seconds)
        self._print(f"[{self.done}/{total}] {label}{result} in {fmt_time(seconds)} | ETA {self._eta()}")

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
        return fmt_time(sum(n * mean[k] for k, n in self.left.items()))

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


@dataclass
class LocalExecutor:
    """Runs tasks here, one after another: experts, then each artifact followed by its evaluations."""

    datasets: DatasetCache
    device: torch.device
    checkpoint_every: int = 100
    stream: TextIO | None = None
    name: str = "local"

    @classmethod
    def from_site(cls, site: Site, device: str | None = None) -> LocalExecutor:
        return cls(DatasetCache(site.data_root, site.store / "cache"), resolve_device(device or site.device),
                   site.checkpoint_every)

    def run(self, plan: Plan, store: Store, todo: Pending) -> Outcome:
        check_data(todo.tasks, self.datasets)
        ran, failed = run_local(plan, todo, store, self.datasets, self.device, self.stream, self.checkpoint_every)
        if failed:
            return Outcome(f"{len(failed)} task(s) failed (tracebacks above); {ran} ran. Fix the cause and run the "
                           f"same command again: finished work is kept.", failed)
        return Outcome(f"done: {ran} task(s) ran, suite complete.")

    def status(self, plan: Plan, store: Store) -> tuple[list[TaskStatus], str]:
        """Done or not, from the store alone: a local run leaves nothing else behind."""
        return [TaskStatus(t, "done" if is_done(t, store) else "not run") for t in plan_tasks(plan)], ""


def run_local(plan: Plan, todo: Pending, store: Store, datasets: DatasetCache, device: torch.device,
              stream: TextIO | None = None, checkpoint_every: int = 100) -> tuple[int, list[str]]:
    """Run the plan's pending tasks (`todo`) in this process; (tasks run, labels of the failed ones).

    A failing task is reported with its traceback and the rest of the suite goes on; tasks that
    need the failed task's output are skipped and counted as failed.
    """
    board = ProgressBoard({"expert": len(todo.experts), "distill": len(todo.distill),
                           "evaluate": len(todo.evaluate)}, stream or sys.stderr)
    failed: list[str] = []
    ran = 0

    def attempt(kind: str, task: Task, skipped: list[Task]) -> bool:
        nonlocal ran
        label = task.describe()
        start = time.perf_counter()
        try:
            result = run_task(task, store, datasets, device, board.task_progress(label), plan.suite.name,
                              checkpoint_every)
        except Exception as exc:  # noqa: BLE001 - reported, and the suite goes on
            counts = {k: sum(1 for t in skipped if isinstance(t, cls))
                      for k, cls in (("distill", DistillTask), ("evaluate", EvalTask))}
            board.failed(kind, label, exc, counts)
            failed.extend([label] + [f"{t.describe()} (needs {label})" for t in skipped])
            return False
        ran += 1
        board.finished(kind, label, time.perf_counter() - start, result)
        return True

    evals_of: dict[str, list[EvalTask]] = {}
    for e in todo.evaluate:
        evals_of.setdefault(e.distill.key, []).append(e)
    distill_todo = {d.key for d in todo.distill}
    broken_experts: set[str] = set()
    for task in todo.experts:
        users = [d for d in todo.distill if task.key in {e.key for e in d.experts}]
        dependants = users + [e for d in users for e in evals_of.get(d.key, [])]
        if not attempt("expert", task, dependants):
            broken_experts.add(task.key)
    for task in plan.distill:
        evals = evals_of.get(task.key, [])
        if task.key in distill_todo:
            if broken_experts & {e.key for e in task.experts}:
                continue  # already counted as skipped when its expert failed
            if not attempt("distill", task, evals):
                continue
        for e in evals:
            attempt("evaluate", e, [])
    return ran, failed
