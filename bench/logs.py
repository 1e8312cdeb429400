"""The `bench` logger hierarchy: progress and diagnostics are log records of loggers under "bench", and whoever
runs bench (the CLI, a SLURM job) decides where they go and how many show.

Levels: ERROR is a failed task, in full, and WARNING a warning (`bench -q` shows only these, then the command's
summary); INFO is each task's end, and its progress at most once a minute (the default); DEBUG adds every
progress report, each epoch or iteration (`bench -v`).

Where stderr is a terminal, records go through rich, above the live board (`bench.executors.board`); elsewhere
(SLURM logs, CI, a pipe) they are plain lines, each starting with its date and time. Before `configure` (bench
used as a library), warnings and errors go to stderr as bare messages and the rest nowhere.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

LOG = logging.getLogger("bench")
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}  # by verbosity: -q, default, -v
_verbosity = 0  # what `configure` was last given: a SLURM job configures its own log with it
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever `sys.stderr` is when a record comes (as logging's last resort does), so a
    redirected or captured stderr gets the records written after it was replaced."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr


def use(handler: logging.Handler, level: int) -> None:
    """Make `handler` the only one of the bench loggers, which show records from `level` up."""
    for old in list(LOG.handlers):
        LOG.removeHandler(old)
    LOG.addHandler(handler)
    LOG.setLevel(level)
    LOG.propagate = False  # the root logger (and pytest's) need not see bench's lines twice


def configure(verbosity: int = 0, stream: TextIO | None = None) -> None:
    """Send the bench loggers' records to `stream` (default: stderr, whatever it is then): verbosity -1 (`-q`),
    0 or 1 (`-v`). A terminal gets rich's lines (the live board draws below them); anything else plain
    timestamped lines."""
    global _verbosity
    _verbosity = verbosity
    target = stream or sys.stderr
    if getattr(target, "isatty", lambda: False)():
        from rich.console import Console
        from rich.logging import RichHandler
        handler: logging.Handler = RichHandler(console=Console(file=target), show_path=False, show_level=False,
                                               markup=False, log_time_format="[%X]")
    else:
        handler = logging.StreamHandler(stream) if stream else _Stderr()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", TIME_FORMAT))
    use(handler, LEVELS[verbosity])


def verbosity() -> int:
    """The verbosity this process's log was configured with (0 where it was not): `-q`, `-v` or neither."""
    return _verbosity


def live_console() -> Console | None:
    """The terminal the bench logger writes to, where a live board may draw; None where its lines are plain."""
    return next((h.console for h in LOG.handlers if hasattr(h, "console")), None)


use(_Stderr(), logging.WARNING)
