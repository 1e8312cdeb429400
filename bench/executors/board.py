"""The progress board of a run: the one place that says how tasks go, for the local loop, the worker pool (its
parent process keeps the board) and a SLURM task's log.

Where stderr is a terminal (`bench.logs.live_console`), a live rich board shows one line per running task
(with its worker once there are several) under a suite bar with done/failed counts and the ETA; what ends is
logged above it. Elsewhere every line is a log record: a task's end (or failure, in full), and its progress at
most once every `every_s` (a minute), each line timestamped by the handler. `bench -v` logs every progress
report (each epoch or iteration) too.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bench.logs import LOG

if TYPE_CHECKING:
    from rich.console import Console

    from bench.train import Progress

KINDS = ("expert", "whole", "distill", "evaluate")  # as `bench.executors.todo.kind_of` names tasks
SUITE_ROW_EVERY_S = 1.0  # the live suite row's ETA is worked out again at most this often while tasks report progress
log = LOG.getChild("run")


def clock(seconds: float) -> str:
    """A duration as h:mm:ss, as rich's progress columns show time."""
    return str(timedelta(seconds=round(seconds)))


def failure_text(exc: BaseException | str | None) -> str:
    """A failure as text: an exception's traceback, or the text of one made in another process."""
    if isinstance(exc, BaseException):
        return "".join(traceback.format_exception(exc)).rstrip()
    return (exc or "").rstrip()


def eta(left: dict[str, int], times: dict[str, list[float]], parallel: int = 1,
        running: list[tuple[str, float, float]] = ()) -> str:
    """The time left: per kind, its tasks left (those running included) times the mean time of its finished ones,
    less what the running ones have already spent, over `parallel` workers. `running` holds (kind, seconds
    spent, fraction done) of each task under way.

    A kind none of whose tasks has finished takes its mean from its running tasks' progress (seconds spent over
    fraction done); one with no progress yet is named instead of guessed: kinds differ by orders of magnitude
    (one whole-dataset run can cost a hundred evaluations), so no other kind's mean stands in for it."""
    means = {k: sum(t) / len(t) for k, t in times.items() if t}
    rates: dict[str, list[float]] = {}
    for kind, spent, done in running:
        if kind not in means and done > 0:
            rates.setdefault(kind, []).append(spent / done)
    means |= {k: sum(r) / len(r) for k, r in rates.items()}
    timed = {k: n for k, n in left.items() if n > 0 and k in means}
    untimed = ", ".join(f"{n} {k}" for k, n in left.items() if n > 0 and k not in means)
    spent = sum(min(s, means[k]) for k, s, _ in running if k in timed)
    seconds = max(0.0, sum(n * means[k] for k, n in timed.items()) - spent) / max(1, parallel)
    if not untimed:
        return clock(seconds)
    return f"≥{clock(seconds)} ({untimed} not timed yet)" if timed else f"? ({untimed} not timed yet)"


@dataclass
class _Running:
    """A task that has reported progress and not ended: its board row (live) and when its last line went out."""

    label: str
    kind: str
    worker: str
    start: float
    last_line: float
    done: float = 0.0  # the fraction of its steps it has reported
    row: Any = None


@dataclass
class Board:
    """Suite progress (tasks ended / total, failures, a per-kind ETA) and where each running task is.

    `left` counts each kind's tasks to run (`KINDS`); `workers` run at once; `console` is a terminal for the live
    board, or None for plain lines. A task is named by its key: workers of one run may each see a task end (one
    ran it, the others found it done), and it is counted once."""

    left: dict[str, int]
    workers: int = 1
    console: Console | None = None
    every_s: float = 60.0
    done: int = 0
    failures: int = 0
    times: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    seen: set[str] = field(default_factory=set)
    running: dict[str, _Running] = field(default_factory=dict)
    shown_at: float = 0.0  # when the live suite row was last drawn

    def __post_init__(self) -> None:
        self.left = {k: self.left.get(k, 0) for k in KINDS}
        self.total = sum(self.left.values())
        self.live = None
        if self.console is not None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Live, TextColumn, TimeElapsedColumn
            self.live = Live(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                             refresh_per_second=2)
            self.suite_row = self.live.add_task("suite", total=self.total, info=self._summary())

    def __enter__(self) -> Board:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def task_progress(self, key: str, label: str, kind: str, worker: str = "") -> Progress:
        """The `Progress` a task of `kind` (`KINDS`) reports to while it runs."""
        return lambda step, total, detail: self.progress(key, label, kind, step, total, detail, worker)

    def progress(self, key: str, label: str, kind: str, step: int, total: int, detail: str, worker: str = "") -> None:
        """Task `key` is at `step` of `total` ("epoch, loss 0.53"): its live row, or a line at most every
        `every_s`; with -v, a line each time. Its progress counts in the ETA."""
        now = time.monotonic()
        task = self.running.get(key)
        if task is None:
            task = self.running[key] = _Running(label, kind, worker, now, now)
            if self.live is not None:
                task.row = self.live.add_task(label, total=total, info="")
        task.done = step / total if total > 0 else 0.0
        unit, _, rest = detail.partition(",")
        where = f"{unit} {step}/{total}{',' + rest if rest else ''}"
        if self.live is not None:
            self.live.update(task.row, completed=step, total=total, info=f"{worker} {rest.strip()}".strip())
            if now - self.shown_at >= SUITE_ROW_EVERY_S:  # the ETA moves with the running tasks' progress
                self._show()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("    %s%s: %s", label, _tag(worker), where)
        elif self.live is None and now - task.last_line >= self.every_s:
            task.last_line = now
            log.info("    %s%s: %s (%s)", label, _tag(worker), where, clock(now - task.start))

    def finished(self, kind: str, label: str, seconds: float | None, result: str = "", key: str = "",
                 worker: str = "") -> None:
        """A task ended: run here in `seconds` (its time counts for its kind's ETA), or None where another run
        had done it."""
        if not self._first(key):
            return
        self._end(key)
        self.done += 1
        self.left[kind] -= 1
        took = " (done by another run)" if seconds is None else f" in {clock(seconds)}"
        if seconds is not None:
            self.times[kind].append(seconds)
        log.info("[%d/%d] %s%s%s%s | ETA %s", self.done, self.total, label, _tag(worker), result, took, self.eta())
        self._show()

    def failed(self, kind: str, label: str, exc: BaseException | str | None, skipped: dict[str, int],
               keys: list[str] = (), worker: str = "") -> None:
        """A failed task (its exception, or its traceback as text), how many tasks that needed its output are
        skipped with it, and the keys of all of them; logged in full."""
        if not all(map(self._first, keys)):
            return
        for key in keys[:1]:
            self._end(key)
        count = 1 + sum(skipped.values())
        self.done += count
        self.failures += count
        self.left[kind] -= 1
        for k, n in skipped.items():
            self.left[k] -= n
        also = f" (skipping {count - 1} task(s) that need it)" if count > 1 else ""
        text = failure_text(exc).replace("\n", "\n    ")
        log.error("[%d/%d] FAILED %s%s%s\n    %s", self.done, self.total, label, _tag(worker), also, text)
        self._show()

    def waiting(self, count: int, holders: list[str]) -> None:
        """Nothing left to run here but `count` tasks that other live runs hold (or that need their output)."""
        by = f" (held by {'; '.join(holders)})" if holders else ""
        log.info("waiting for %d task(s) that another run is computing%s", count, by)

    def eta(self) -> str:
        now = time.monotonic()
        running = [(t.kind, now - t.start, t.done) for t in self.running.values()]
        return eta(self.left, self.times, self.workers, running)

    def _summary(self) -> str:
        failed = f"{self.failures} failed · " if self.failures else ""
        return f"{failed}ETA {self.eta()}"

    def _show(self) -> None:
        if self.live is not None:
            self.shown_at = time.monotonic()
            self.live.update(self.suite_row, completed=self.done, info=self._summary())

    def _end(self, key: str) -> None:
        task = self.running.pop(key, None)
        if task is not None and task.row is not None and self.live is not None:
            self.live.remove_task(task.row)

    def _first(self, key: str) -> bool:
        """Whether the task `key` ("" for an unnamed one) is reported for the first time."""
        if not key:
            return True
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def _tag(worker: str) -> str:
    return f" [{worker}]" if worker else ""
