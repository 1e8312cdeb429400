"""The local executor: every pending task of a plan, in this process (or in worker processes,
`bench.executors.workers`), with a progress board."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Container

import torch

from bench.config import Site
from bench.executors import Outcome, TaskStatus
from bench.executors.board import KINDS, Board
from bench.executors.tasks import Busy, DatasetCache, check_data, resolve_device, run_seeds, run_task
from bench.executors.todo import Pending, Task, cell_of, inputs_of, is_done, kind_of, plan_tasks
from bench.logs import live_console
from bench.machine import available_cores, default_threads
from bench.plan import EvalTask, Plan
from bench.store import Store


def default_workers(device: torch.device) -> int:
    """One worker per GPU on CUDA, else one per two cores: on a CPU two 1-thread processes do more than one
    2-thread process (small convolutions scale poorly over threads)."""
    if device.type == "cuda":
        return max(1, torch.cuda.device_count()) if device.index is None else 1
    return max(1, available_cores() // 2)


@dataclass
class LocalExecutor:
    """Runs tasks here, one after another: experts, then each artifact followed by its evaluations."""

    datasets: DatasetCache
    device: torch.device
    checkpoint_every: int = 100
    workers: int = 1
    threads: int = 1  # torch's threads in each process that computes
    name: str = "local"

    @classmethod
    def from_site(cls, site: Site, device: str | None = None, workers: int | None = None,
                  threads: int | None = None) -> LocalExecutor:
        """`workers` and `threads` (per worker) as given, else bench.yaml's, else chosen for this machine."""
        chosen = resolve_device(device or site.device)
        workers = workers or site.workers or default_workers(chosen)
        return cls(DatasetCache(site.data_root, site.store / "cache"), chosen, site.checkpoint_every, workers,
                   threads or site.threads or default_threads(workers))

    def run(self, plan: Plan, store: Store, todo: Pending) -> Outcome:
        check_data(todo.tasks, self.datasets)
        left = {k: sum(1 for t in todo.tasks if kind_of(t) == k) for k in KINDS}
        with Board(left, self.workers, live_console()) as board:
            if self.workers > 1:
                from bench.executors.workers import run_workers
                ran, failed = run_workers(plan, todo, store, self.datasets, self.device, board,
                                          self.checkpoint_every, self.workers, self.threads)
            else:
                torch.set_num_threads(self.threads)
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
              board: Board, checkpoint_every: int = 100,
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
        kind, label = kind_of(task), task.describe()
        start = time.perf_counter()
        if task.key in given_up:
            for t in [task, *needing(task.key)]:
                queue.pop(t.key, None)
            return True
        try:
            if is_done(task, store):
                board.finished(kind, label, None, key=task.key)
                return True
            if isinstance(task, EvalTask) and task.recipe.trains_together(device.type):
                return seeds_of(task)
            result = run_task(task, store, datasets, device, board.task_progress(task.key, label, kind),
                              plan.suite.name, checkpoint_every)
        except Busy:
            return False
        except Exception as exc:  # noqa: BLE001 - reported, and the suite goes on
            skipped = list({t.key: t for t in needing(task.key)}.values())
            board.failed(kind, label, exc, {k: sum(1 for t in skipped if kind_of(t) == k) for k in ("distill",
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
                          cell_of(t) == cell_of(task)]
        said = run_seeds(group, store, datasets, device, board, plan.suite.name)
        for key in said:
            queue.pop(key, None)
        nonlocal ran
        ran += len(said)
        if task.key not in said and is_done(task, store):
            board.finished("evaluate", task.describe(), None, key=task.key)
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
