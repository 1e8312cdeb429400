"""The results store: one JSON record per evaluation run (and per whole-dataset run), one file per artifact,
under one folder. What a record and an artifact's metadata hold is defined in `bench.records`.

Every file is written to a temporary name in its final folder and renamed into place (`bench.atomic`), so a reader
(or a rerun after kill -9, a crash or a preempted job) sees either the whole file or nothing, on a
local disk as on NFS/Lustre where many SLURM jobs write at once. Files are named by their task's
content key, so two writers of the same task cannot create a duplicate: the last rename wins with
an equivalent file.

A task is claimed before it runs (`Store.claim`): a file under claims/, created atomically (O_EXCL), names its
holder and is refreshed by a heartbeat while the task runs, so two `bench run` of one suite on one store, or SLURM
array elements that race, never compute the same task twice. The claim of a dead holder is taken over: at once on
the same host when its process is gone (kill -9), elsewhere once its heartbeat is older than `STALE_AFTER_S`. The
run taking it over removes the temp files the dead holder was killed writing (`bench.atomic.left_by`).

Every file is verified when read: a record by its checksum (or, written by an older bench, field by field), an
artifact by loading it and checking its metadata and the checksum of its tensors, a checkpoint by loading it. A
large tensor that is read a row at a time (MTT's trajectories: 10 GB for CIFAR-100) is stored one file per row,
each checked when it is first read (`Parts`). A file that fails (a disk error, a copy cut short, a hand edit) is
moved to `quarantine/` under the same relative path, with `<name>.reason.txt` beside it, and a warning names it:
its task then counts as not done, so `bench run` recomputes it, and a report shows what remains.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import socket
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Iterable, Sequence, TypeVar


from bench.atomic import atomic_write, left_by
from bench.logs import LOG
from bench.machine import available_cores, map_forked, no_cyclic_gc
from bench.records import (CHECKSUMMED, ArtifactMeta, DamagedFile, Record, check_record, field_reader,
                           load_record)

log = LOG.getChild("store")

if TYPE_CHECKING:  # torch is imported where tensors are read or written: planning a suite needs none
    import torch

QUARANTINE = "quarantine"
ROLLUPS = "rollups"  # rollups/<suite>.json: the record fields a suite's report read (`Store.read_fields`)
ROLLUP_VERSION = 1
RACY_NS = 2_000_000_000  # a records/ folder changed this close before its time was taken is listed again
PARTS = ".parts"  # artifacts/<k[:2]>/<key>.parts/<name>.<row>.pt: the rows of an artifact's `Parts`
CLAIMS = "claims"
HEARTBEAT_S = 30.0  # how often a running task refreshes its claim
STALE_AFTER_S = 600.0  # a claim not refreshed for this long belongs to a dead holder (clocks of hosts may differ)
T = TypeVar("T")
RECOMPUTED = "its task counts as not done, and `bench run` recomputes it"
RESTARTED = "the distillation it belongs to starts from scratch"


@dataclass(frozen=True)
class Quarantined:
    """A damaged file, moved from `path` to `moved_to` (with `<name>.reason.txt` beside it; None where the store
    is read-only to this process), and what follows."""

    path: Path
    moved_to: Path | None
    reason: str
    then: str = RECOMPUTED

    def __str__(self) -> str:
        where = (f"It was moved to {self.moved_to} (the reason is beside it)" if self.moved_to else
                 "It could not be moved to quarantine (the store is read-only here), so it is skipped")
        return f"{self.path} is damaged: {self.reason}. {where}; {self.then}."


def quarantine(root: Path, path: Path, reason: str, then: str = RECOMPUTED) -> Quarantined:
    """Move the damaged `path` (under the store `root`) to root/quarantine/ under the same relative path and
    write why and when beside it (unless another process that found it damaged moved it first). An earlier
    quarantined copy of the same file is replaced."""
    relative = path.relative_to(root)
    moved_to = root / QUARANTINE / relative
    try:
        moved_to.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, moved_to)
    except FileNotFoundError:
        return Quarantined(path, moved_to, reason, then)
    except OSError:
        return Quarantined(path, None, reason, then)
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    note = (f"{relative}: {reason}.\nQuarantined {when} by bench on {socket.gethostname()} (pid {os.getpid()}): "
            f"{then}. Delete this file and the one beside it once you have looked.\n")
    with contextlib.suppress(OSError):  # a full disk: the warning still says why
        atomic_write(moved_to.with_name(f"{moved_to.name}.reason.txt"), lambda f: f.write(note.encode()))
    return Quarantined(path, moved_to, reason, then)


# Records per read_fields worker below which a worker process costs more than it saves.
PARALLEL_READ = 10_000


def _read_file(path: str) -> bytes | None:
    """One file's bytes (one os.open/os.read pair, no pathlib), or None where there is none."""
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


def _verified(root: str, key: str, moved: list[Quarantined], check: Callable[[bytes, str], T]) -> T | None:
    """`check` (`load_record` or `check_record`) of the record file of `key`, or None where there is none, or
    where it is damaged: then it is quarantined and appended to `moved`."""
    path = f"{root}/records/{key[:2]}/{key}.json"  # no os.path.join: this runs 100,000 times for a report
    data = _read_file(path)
    if data is None:
        return None
    try:
        return check(data, key)
    except DamagedFile as exc:
        moved.append(quarantine(Path(root), Path(path), str(exc)))
        return None


def _read_fields(root: str, keys: list[str], fields: tuple[str, ...]) -> tuple[list[tuple], list[Quarantined]]:
    """`Store.read_fields` for one batch of keys (in a worker process, or in the caller's), and what it
    quarantined."""
    read = field_reader(fields)
    rows: list[tuple[str, tuple]] = []
    moved: list[Quarantined] = []
    for key in keys:
        raw = _verified(root, key, moved, load_record)
        if raw is not None:
            rows.append((key, read(raw)))
    return rows, moved


def _load_rollup(path: Path, fields: tuple[str, ...]
                 ) -> tuple[dict[str, tuple[int, tuple]], dict[str, int | None], int]:
    """key -> (inode, fields) of a roll-up written for these fields, the records/ folders' times it saw, and the
    file system's time just before it saw them; nothing where there is none, or it is damaged or of other fields
    (it is rebuilt from the records: it holds nothing they do not)."""
    data = _read_file(str(path))
    if data is None:
        return {}, {}, 0
    head, _, body = data.partition(b"\n")
    try:
        meta = json.loads(head)
        if {k: meta.get(k) for k in ("version", "fields", "sha256")} != {
                "version": ROLLUP_VERSION, "fields": list(fields), "sha256": hashlib.sha256(body).hexdigest()}:
            raise ValueError("written for other fields, by another version, or damaged")
        columns = json.loads(body)
        rows = dict(zip(columns["key"], zip(columns["inode"], zip(*(columns[f] for f in fields)))))
        return rows, dict(meta["folders"]), int(meta["checked"])
    except (ValueError, KeyError, TypeError) as exc:
        log.info("%s: %s; it is rebuilt from the records", path, exc)
        return {}, {}, 0


def _save_rollup(path: Path, fields: tuple[str, ...], rows: dict[str, tuple[int, tuple]],
                 folders: dict[str, int | None], checked: int) -> None:
    """A header line (version, fields, folder times and when they were taken, SHA-256 of the rest), then the rows
    as JSON columns (a third faster to parse than one list per row), written at once: two reports at the same
    time each write a whole roll-up, and either is right."""
    values = list(zip(*(row for _, row in rows.values()))) or [()] * len(fields)
    columns = {"key": list(rows), "inode": [inode for inode, _ in rows.values()], **dict(zip(fields, values))}
    body = json.dumps(columns, separators=(",", ":")).encode()
    head = json.dumps({"version": ROLLUP_VERSION, "fields": list(fields), "folders": folders, "checked": checked,
                       "sha256": hashlib.sha256(body).hexdigest()})
    with contextlib.suppress(OSError):  # a read-only or full store: the report is right without its roll-up
        atomic_write(path, lambda f: f.write(head.encode() + b"\n" + body))


def _digest(tensors: dict[str, torch.Tensor], meta: str, parts: dict[str, Any] | None = None) -> str:
    """SHA-256 of an artifact's metadata text, of its `parts` (the checksum of each row stored apart, where it
    has any) and of each tensor's name, dtype, shape and bytes."""
    import torch

    h = hashlib.sha256(meta.encode())
    if parts:
        h.update(json.dumps(parts, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _torch_load(data: bytes | Path) -> Any:
    """What torch.save wrote, from a file's bytes, or memory-mapped from a file (only what is used of its tensors
    is read); `DamagedFile` where it is not a torch file."""
    import torch

    if not (data if isinstance(data, bytes) else data.stat().st_size):
        raise DamagedFile("it is empty (zero bytes)")
    try:
        with warnings.catch_warnings():  # a damaged pickle can make torch warn before it fails: the error says it
            warnings.simplefilter("ignore")
            if isinstance(data, Path):
                return torch.load(data, map_location="cpu", weights_only=True, mmap=True)
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # on damaged bytes torch raises anything: EOFError, OSError, IndexError, ...
        said = re.split(r"(?<=\.)\s", str(exc).strip(), maxsplit=1)[0][:200] or "no message"
        raise DamagedFile(f"torch cannot load it: it was cut short or is not a torch file "
                          f"({type(exc).__name__}: {said})") from None


def _artifact(data: bytes, key: str) -> tuple[dict[str, torch.Tensor], ArtifactMeta, dict[str, Any]]:
    """An artifact file's tensors, metadata and parts (name: {shape, checksums} of each tensor stored one file
    per row; none in a file of a bench before parts), verified: its layout, its metadata's fields and key, and
    the checksum of metadata, parts and tensors (an artifact of a bench before checksums has none)."""
    import torch

    payload = _torch_load(data)
    if not (isinstance(payload, dict) and isinstance(payload.get("tensors"), dict)
            and isinstance(payload.get("meta"), str) and isinstance(payload.get("parts", {}), dict)
            and payload.keys() <= {"tensors", "meta", "parts", "checksum"}):
        raise DamagedFile("it is not an artifact (a dict of 'tensors', 'meta', 'parts' and 'checksum')")
    tensors = payload["tensors"]
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()):
        raise DamagedFile("its 'tensors' are not a dict of named tensors")
    meta = ArtifactMeta.from_json(payload["meta"])
    if meta.key != key:
        raise DamagedFile(f"it holds the artifact of key '{meta.key}', not that of its file name")
    parts = payload.get("parts", {})
    if "checksum" in payload:
        if payload["checksum"] != _digest(tensors, payload["meta"], parts):
            raise DamagedFile("its checksum does not match its tensors (the file was changed after it was written)")
    elif meta.schema_version >= CHECKSUMMED or parts:
        raise DamagedFile(f"its metadata has schema version {meta.schema_version} but it has no checksum")
    return tensors, meta, parts


def _part_id(key: str, name: str, row: int) -> str:
    """What the checksum of a row stored apart covers besides its tensor: its place, so a file moved to another
    row or artifact fails it."""
    return f"{key}/{name}/{row}"


class Parts:
    """A tensor an artifact stores one file per row (`Store.save_artifact(..., parts=...)`), read a row at a time:
    MTT's trajectories, one file per expert, so a distillation holds the expert it matches, never the stage.

    Why one file per row and not one file read memory-mapped: each row has its own checksum (kept in the
    artifact's main file, itself checksummed), so a row is verified by reading that row alone. One file's
    checksum would make every distillation read all of it (10 GB) before trusting any of it, and one bad byte
    would condemn the whole stage; here nothing reads the whole tensor but `bench verify`, one row at a time.

    `parts[i]` is row i, memory-mapped: of a row already verified, only what the caller indexes is read. The
    first read of a row through this object hashes it whole; where that fails (or its file is gone) it is
    quarantined with its reason, and the artifact counts as not done, so `bench run` rebuilds it. `len` and
    `shape` are those of the whole tensor, as for the tensor it stands for; rows of different shapes (the
    coresets' features, one row per class) were stored from a list of tensors, whose `shape` is its length.
    """

    def __init__(self, store: Store, key: str, name: str, shape: list[int], checksums: list[str]):
        import torch

        self.store, self.key, self.name, self.checksums = store, key, name, checksums
        self.shape = torch.Size(shape)
        self._verified: set[int] = set()

    def __len__(self) -> int:
        return self.shape[0]

    def stored(self) -> bool:
        """Whether every row has its file (a quarantined or deleted one makes the artifact not done)."""
        return all(self.store._part_path(self.key, self.name, row).exists() for row in range(len(self)))

    def verify(self) -> None:
        """Check every row, one at a time (`bench verify`), quarantining each that fails."""
        self._verified.clear()
        for row in range(len(self)):
            with contextlib.suppress(DamagedFile, FileNotFoundError):
                self[row]

    def __getitem__(self, row: int) -> torch.Tensor:
        import torch

        path = self.store._part_path(self.key, self.name, row)
        try:
            tensor = _torch_load(path)
            if not isinstance(tensor, torch.Tensor):
                raise DamagedFile("it is not a tensor (a row of an artifact stored apart)")
            if row not in self._verified and _digest({self.name: tensor}, _part_id(self.key, self.name, row)) \
                    != self.checksums[row]:
                raise DamagedFile("its checksum does not match its tensor (the file was changed after it was "
                                  "written, or belongs elsewhere)")
        except FileNotFoundError:  # quarantined by another run meanwhile
            self.store._sound.discard(self.key)
            raise
        except DamagedFile as exc:
            self.store._sound.discard(self.key)
            raise DamagedFile(str(self.store._quarantine(path, str(exc)))) from None
        self._verified.add(row)
        return tensor


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, as its file says, and when its heartbeat last refreshed it."""

    host: str
    pid: int
    token: str  # unique to one claim, so a holder never mistakes another's claim for its own
    since: str
    refreshed: float  # the claim file's mtime

    def alive(self, now: float) -> bool:
        """Whether the holder may still be running: on this host, whether its process exists; elsewhere, whether
        its heartbeat is recent."""
        if self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        return now - self.refreshed < STALE_AFTER_S

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.since}"


def _holder(path: Path) -> Holder | None:
    """The holder a claim file names (None where there is no file); a claim file that cannot be read (being
    written, or cut short by a crash) is judged by its age alone."""
    try:
        data, refreshed = _read_file(str(path)), path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        raw = json.loads(data or b"")
        return Holder(str(raw["host"]), int(raw["pid"]), str(raw["token"]), str(raw["since"]), refreshed)
    except (ValueError, KeyError, TypeError):  # being written this instant, or cut short: judged by its age
        return Holder("?", 0, "", "?", refreshed)


class Claim:
    """This process's claim on one task: released when the task ends (as a context manager), refreshed by a
    heartbeat thread meanwhile, so other runs see a live holder."""

    def __init__(self, path: Path, token: str):
        self.path, self.token = path, token
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name=f"claim {path.stem[:8]}")
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        self._stop.set()
        holder = _holder(self.path)
        if holder is not None and holder.token == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Store:
    """records/<k[:2]>/<key>.json, artifacts/<k[:2]>/<key>.pt and checkpoints/<k[:2]>/<key>.pt under `root`;
    damaged files under quarantine/, task claims under claims/, which plugin code made which artifact under
    versions/, what each suite's report read of its records under rollups/."""

    def __init__(self, root: Path, on_record: Callable[[Record], None] | None = None):
        self.root = Path(root)
        self.on_record = on_record  # told of each record once it is written (`bench.tracking.Tracking`)
        self.quarantined: list[Quarantined] = []  # what this Store (and its read workers) moved, in order
        self._sound: set[str] = set()  # artifacts verified here: written once, they need no second check

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self._folder(kind, key) / f"{key}{suffix}"

    def _folder(self, kind: str, key: str) -> Path:
        """The folder of `kind` (records, artifacts, ...) that holds the files of keys starting as `key` does."""
        return self.root / kind / key[:2]

    def _moved(self, moved: Iterable[Quarantined]) -> None:
        """Keep and announce (a warning each) the files just quarantined."""
        for q in moved:
            self.quarantined.append(q)
            log.warning("warning: %s", q)

    def _quarantine(self, path: Path, reason: str, then: str = RECOMPUTED) -> Quarantined:
        q = quarantine(self.root, path, reason, then)
        self._moved([q])
        return q

    def _record(self, key: str, check: Callable[[bytes, str], T]) -> T | None:
        moved: list[Quarantined] = []
        result = _verified(str(self.root), key, moved, check)
        self._moved(moved)
        return result

    def has_record(self, key: str) -> bool:
        """Whether the store holds a record of `key` that verifies (a damaged one is quarantined: not done).
        Checked by `check_record`: a hash of the file, not a JSON parse, for the 100,000 calls of a plan."""
        return bool(self._record(key, check_record))

    def write_record(self, record: Record) -> None:
        text = record.to_json().encode()
        atomic_write(self._path("records", record.key, ".json"), lambda f: f.write(text))
        if self.on_record is not None:
            self.on_record(record)

    def read_record(self, key: str) -> Record | None:
        raw = self._record(key, load_record)
        return None if raw is None else Record(**raw)

    def read_records(self, keys: Iterable[str]) -> list[Record]:
        """The records of `keys` that exist and verify, in order."""
        return [r for r in map(self.read_record, keys) if r is not None]

    def read_fields(self, keys: Iterable[str], fields: tuple[str, ...], rollup: str | None = None) -> list[tuple]:
        """`fields` (names of `Record` fields) of the records of `keys` that exist and verify, in key order, one
        tuple per record; a field a record predates has its default, as `Record.from_json` gives it.

        What a report needs from a suite's 100,000 records. With `rollup` (a suite's name), the fields read are
        kept in rollups/<rollup>.json with each record file's inode and each records/ folder's modification time:
        the next call lists only the folders changed since and parses only the records new to them (bench writes
        a record as a new file renamed into place, which changes its folder and gives it a new inode), and a
        record gone from the store (quarantined, deleted) is gone from the result.
        """
        keys = list(keys)
        if rollup is None:
            return [row for _, row in self._parse_fields(keys, fields)]
        path = self.root / ROLLUPS / f"{rollup}.json"
        with no_cyclic_gc():
            kept, folders, checked = _load_rollup(path, fields)
            # Each folder's time is taken before it is listed, so a record added after the listing changes it. A
            # folder changed in the last RACY_NS before its time was taken (both times the file system's) may
            # have changed again within the same tick: it is listed again.
            clock = self._clock()
            now = {prefix: self._folder_time(prefix) for prefix in sorted({k[:2] for k in keys})}
            settled = {p for p, t in now.items() if t is not None and folders.get(p) == t and t < checked - RACY_NS}
            listed = self._inodes([k for k in keys if k[:2] not in settled])
            fresh = self._parse_fields([k for k, ino in listed.items() if kept.get(k, (None,))[0] != ino], fields)
            # A record gone from its folder, or that did not verify (then quarantined), is left out, and read again
            # once its task has rerun.
            gone = [k for k in kept if k[:2] not in settled and k not in listed]
            for k in gone:
                del kept[k]
            kept.update((k, (listed[k], row)) for k, row in fresh)
            if fresh or gone or now != folders or len(settled) < len(now):
                _save_rollup(path, fields, {k: kept[k] for k in keys if k in kept}, now, clock)
            return [kept[k][1] for k in keys if k in kept]

    def _clock(self) -> int:
        """The file system's time now: the modification time of a file created (and removed) under rollups/.
        Folder times are compared with it, not with this host's clock, which a file server's may not agree
        with. 0 where the store is read-only: then no folder is taken as unchanged."""
        try:
            (self.root / ROLLUPS).mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.root / ROLLUPS, prefix=".clock-", suffix=".tmp")
        except OSError:
            return 0
        try:
            return os.fstat(fd).st_mtime_ns
        finally:
            os.close(fd)
            os.unlink(name)

    def _folder_time(self, prefix: str) -> int | None:
        """The modification time (ns) of records/<prefix>/, or None where there is no such folder."""
        try:
            return os.stat(self._folder("records", prefix)).st_mtime_ns
        except FileNotFoundError:
            return None

    def _inodes(self, keys: list[str]) -> dict[str, int]:
        """The inode of each of `keys`' record files that exists, from one directory listing per key prefix
        (a listing is 4x cheaper than a stat per file)."""
        wanted, found = set(keys), {}
        for prefix in sorted({k[:2] for k in keys}):
            with contextlib.suppress(FileNotFoundError), os.scandir(self._folder("records", prefix)) as entries:
                for entry in entries:
                    if entry.name.endswith(".json") and (key := entry.name[:-5]) in wanted:
                        found[key] = entry.inode()
        return found

    def _parse_fields(self, keys: list[str], fields: tuple[str, ...]) -> list[tuple[str, tuple]]:
        """(key, fields) of each of `keys` whose record exists and verifies, in order. Parsing the JSON is the
        cost (a record's checksum is a hash of its bytes, a fraction of that), so a large batch is split over one
        worker process per available core (forked, where the OS can fork), each sending back only these fields
        and what it quarantined; elsewhere, and for small batches, it is read here."""
        workers = max(1, min(available_cores(), 8, len(keys) // PARALLEL_READ))
        size = max(1, -(-len(keys) // workers))
        chunks = [keys[i:i + size] for i in range(0, len(keys), size)]
        parts = map_forked(_read_fields, [str(self.root)] * len(chunks), chunks, [fields] * len(chunks),
                           workers=workers)
        for _, moved in parts:
            self._moved(moved)
        return [row for rows, _ in parts for row in rows]

    def _artifact(self, key: str) -> tuple[dict[str, torch.Tensor | Parts], ArtifactMeta] | None:
        """The verified artifact of `key` (its rows stored apart as `Parts`, checked when read), or None where
        there is none or a row's file is missing; `DamagedFile` (after quarantining it) where it does not
        verify."""
        path = self._path("artifacts", key, ".pt")
        data = _read_file(str(path))
        if data is None:
            return None
        try:
            tensors, meta, parts = _artifact(data, key)
        except DamagedFile as exc:
            raise DamagedFile(str(self._quarantine(path, str(exc)))) from None
        rows = {name: Parts(self, key, name, p["shape"], p["checksums"]) for name, p in parts.items()}
        if not all(r.stored() for r in rows.values()):
            return None  # a row was quarantined (or deleted): not done, `bench run` rebuilds it
        self._sound.add(key)
        return {**tensors, **rows}, meta

    def has_artifact(self, key: str) -> bool:
        """Whether the store holds an artifact of `key` that verifies (a damaged one is quarantined: not done).
        Verified once per Store: an artifact is never replaced. Of its rows stored apart, only that each has its
        file: they are verified when read."""
        if key in self._sound:
            return True
        try:
            return self._artifact(key) is not None
        except DamagedFile:
            return False

    def save_artifact(self, tensors: dict[str, torch.Tensor | Sequence[torch.Tensor]], meta: ArtifactMeta,
                      parts: Collection[str] = ()) -> None:
        """Artifacts are written once: an existing one that verifies is never replaced.

        `meta` is stored as JSON text, so it is plain data and loads with `weights_only=True`; the checksum covers
        that text and the tensors' bytes. The tensors named in `parts` are stored one file per row, each with
        its checksum in the main file (read back as `Parts`); the rows are written first and the main file
        last, each atomically, so a reader sees the whole artifact or none.
        """
        import torch

        key = meta.key
        if not self.has_artifact(key):
            text = meta.to_json()
            whole = {name: t for name, t in tensors.items() if name not in parts}
            stored = {name: self._save_rows(key, name, tensors[name]) for name in parts}
            payload = {"tensors": whole, "meta": text, **({"parts": stored} if stored else {}),
                       "checksum": _digest(whole, text, stored)}
            atomic_write(self._path("artifacts", key, ".pt"), lambda f: torch.save(payload, f))
            self._sound.add(key)

    def _part_path(self, key: str, name: str, row: int) -> Path:
        return self._path("artifacts", key, PARTS) / f"{name}.{row}.pt"

    def _save_rows(self, key: str, name: str, rows: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, Any]:
        """Write each row of `rows` (a tensor, or a list of tensors of different shapes) to its own file; its
        shape ([length] for a list) and the rows' checksums, for the main file."""
        import torch

        checksums = []
        for i in range(len(rows)):
            row = rows[i].clone()  # torch.save of a view would write the whole tensor's storage
            checksums.append(_digest({name: row}, _part_id(key, name, i)))
            atomic_write(self._part_path(key, name, i), lambda f: torch.save(row, f))
        return {"shape": list(rows.shape) if isinstance(rows, torch.Tensor) else [len(rows)], "checksums": checksums}

    def load_artifact(self, key: str) -> tuple[dict[str, torch.Tensor | Parts], ArtifactMeta]:
        """The artifact's tensors (`Parts` for those stored one file per row) and metadata, verified;
        `DamagedFile` (naming the file, now quarantined) where it does not verify."""
        loaded = self._artifact(key)
        if loaded is None:
            raise FileNotFoundError(f"no artifact {self._path('artifacts', key, '.pt')} (or a row of it stored "
                                    f"apart is missing): the task that makes it has not run, or must run again; "
                                    f"`bench run` runs it.")
        return loaded

    def claim(self, key: str) -> Claim | Holder:
        """Claim the task `key` for this process (a `Claim`, to release when the task ends), or the `Holder` of
        a live claim on it. A dead holder's claim is taken over, with a warning."""
        path = self._path(CLAIMS, key, ".claim")
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            token = uuid.uuid4().hex
            text = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": token,
                               "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}).encode()
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _holder(path)
                if holder is None:
                    continue  # released meanwhile
                if holder.alive(time.time()):
                    return holder
                self._break(path, holder)
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(text)
            return Claim(path, token)

    def _break(self, path: Path, dead: Holder) -> None:
        """Remove the claim of a dead holder. Two runs may find it dead at once: each moves the file aside under
        its own name, so only one succeeds, and a claim moved aside that is not the dead one (a third run claimed
        meanwhile) is put back."""
        aside = path.with_name(f"{path.name}.{uuid.uuid4().hex}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return
        moved = _holder(aside)
        if moved is not None and moved.token != dead.token:
            with contextlib.suppress(OSError):
                os.link(aside, path)  # fails where yet another run claimed meanwhile: that claim stands
        else:
            left = [tmp for folder in self._folders_of(path.stem) for tmp in left_by(folder, dead.host, dead.pid)]
            for tmp in left:
                tmp.unlink(missing_ok=True)
            log.warning("warning: taking over task %s from a holder that is gone (%s)%s", path.stem, dead,
                        f"; removed the {len(left)} temp file(s) it was killed writing" if left else "")
        aside.unlink(missing_ok=True)

    def _folders_of(self, key: str) -> list[Path]:
        """Where the task `key` writes: its record, its artifact (and the rows stored apart), its checkpoint."""
        return [self._folder("records", key), self._folder("artifacts", key),
                self._path("artifacts", key, PARTS), self._folder("checkpoints", key)]

    def holder(self, key: str) -> Holder | None:
        """The live holder of a claim on `key`, if any: `bench status` shows its task as running."""
        holder = _holder(self._path(CLAIMS, key, ".claim"))
        return holder if holder is not None and holder.alive(time.time()) else None

    def add_version(self, lineage: str, source: str, key: str) -> None:
        """Note that the code version `source` of a plugin made the artifact `key` of the distillation `lineage`
        (`DistillTask.lineage`), so that after an edit of the plugin `older_versions` can name it."""
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        text = json.dumps({"source": source, "key": key, "created": when}).encode()
        atomic_write(self._path("versions", lineage, f".{source}.json"), lambda f: f.write(text))

    def older_versions(self, lineage: str, source: str) -> list[dict[str, str]]:
        """What other versions of a plugin's code made for the distillation `lineage`: {source, key, created}
        each, oldest first (an unreadable note is skipped: it only informs)."""
        found = []
        for path in self._path("versions", lineage, "").parent.glob(f"{lineage}.*.json"):
            with contextlib.suppress(OSError, ValueError):
                note = json.loads(path.read_bytes())
                if isinstance(note, dict) and note.get("source") != source:
                    found.append(note)
        return sorted(found, key=lambda n: str(n.get("created")))

    def save_suite(self, name: str, text: str) -> Path:
        """Keep the suite `name` as its last `bench run` resolved it (its file with the command line's overrides
        applied) at suites/<name>.yaml, beside the records it makes: `bench run` of that file runs it again."""
        path = self.root / "suites" / f"{name}.yaml"
        atomic_write(path, lambda f: f.write(text.encode()))
        return path

    def checkpoint_path(self, key: str) -> Path:
        """Where a distillation task keeps its resumable state until its artifact is saved. A checkpoint there
        that does not load is quarantined first, with a warning, so the task starts from scratch instead of
        failing on every rerun."""
        path = self._path("checkpoints", key, ".pt")
        data = _read_file(str(path))
        if data is not None:
            try:
                if not isinstance(_torch_load(data), dict):
                    raise DamagedFile("it is not a checkpoint (a dict of the loop's state)")
            except DamagedFile as exc:
                self._quarantine(path, str(exc), RESTARTED)
        return path

    def verify(self, keys: Iterable[str] | None = None) -> int:
        """Verify the records, artifacts (each row stored apart too, one at a time) and checkpoints of `keys`
        (default: every one in the store), quarantining each that fails (`self.quarantined` lists them); the
        number of files checked."""
        keys = None if keys is None else list(keys)
        found = {kind: self._keys(kind, suffix, keys)
                 for kind, suffix in (("records", ".json"), ("artifacts", ".pt"), ("checkpoints", ".pt"))}
        self.read_fields(found["records"], ("key",))
        rows = 0
        for key in found["artifacts"]:
            self._sound.discard(key)
            with contextlib.suppress(DamagedFile):
                tensors, _ = self._artifact(key) or ({}, None)
                for parts in (t for t in tensors.values() if isinstance(t, Parts)):
                    parts.verify()
                    rows += len(parts)
        for key in found["checkpoints"]:
            self.checkpoint_path(key)
        return sum(map(len, found.values())) + rows

    def _keys(self, kind: str, suffix: str, keys: list[str] | None) -> list[str]:
        """The keys of `keys` (default: all) that have a file of `kind`."""
        if keys is None:
            return sorted(p.stem for p in (self.root / kind).glob(f"*/*{suffix}"))
        return [k for k in dict.fromkeys(keys) if self._path(kind, k, suffix).exists()]
