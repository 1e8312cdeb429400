"""`bench run --workers N`: the local executor's loop (`run_local`) in N processes on one machine.

Each worker runs the whole pending plan in the same order; the store's task claims (`bench.store.Store.claim`)
make them split it, so a distillation still comes before its evaluations and no task is computed twice. Each
worker is pinned to its share of the machine before torch starts in it: `cores // N` threads, and one GPU
(`CUDA_VISIBLE_DEVICES`) when the device is CUDA. Workers send what happens to this process, which keeps the one
progress board (each worker's log records are written there too) and tells every worker about a failed task, so
the others skip it and what needs it, exactly as one process would. A worker whose parent is gone (kill -9) exits
at its next progress report; its claim is taken over by the next run.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import logging.handlers
import multiprocessing
import os
import queue
import signal
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from bench.executors.board import Board, failure_text, log
from bench.executors.local import run_local
from bench.executors.tasks import DatasetCache
from bench.executors.todo import Pending
from bench.logs import LOG, use
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
    """The board a worker reports to: each call becomes an event for the parent's `Board`."""

    events: Any  # multiprocessing queue to the parent
    worker: int
    parent: int  # the parent's pid: when it is gone, this worker stops

    def _send(self, *event: Any) -> None:
        if os.getppid() != self.parent:
            os._exit(1)  # the run was killed: leave the task's claim to the next run
        self.events.put((self.worker, *event))

    def task_progress(self, key: str, label: str, kind: str) -> Progress:
        return lambda step, total, detail: self._send("progress", key, label, kind, step, total, detail)

    def finished(self, kind: str, label: str, seconds: float | None, result: str = "", key: str = "") -> None:
        self._send("finished", kind, label, seconds, result, key)

    def failed(self, kind: str, label: str, exc: BaseException | str | None, skipped: dict[str, int],
               keys: list[str] = ()) -> None:
        self._send("failed", kind, label, failure_text(exc), skipped, list(keys))

    def waiting(self, count: int, holders: list[str]) -> None:
        """Waiting on a sibling is how workers share a stage: not news for the board."""


class _Forward(logging.handlers.QueueHandler):
    """Sends a worker's log records (their text made here) to the parent, whose handlers write them."""

    def __init__(self, board: RemoteBoard):
        super().__init__(None)
        self.board = board

    def enqueue(self, record: logging.LogRecord) -> None:
        self.board._send("log", record)


def _work(worker: int, parent: int, plan: Plan, todo: Pending, store: Path, data_root: Path, device: str,
          threads: int, checkpoint_every: int, events: Any, inbox: Any, level: int,
          on_record: Callable[[Record], None] | None) -> None:
    """One worker: the whole pending plan, under claims, reporting to the parent (its log records at `level` up
    too)."""
    _die_with(parent)
    torch.set_num_threads(threads)
    board = RemoteBoard(events, worker, parent)
    use(_Forward(board), level)
    try:
        ran, failed = run_local(plan, todo, Store(store, on_record), DatasetCache(data_root, store / "cache"),
                                torch.device(device), board, checkpoint_every, GivenUp(inbox))
    except BaseException as exc:  # noqa: BLE001 - a worker's own crash is reported, never silent
        board._send("crashed", failure_text(exc))
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
                board: Board, checkpoint_every: int, workers: int, threads: int) -> tuple[int, list[str]]:
    """`run_local` in `workers` processes of `threads` threads each; (tasks run, labels of the failed ones), as
    `run_local` returns."""
    context = multiprocessing.get_context("spawn")  # torch's thread pools do not survive fork
    events = context.Queue()
    inboxes = [context.Queue() for _ in range(workers)]
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    names = {i: f"w{i} " + (f"GPU {(i - 1) % gpus}" if gpus else str(device)) for i in range(1, workers + 1)}
    procs: list[BaseProcess] = []
    for i in range(workers):
        pinned = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)} | (
            {"CUDA_VISIBLE_DEVICES": str(i % gpus)} if gpus else {})
        args = (i + 1, os.getpid(), plan, todo, store.root, datasets.root, "cuda" if gpus else str(device), threads,
                checkpoint_every, events, inboxes[i], LOG.getEffectiveLevel(), store.on_record)
        with _environment(pinned):
            proc = context.Process(target=_work, args=args, name=f"bench worker {i + 1}", daemon=True)
            proc.start()
        procs.append(proc)
    where = f", GPU {', '.join(str(i % gpus) for i in range(workers))}" if gpus else ""
    log.info("%d workers, %d thread(s) each%s", workers, threads, where)

    ran, failed, ended = 0, [], set()
    while len(ended) < workers:
        try:
            worker, kind, *event = events.get(timeout=1.0)
        except queue.Empty:
            for i, proc in enumerate(procs, 1):
                if i not in ended and not proc.is_alive():
                    ended.add(i)
                    failed.append(f"worker {i} (exit code {proc.exitcode}): the tasks it held are not done")
                    log.error("FAILED worker %d died (exit code %s); `bench run` again does what it left", i,
                              proc.exitcode)
            continue
        if kind == "progress":
            board.progress(*event, worker=names[worker])
        elif kind == "log":
            logging.getLogger(event[0].name).handle(event[0])
        elif kind == "finished":
            label_kind, label, seconds, result, key = event
            board.finished(label_kind, label, seconds, result, key=key, worker=names[worker])
        elif kind == "failed":
            label_kind, label, text, skipped, keys = event
            for i, inbox in enumerate(inboxes, 1):
                if i != worker:
                    inbox.put(keys)
            board.failed(label_kind, label, text, skipped, keys=keys, worker=names[worker])
        elif kind == "crashed":
            log.error("FAILED worker %d crashed:\n    %s", worker, event[0].replace("\n", "\n    "))
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
