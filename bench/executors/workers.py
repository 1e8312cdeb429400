"""`bench run --workers N`: the local executor's loop (`run_local`) in N processes on one machine.

Each worker runs the whole pending plan in the same order; the store's task claims (`bench.store.Store.claim`)
make them split it, so a distillation still comes before its evaluations and no task is computed twice. Each
worker is pinned to its share of the machine before torch starts in it: `cores // N` threads, and one GPU
(`CUDA_VISIBLE_DEVICES`) when the device is CUDA. Workers send what happens to this process, which keeps the one
progress board and tells every worker about a failed task, so the others skip it and what needs it, exactly as
one process would. A worker whose parent is gone (kill -9) exits at its next progress report; its claim is taken
over by the next run.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import queue
import signal
import traceback
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from bench.executors.local import ProgressBoard, available_cores, run_local
from bench.executors.tasks import DatasetCache, progress_lines
from bench.executors.todo import Pending
from bench.plan import Plan
from bench.records import Record
from bench.store import Store
from bench.train import Progress

PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class GivenUp:
    """The keys of tasks that failed in a sibling worker (and of what needs them), as the parent relays them."""

    inbox: Any  # multiprocessing queue of key lists
    keys: set[str] = field(default_factory=set)

    def __contains__(self, key: object) -> bool:
        while True:
            try:
                self.keys.update(self.inbox.get_nowait())
            except queue.Empty:
                return key in self.keys


@dataclass
class RemoteBoard:
    """The board a worker reports to: each call becomes an event for the parent's `ProgressBoard`."""

    events: Any  # multiprocessing queue to the parent
    worker: int
    parent: int  # the parent's pid: when it is gone, this worker stops
    every_s: float = 5.0

    def _send(self, *event: Any) -> None:
        if os.getppid() != self.parent:
            os._exit(1)  # the run was killed: leave the task's claim to the next run
        self.events.put((self.worker, *event))

    def task_progress(self, label: str) -> Progress:
        lines = progress_lines(label, _Lines(self), self.every_s)

        def report(step: int, total: int, detail: str) -> None:
            if os.getppid() != self.parent:
                os._exit(1)
            lines(step, total, detail)
        return report

    def finished(self, kind: str, label: str, seconds: float, result: str = "", key: str = "") -> None:
        self._send("finished", kind, label, seconds, result, key)

    def failed(self, kind: str, label: str, exc: BaseException | str | None, skipped: dict[str, int],
               keys: list[str] = ()) -> None:
        text = exc if isinstance(exc, str) else "".join(traceback.format_exception(exc)) if exc else ""
        self._send("failed", kind, label, text, skipped, list(keys))

    def waiting(self, count: int, holders: list[str]) -> None:
        """Waiting on a sibling is how workers share a stage: not news for the board."""


@dataclass
class _Lines:
    """A text stream whose lines go to the parent's board."""

    board: RemoteBoard

    def write(self, text: str) -> int:
        if text.strip():
            self.board._send("line", text.rstrip("\n"))
        return len(text)

    def flush(self) -> None:
        pass


def _work(worker: int, parent: int, plan: Plan, todo: Pending, store: Path, data_root: Path, device: str,
          threads: int, checkpoint_every: int, events: Any, inbox: Any,
          on_record: Callable[[Record], None] | None) -> None:
    """One worker: the whole pending plan, under claims, reporting to the parent."""
    _die_with(parent)
    torch.set_num_threads(threads)
    board = RemoteBoard(events, worker, parent)
    try:
        ran, failed = run_local(plan, todo, Store(store, on_record), DatasetCache(data_root, store / "cache"),
                                torch.device(device), board, checkpoint_every, GivenUp(inbox))
    except BaseException as exc:  # noqa: BLE001 - a worker's own crash is reported, never silent
        board._send("crashed", "".join(traceback.format_exception(exc)))
        raise
    board._send("done", ran, failed)


def _die_with(parent: int) -> None:
    """Have the kernel kill this worker when its parent dies (Linux), so a kill -9 of `bench run` leaves no worker
    computing in the background; elsewhere the worker notices at its next progress report."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def run_workers(plan: Plan, todo: Pending, store: Store, datasets: DatasetCache, device: torch.device,
                board: ProgressBoard, checkpoint_every: int, workers: int) -> tuple[int, list[str]]:
    """`run_local` in `workers` processes; (tasks run, labels of the failed ones), as `run_local` returns."""
    context = multiprocessing.get_context("spawn")  # torch's thread pools do not survive fork
    events = context.Queue()
    inboxes = [context.Queue() for _ in range(workers)]
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    threads = max(1, available_cores() // workers)
    procs: list[BaseProcess] = []
    for i in range(workers):
        pinned = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} | (
            {"CUDA_VISIBLE_DEVICES": str(i % gpus)} if gpus else {})
        args = (i + 1, os.getpid(), plan, todo, store.root, datasets.root, "cuda" if gpus else str(device), threads,
                checkpoint_every, events, inboxes[i], store.on_record)
        with _environment(pinned):
            proc = context.Process(target=_work, args=args, name=f"bench worker {i + 1}", daemon=True)
            proc.start()
        procs.append(proc)
    where = f", GPU {', '.join(str(i % gpus) for i in range(workers))}" if gpus else ""
    board._print(f"{workers} workers, {threads} thread(s) each{where}")

    ran, failed, ended = 0, [], set()
    while len(ended) < workers:
        try:
            worker, kind, *event = events.get(timeout=1.0)
        except queue.Empty:
            for i, proc in enumerate(procs, 1):
                if i not in ended and not proc.is_alive():
                    ended.add(i)
                    failed.append(f"worker {i} (exit code {proc.exitcode}): the tasks it held are not done")
                    board._print(f"FAILED worker {i} died (exit code {proc.exitcode}); `bench run` again does "
                                 f"what it left")
            continue
        if kind == "line":
            board._print(f"[w{worker}] {event[0]}")
        elif kind == "finished":
            label_kind, label, seconds, result, key = event
            board.finished(label_kind, f"{label} [w{worker}]", seconds, result, key=key)
        elif kind == "failed":
            label_kind, label, text, skipped, keys = event
            for i, inbox in enumerate(inboxes, 1):
                if i != worker:
                    inbox.put(keys)
            board.failed(label_kind, f"{label} [w{worker}]", text, skipped, keys=keys)
        elif kind == "crashed":
            board._print(f"FAILED worker {worker} crashed:\n    " + event[0].rstrip().replace("\n", "\n    "))
        elif kind == "done":
            ran += event[0]
            failed += [f for f in event[1] if f not in failed]
            ended.add(worker)
    for proc in procs:
        proc.join()
    return ran, failed


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables while a worker process starts (a spawned child copies them)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
