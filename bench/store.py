"""The results store: one JSON record per evaluation run (and per whole-dataset run), one file per artifact,
under one folder. What a record and an artifact's metadata hold is defined in `bench.records`.

Every file is written to a temporary name in its final folder and renamed into place, so a reader
(or a rerun after kill -9, a crash or a preempted job) sees either the whole file or nothing, on a
local disk as on NFS/Lustre where many SLURM jobs write at once. Files are named by their task's
content key, so two writers of the same task cannot create a duplicate: the last rename wins with
an equivalent file.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import torch

from bench.records import ArtifactMeta, Record, field_reader


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


# Records per read_fields worker below which a worker process costs more than it saves.
PARALLEL_READ = 10_000


def _read_file(path: str) -> bytes | None:
    """One record file's bytes (one os.open/os.read pair, no pathlib), or None where there is none. A record
    is always whole (written by rename), so a file that exists parses."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _read_fields(base: str, keys: list[str], fields: tuple[str, ...]) -> list[tuple]:
    """`Store.read_fields` for one batch of keys (in a worker process, or in the caller's)."""
    read = field_reader(fields)
    rows = []
    for key in keys:
        text = _read_file(os.path.join(base, key[:2], f"{key}.json"))
        if text is not None:
            rows.append(read(json.loads(text)))
    return rows


class Store:
    """records/<k[:2]>/<key>.json and artifacts/<k[:2]>/<key>.pt under `root`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / key[:2] / f"{key}{suffix}"

    def has_record(self, key: str) -> bool:
        return self._path("records", key, ".json").exists()

    def write_record(self, record: Record) -> None:
        text = record.to_json().encode()
        atomic_write(self._path("records", record.key, ".json"), lambda f: f.write(text))

    def read_record(self, key: str) -> Record | None:
        text = _read_file(str(self._path("records", key, ".json")))
        return None if text is None else Record.from_json(text)

    def read_records(self, keys: Iterable[str]) -> list[Record]:
        """The records of `keys` that exist, in order."""
        return [r for r in map(self.read_record, keys) if r is not None]

    def read_fields(self, keys: Iterable[str], fields: tuple[str, ...]) -> list[tuple]:
        """`fields` (names of `Record` fields) of the records of `keys` that exist, in key order, one tuple per
        record; a field a record predates has its default, as `Record.from_json` gives it.

        What a report needs from a suite's 100,000 records. Parsing the JSON is the cost, so a large batch is
        split over one worker process per available core (forked, where the OS can fork), each sending back
        only these fields; elsewhere, and for small batches, it is read here.
        """
        keys = list(keys)
        base = os.path.join(self.root, "records")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        workers = min(cores, 8, len(keys) // PARALLEL_READ)
        if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return _read_fields(base, keys, fields)
        size = -(-len(keys) // workers)
        chunks = [keys[i:i + size] for i in range(0, len(keys), size)]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = pool.map(_read_fields, [base] * len(chunks), chunks, [fields] * len(chunks))
            return [row for part in parts for row in part]

    def has_artifact(self, key: str) -> bool:
        return self._path("artifacts", key, ".pt").exists()

    def save_artifact(self, tensors: dict[str, torch.Tensor], meta: ArtifactMeta) -> None:
        """Artifacts are written once: an existing one is never replaced.

        `meta` is stored as JSON text, so it is plain data and loads with `weights_only=True`.
        """
        key = meta.key
        if not self.has_artifact(key):
            payload = {"tensors": tensors, "meta": meta.to_json()}
            atomic_write(self._path("artifacts", key, ".pt"), lambda f: torch.save(payload, f))

    def checkpoint_path(self, key: str) -> Path:
        """Where a distillation task keeps its resumable state until its artifact is saved."""
        return self._path("checkpoints", key, ".pt")

    def load_artifact(self, key: str) -> tuple[dict[str, torch.Tensor], ArtifactMeta]:
        payload = torch.load(self._path("artifacts", key, ".pt"), map_location="cpu", weights_only=True)
        return payload["tensors"], ArtifactMeta.from_json(payload["meta"])
