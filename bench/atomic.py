"""Writing a file all at once, for every writer of bench: the store (records, artifacts, checkpoints) and the
report (which imports nothing of the store). A reader, a crash, `kill -9` or a full disk never leaves a partial
file: the old one stays, or the new one is whole."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write `path` all at once: temp file in the same folder, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
