"""What the store keeps, as types: `Record`, one per evaluation run (and per whole-dataset run), and
`ArtifactMeta`, the JSON beside an artifact's tensors.

Each is defined once, here: the executor builds it, the store writes and reads it, the report reads its
fields, tests build it. Each carries a `schema_version`. A file written before versions existed is version 1;
a field added since has a default, so every file ever written still reads, and a file from a newer bench
is refused with a message instead of being half understood.

A file is checked when read. A record file (version 3 on) ends with a `checksum` member: the SHA-256 of the
file's text before that member was appended. It is checked on the file's bytes, with no second JSON
serialisation, so verifying 100,000 records costs a hash each; the text it covers was checked field by field
before it was written. A file without one (an older bench's) is checked field by field when read: schema
version, known fields, required fields and their JSON types. A file that fails is `DamagedFile`.
"""

from __future__ import annotations

import hashlib
import json
import types
from dataclasses import MISSING, asdict, dataclass, fields
from functools import cache
from typing import Any, Callable, Union, get_args, get_origin, get_type_hints

SCHEMA_VERSION = 6
UNVERSIONED = 1  # the version of a file written before files had one
CHECKSUMMED = 3  # the first version whose record files carry a checksum and artifacts a payload checksum


class RecordError(ValueError):
    """A stored file this bench cannot read: written by a newer bench, or damaged (`DamagedFile`)."""


class DamagedFile(RecordError):
    """A stored file that is not what bench wrote: not JSON, truncated, of the wrong shape or types, or with a
    checksum that does not match. The store quarantines it, so its task counts as not done."""


@dataclass(frozen=True)
class Record:
    """One evaluation run (`kind` "evaluate": a network trained on a synthetic set), or one whole-dataset run
    (`kind` "whole": the same recipe on the full training set, for the Whole Dataset row).

    The fields without a default are in every record ever written; the method, artifact and distillation
    fields are None in a whole-dataset record.
    """

    key: str
    suite: str
    dataset: str
    eval_arch: str
    eval_seed: int
    recipe: dict[str, Any]
    recipe_hash: str
    accuracy: float | None  # final-epoch test accuracy (%); None where the run diverged
    wall_time_s: float
    created: str
    device: str
    versions: dict[str, str]
    git_commit: str | None
    job_id: str | None
    host: str
    kind: str = "evaluate"  # "evaluate" | "whole" (version 2)
    group: str | None = None  # the method's group: coreset | distillation | plugin | whole (version 2)
    method: str | None = None
    method_label: str | None = None
    method_version: int | None = None
    params: dict[str, Any] | None = None
    params_hash: str | None = None
    ipc: int | None = None
    zca: bool = False
    distill_arch: str | None = None
    distill_seed: int | None = None
    distill_key: str | None = None
    distill_time_s: float | None = None
    expert_time_s: float = 0.0  # seconds of the shared expert stages the synthetic set needed
    artifact_format: str | None = None
    artifact_bytes: int | None = None  # bytes stored for the synthetic set
    budget_bytes: int | None = None  # bytes of IPC plain images per class (NSD's Eq. 3)
    over_budget: bool = False
    train_bytes: int | None = None  # bytes of the full training set as the same tensors
    lr_used: float | None = None  # the recipe's lr, or the learned one stored with the set
    diverged: str | None = None  # why the run has no accuracy: its training loss became NaN or Inf (version 4)
    threads: int | None = None  # torch's threads in the process that computed it (version 5)
    # an imported set's files: {"param", "template" (as written), "path" (filled in), "sha256"[, "files"]} each
    imported: list[dict[str, Any]] | None = None  # (version 5)
    # the seeds of its cell trained together with it, its own included (`bench.batched`); None: trained alone
    trained_with: list[int] | None = None  # (version 6)
    schema_version: int = SCHEMA_VERSION  # of the file it was read from

    def to_json(self) -> str:
        """The record file's text, with its checksum; refuses a record that would not read back."""
        text = json.dumps(asdict(self), sort_keys=True, indent=1)
        _checked(Record, json.loads(text), full=True)
        return _seal(text)

    @classmethod
    def from_json(cls, text: str | bytes) -> Record:
        return cls(**load_record(text))


@cache
def _names(cls: type) -> frozenset[str]:
    """The field names of a stored type (cached: every file read is checked against them)."""
    return frozenset(f.name for f in fields(cls))


@cache
def _required(cls: type) -> frozenset[str]:
    """The fields every file of a stored type has held since version 1."""
    return frozenset(f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING)


@cache
def _json_types(cls: type) -> dict[str, tuple[type, ...]]:
    """Per field of a stored type, the types its parsed JSON value may have (a float field may hold an int)."""
    allowed = {}
    for name, hint in get_type_hints(cls).items():
        options = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
        kinds = {get_origin(o) or o for o in options}
        allowed[name] = tuple(kinds | ({int} if float in kinds else set()))
    return allowed


FIELDS = _names(Record)
# What a record file without a field holds: the field's default (a file without a version is version 1).
_ABSENT = {f.name: f.default for f in fields(Record) if f.default is not MISSING} | {"schema_version": UNVERSIONED}

# A record's JSON text ends with `_CLOSE`; in its file, the checksum member replaces that ending:
# _SEAL + 64 hex digits + _SEAL_END.
_CLOSE = b"\n}"
_SEAL, _SEAL_END = b',\n "checksum": "', b'"\n}'
_SEALED_TAIL = len(_SEAL) + 64 + len(_SEAL_END)


def _describe(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _checked(cls: type, raw: Any, full: bool) -> dict[str, Any]:
    """`raw` (a parsed file of `cls`) with its version set. Refuses a newer version (`RecordError`); with `full`,
    also unknown or missing fields and values of the wrong JSON type (`DamagedFile`)."""
    if not isinstance(raw, dict):
        raise DamagedFile(f"it holds {_describe(raw)}, not a JSON object of {cls.__name__} fields")
    version = raw.setdefault("schema_version", UNVERSIONED)
    if type(version) is not int:
        raise DamagedFile(f"its schema_version is {_describe(version)}, not an integer")
    if version > SCHEMA_VERSION:
        raise RecordError(f"{cls.__name__} '{raw.get('key')}' has schema version {version}; this bench reads up "
                          f"to {SCHEMA_VERSION}. Update bench to read this store.")
    if not full:
        return raw
    unknown = raw.keys() - _names(cls)
    if unknown:
        raise DamagedFile(f"it has fields that no schema version of {cls.__name__} has: {', '.join(sorted(unknown))}")
    missing = _required(cls) - raw.keys()
    if missing:
        raise DamagedFile(f"it lacks the {cls.__name__} field(s) {', '.join(sorted(missing))}")
    allowed = _json_types(cls)
    for name, value in raw.items():
        if type(value) not in allowed[name]:
            raise DamagedFile(f"its field '{name}' is {_describe(value)} ({json.dumps(value)[:40]}), which a "
                              f"{cls.__name__} never holds there")
    return raw


def parse_json(data: str | bytes) -> Any:
    """A stored file's JSON, or `DamagedFile` saying why it is not JSON (empty, cut short, not UTF-8)."""
    if not data:
        raise DamagedFile("it is empty (zero bytes)")
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise DamagedFile(f"it is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise DamagedFile(f"it is not valid JSON, or it was cut short ({exc})") from None


def _seal(text: str) -> str:
    """A record's JSON text (sorted keys, indent 1) with its checksum appended as the last member."""
    data = text.encode()
    return (data[:-len(_CLOSE)] + _SEAL + hashlib.sha256(data).hexdigest().encode() + _SEAL_END).decode()


def _sealed(data: bytes) -> bool:
    """Whether a record file ends with a checksum member; `DamagedFile` where it does and it does not match."""
    if not (data.endswith(_SEAL_END) and data.startswith(_SEAL, len(data) - _SEALED_TAIL)):
        return False
    digest = hashlib.sha256(data[:-_SEALED_TAIL])
    digest.update(_CLOSE)
    if digest.hexdigest() != data[-64 - len(_SEAL_END):-len(_SEAL_END)].decode("ascii", "replace"):
        raise DamagedFile("its checksum does not match its content (the file was changed after it was written)")
    return True


def load_record(data: str | bytes, key: str | None = None) -> dict[str, Any]:
    """The fields of a record file (of `key`, where given), verified: its checksum where it has one (the text it
    covers was checked field by field when written), else schema version, known and required fields and their
    JSON types."""
    data = data.encode() if isinstance(data, str) else data
    sealed = _sealed(data)
    raw = _checked(Record, parse_json(data), full=not sealed)
    if sealed:
        del raw["checksum"]
    elif raw["schema_version"] >= CHECKSUMMED:
        raise DamagedFile(f"it has schema version {raw['schema_version']} but no checksum at its end (a record "
                          f"file of version {CHECKSUMMED} or later always ends with one)")
    if key is not None and raw["key"] != key:
        raise DamagedFile(_foreign(key))
    return raw


def check_record(data: bytes, key: str) -> bool:
    """True, or `DamagedFile` where `load_record(data, key)` would raise it (bar a newer schema version), without
    parsing a checksummed file: the checksum shows the text is what was checked and written, and in that text
    (sorted keys, one space of indent) the key is on a line of its own."""
    if not _sealed(data):
        load_record(data, key)
    elif b'\n "key": %s,\n' % json.dumps(key).encode() not in data:
        raise DamagedFile(_foreign(key))
    return True


def _foreign(key: str) -> str:
    return f"it holds the record of another key than '{key}', the key in its file name"


def field_reader(names: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple]:
    """A function from one verified record file (`load_record`) to the values of `names` (a field the record
    predates gets its default), for reading 100,000 records without building a `Record` for each."""
    unknown = set(names) - FIELDS
    if unknown:
        raise RecordError(f"a record has no field {', '.join(sorted(unknown))}. Fields: {', '.join(sorted(FIELDS))}.")
    defaults = tuple(_ABSENT.get(n) for n in names)

    def read(raw: dict[str, Any]) -> tuple:
        return tuple(raw.get(n, d) for n, d in zip(names, defaults))
    return read


# Keys of a version-1 artifact's flat JSON that are not its task identity.
_PROVENANCE = ("device", "versions", "git_commit", "job_id", "host")
_SYNSET = ("format", "bytes", "image_bytes", "budget_bytes", "over_budget", "expert_time_s")


@dataclass(frozen=True)
class ArtifactMeta:
    """The JSON stored beside an artifact's tensors: the identity its key hashes, the seconds it took, where
    it was computed, and, for a synthetic set, what it stores."""

    key: str
    identity: dict[str, Any]
    time_s: float
    provenance: dict[str, Any]
    format: str | None = None  # synthetic sets: the SYNSET_FORMATS name that decodes the tensors
    bytes: int | None = None  # synthetic sets: bytes stored
    image_bytes: int | None = None  # the part of `bytes` that stands for images
    budget_bytes: int | None = None  # bytes of IPC plain images per class
    over_budget: bool = False
    expert_time_s: float = 0.0  # seconds of the expert stages the synthetic set needed
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        _checked(ArtifactMeta, json.loads(text), full=True)
        return text

    @classmethod
    def from_json(cls, text: str | bytes) -> ArtifactMeta:
        """The metadata, checked field by field (an artifact's checksum is the store's: it covers the tensors)."""
        raw = parse_json(text)
        if isinstance(raw, dict) and "schema_version" not in raw:  # version 1: identity, time, provenance, flat
            time_s = raw.pop("distill_time_s") if "distill_time_s" in raw else raw.pop("time_s", None)
            raw = {"key": raw.pop("key", None), "time_s": time_s, "schema_version": UNVERSIONED,
                   "provenance": {k: raw.pop(k) for k in _PROVENANCE if k in raw},
                   **{k: raw.pop(k) for k in _SYNSET if k in raw}, "identity": raw}
        return cls(**_checked(cls, raw, full=True))
