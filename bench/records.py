"""What the store keeps, as types: `Record`, one per evaluation run (and per whole-dataset run), and
`ArtifactMeta`, the JSON beside an artifact's tensors.

Each is defined once, here: the executor builds it, the store writes and reads it, the report reads its
fields, tests build it. Each carries a `schema_version`. A file written before versions existed is version 1;
a field added since has a default, so every file ever written still reads, and a file from a newer bench
is refused with a message instead of being half understood.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
from functools import cache
from typing import Any, Callable

SCHEMA_VERSION = 2
UNVERSIONED = 1  # the version of a file written before files had one


class RecordError(ValueError):
    """A stored file this bench cannot read: written by a newer bench, or with fields no version had."""


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
    accuracy: float  # final-epoch test accuracy (%)
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
    schema_version: int = SCHEMA_VERSION  # of the file it was read from

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes) -> Record:
        return cls(**_checked(cls, json.loads(text)))


@cache
def _names(cls: type) -> frozenset[str]:
    """The field names of a stored type (cached: every file read is checked against them)."""
    return frozenset(f.name for f in fields(cls))


FIELDS = _names(Record)
# What a record file without a field holds: the field's default (a file without a version is version 1).
_ABSENT = {f.name: f.default for f in fields(Record) if f.default is not MISSING} | {"schema_version": UNVERSIONED}


def _checked(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` (a parsed file of `cls`) with its version set; refuses a newer version or an unknown field."""
    version = raw.setdefault("schema_version", UNVERSIONED)
    if version > SCHEMA_VERSION:
        raise RecordError(f"{cls.__name__} '{raw.get('key')}' has schema version {version}; this bench reads up "
                          f"to {SCHEMA_VERSION}. Update bench to read this store.")
    unknown = raw.keys() - _names(cls)
    if unknown:
        raise RecordError(f"{cls.__name__} '{raw.get('key')}' has fields no schema version has: "
                          f"{', '.join(sorted(unknown))}.")
    return raw


def field_reader(names: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple]:
    """A function from one parsed record file to the values of `names` (a field the record predates gets
    its default), for reading 100,000 records without building a `Record` for each."""
    unknown = set(names) - FIELDS
    if unknown:
        raise RecordError(f"a record has no field {', '.join(sorted(unknown))}. Fields: {', '.join(sorted(FIELDS))}.")
    defaults = tuple(_ABSENT.get(n) for n in names)

    def read(raw: dict[str, Any]) -> tuple:
        if raw.get("schema_version", UNVERSIONED) > SCHEMA_VERSION:
            _checked(Record, raw)
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
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ArtifactMeta:
        raw = json.loads(text)
        if "schema_version" not in raw:  # version 1: identity, time and provenance side by side, flat
            time_s = raw.pop("distill_time_s") if "distill_time_s" in raw else raw.pop("time_s")
            raw = {"key": raw.pop("key"), "time_s": time_s, "schema_version": UNVERSIONED,
                   "provenance": {k: raw.pop(k) for k in _PROVENANCE if k in raw},
                   **{k: raw.pop(k) for k in _SYNSET if k in raw}, "identity": raw}
        return cls(**_checked(cls, raw))
