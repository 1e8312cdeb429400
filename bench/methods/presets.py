"""Published settings per data set and IPC, kept as data in bench/methods/presets/<name>.yaml.

File layout (every level optional; later levels override earlier ones):

    source: where the numbers come from (paper table, author-provided commands)
    default: {param: value}            # any data set, any IPC
    any: {IPC: {param: value}}         # any data set, this IPC (e.g. DC's loops by IPC)
    DATASET:
      default: {param: value}          # this data set, any IPC
      IPC: {param: value}              # this data set and IPC

A suite's own `params:` override the preset; the resolved settings are what the plan hashes and
what every record stores.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.yamlio import load_yaml

if TYPE_CHECKING:
    from bench.methods.specs import MethodSpec, Params

PRESET_DIR = Path(__file__).parent / "presets"


@cache
def load_preset(name: str) -> dict[str, Any]:
    data, _ = load_yaml(PRESET_DIR / f"{name}.yaml")
    return data


def preset_params(names: str | tuple[str, ...] | None, dataset: str, ipc: int) -> dict[str, Any]:
    """The presets' settings for (dataset, IPC): each file most specific level last, later files winning
    (a method built on another, like `iid-idm`, names its own file and then its base's)."""
    merged: dict[str, Any] = {}
    for name in (names,) if isinstance(names, str) else names or ():
        table = load_preset(name)
        per_dataset = table.get(dataset, {})
        for level in (table.get("default"), table.get("any", {}).get(ipc), per_dataset.get("default"),
                      per_dataset.get(ipc)):
            merged.update(level or {})
    return merged


def preset_files(names: str | tuple[str, ...] | None) -> str:
    """How to name a method's preset files in messages: 'presets/a.yaml + presets/b.yaml'."""
    return " + ".join(f"presets/{n}.yaml" for n in ((names,) if isinstance(names, str) else names or ()))


def resolve_params(cls: type[MethodSpec], dataset: str, ipc: int, user: dict[str, Any]) -> Params:
    """Params defaults <- preset for (dataset, IPC) <- the suite's params; raises pydantic's ValidationError."""
    return cls.Params.model_validate({**preset_params(cls.presets, dataset, ipc), **user})
