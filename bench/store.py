"""The results store: one JSON record per evaluation run, one file per artifact, under one folder.

Every file is written to a temporary name in its final folder and renamed into place, so a reader
(or a rerun after kill -9, a crash or a preempted job) sees either the whole file or nothing, on a
local disk as on NFS/Lustre where many SLURM jobs write at once. Files are named by their task's
content key, so two writers of the same task cannot create a duplicate: the last rename wins with
an equivalent file.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

import torch


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


class Store:
    """records/<k[:2]>/<key>.json and artifacts/<k[:2]>/<key>.pt under `root`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def has_record(self, key: str) -> bool:
        return self._path("records", key, ".json").exists()

    def write_record(self, record: dict[str, Any]) -> None:
        text = json.dumps(record, sort_keys=True, indent=1).encode()
        atomic_write(self._path("records", record["key"], ".json"), lambda f: f.write(text))

    def read_record(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path("records", key, ".json").read_bytes())
        except FileNotFoundError:
            return None

    def read_records(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        return [r for r in map(self.read_record, keys) if r is not None]

    def has_artifact(self, key: str) -> bool:
        return self._path("artifacts", key, ".pt").exists()

    def save_artifact(self, key: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Artifacts are written once: an existing one is never replaced.

        `meta` is stored as JSON text, so it is plain data and loads with `weights_only=True`.
        """
        if not self.has_artifact(key):
            payload = {"tensors": tensors, "meta": json.dumps(meta, sort_keys=True)}
            atomic_write(self._path("artifacts", key, ".pt"), lambda f: torch.save(payload, f))

    def load_artifact(self, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        payload = torch.load(self._path("artifacts", key, ".pt"), map_location="cpu", weights_only=True)
        return payload["tensors"], json.loads(payload["meta"])
