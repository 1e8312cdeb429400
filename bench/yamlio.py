"""YAML reading with YAML 1.2 scalars and a line number for every key.

PyYAML implements YAML 1.1, where `1e-3` is a string, `10:30` is the integer 630 and `no` is
False. Suites are written by people who expect the YAML 1.2 meaning, so we resolve plain scalars
with the 1.2 core schema instead: `1e-3` is a float, `10:30` and `no` stay strings (and the typed
schema then rejects them where a number or a boolean is expected). Duplicate keys are an error,
not a silent overwrite.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


class YamlError(Exception):
    """A file that is not valid YAML, or a duplicate key; the message names file and line."""


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in {
        "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:null", "tag:yaml.org,2002:timestamp"}]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_CORE_12 = [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", list("~nN") + [""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+.0123456789")),
]
for _tag, _rx, _first in _CORE_12:
    _Loader.add_implicit_resolver(_tag, re.compile(_rx), _first)


def _int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node)
    if text.startswith(("0o", "0x")):
        return int(text, 0)
    return int(text, 10)


def _float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = loader.construct_scalar(node).lower()
    if text.endswith("inf"):
        return -math.inf if text.startswith("-") else math.inf
    if text.endswith("nan"):
        return math.nan
    return float(text)


_Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Loader.add_constructor("tag:yaml.org,2002:float", _float)


def load_yaml(path: Path) -> tuple[Any, dict[Path_, int]]:
    """Parse `path`; return the data and a map from each key path to its 1-based line."""
    text = path.read_text(encoding="utf-8")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise YamlError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)}).") from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    if node is None:
        return {}, lines
    return _build(node, (), lines, path, loader), lines


def _build(node: yaml.Node, at: Path_, lines: dict[Path_, int], path: Path, loader: _Loader) -> Any:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise YamlError(
                    f"{path}, line {key_node.start_mark.line + 1}: key '{key}' appears twice in the same "
                    f"mapping (first at line {lines[at + (key,)]}). Keep one of them.")
            lines[at + (key,)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, at + (key,), lines, path, loader)
            lines[at + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, at + (i,), lines, path, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def line_of(lines: dict[Path_, int], at: Path_) -> int | None:
    """The line of the longest prefix of `at` that was in the file."""
    for n in range(len(at), -1, -1):
        if at[:n] in lines:
            return lines[at[:n]]
    return None
