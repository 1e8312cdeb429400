"""What this process may use of the machine: its cores, and the threads torch gets in each worker (torch-free,
so the store and the CLI's planning can ask without importing torch)."""

from __future__ import annotations

import gc
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def available_cores() -> int:
    """The cores this process may run on (a SLURM or container allotment, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_threads(workers: int = 1) -> int:
    """torch's threads per process when neither `--threads` nor bench.yaml's `threads:` says: OMP_NUM_THREADS
    where the environment sets it (a cluster's or a test's deliberate pin), else the available cores shared by
    the workers, at least 1. torch's own default takes every core for each process, which on a shared machine
    made one evaluation 2.6x slower than one thread."""
    pinned = os.environ.get("OMP_NUM_THREADS", "")
    if pinned.isdigit() and int(pinned) > 0:
        return int(pinned)
    return max(1, available_cores() // workers)


# What the forked workers of `map_forked` run: set before they fork, so they inherit it rather than unpickle it.
_WORK: tuple[Callable[..., Any], list[tuple]] | None = None


def _run_item(i: int) -> Any:
    fn, items = _WORK
    return fn(*items[i])


def map_forked(fn: Callable[..., T], *iterables: Iterable[Any], workers: int,
               initializer: Callable[[], object] | None = None) -> list[T]:
    """`map(fn, *iterables)` over `workers` forked processes where there are two or more and the OS can fork,
    else in this process: for work whose results are small next to what it reads (records parsed, a report's
    views and files). The children inherit `fn` and the items (only an index is pickled on the way in), so `fn`
    may be a closure and an item a 100,000-row frame."""
    global _WORK
    items = list(zip(*iterables))
    if workers < 2 or len(items) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(*item) for item in items]
    _WORK = (fn, items)
    try:
        with ProcessPoolExecutor(min(workers, len(items)), mp_context=multiprocessing.get_context("fork"),
                                 initializer=initializer) as pool:
            return list(pool.map(_run_item, range(len(items))))
    finally:
        _WORK = None


@contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building many objects that form no cycles (a plan's 100,000
    tasks, a report's records and rows): its passes over them, ever longer as they pile up, cost a tenth to an
    eighth of the time. What does form cycles meanwhile is collected once it is back on."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
