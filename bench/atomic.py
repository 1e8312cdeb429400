"""Writing a file all at once, for every writer of bench: the store (records, artifacts, checkpoints) and the
report (which imports nothing of the store). A reader, a crash, `kill -9` or a full disk never leaves a partial
file: the old one stays, or the new one is whole. A writer killed between its temp file and the rename leaves
the hidden temp file, named by its host and pid, so that whoever learns that writer is gone (the store, taking
over its claim) can find what it left (`left_by`)."""

from __future__ import annotations

import io
import os
import socket
import uuid
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write `path` all at once: temp file in the same folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def left_by(folder: Path, host: str, pid: int) -> list[Path]:
    """The temp files in `folder` of the writer `pid` on `host`: once it is gone, what it was killed writing."""
    writer = f".{host}.{pid}"
    try:
        with os.scandir(folder) as entries:
            return [folder / e.name for e in entries if e.name.startswith(".") and e.name.endswith(".tmp")
                    and e.name[:-len(".tmp")].rpartition(".")[0].endswith(writer)]  # less .RANDOM.tmp
    except FileNotFoundError:
        return []
