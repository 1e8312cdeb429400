"""YAML reading with YAML 1.2 scalars, a line number for every key, and only what a settings file needs.

PyYAML implements YAML 1.1, where `1e-3` is a string, `10:30` is the integer 630 and `no` is
False. Suites are written by people who expect the YAML 1.2 meaning, so we resolve plain scalars
with the 1.2 core schema instead: `1e-3` is a float, `10:30` and `no` stay strings (and the typed
schema then rejects them where a number or a boolean is expected). Duplicate keys are an error,
not a silent overwrite.

Suites and site files are short, hand-written mappings of plain values, so the YAML features they
never need are refused with a message saying what to write instead, rather than half-supported:

* aliases (`*name`): an alias makes one value appear at several keys, which a key-to-line map cannot
  point at, and expanding aliases of aliases is how a 1 KB file becomes gigabytes ("billion laughs");
  refusing every alias removes that class of file, recursive aliases included. Write the value out.
* tags (`!!python/object`, `!foo`, even `!!str`): a value is what it looks like; quote it to make a string.
* merge keys (`<<:`) and complex keys (a list or mapping as a key): they build mappings no schema here
  has, and merging hides which line a value came from.
* files over MAX_BYTES or nested deeper than MAX_DEPTH: the pure-Python parser needs about a second
  per 100 KB on a busy machine and recurses once per level, so both bound what reading a file costs
  (bench's own files are under 11 KB and 6 levels deep).
* anything but UTF-8 text: a binary file, UTF-16 or Latin-1 gets an error naming the encoding problem.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

MAX_BYTES = 256 * 1024
MAX_DEPTH = 50


class YamlError(Exception):
    """A file that is not a readable YAML mapping file; the message names the file (and line) and the fix."""


class _Refused(yaml.MarkedYAMLError):
    """A YAML feature these files do not use (see the module docstring)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars that refuses aliases, tags and deep nesting as it composes."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(problem=f"aliases (*{event.anchor}) are not supported in bench files; write the value "
                                   f"out where it is used", problem_mark=event.start_mark)
        if getattr(event, "tag", None) not in (None, "!"):
            tag = event.tag.replace("tag:yaml.org,2002:", "!!", 1)
            raise _Refused(problem=f"YAML tags ({tag}) are not supported in bench files; remove the tag (quote a "
                                   f"value to make it a string)", problem_mark=event.start_mark)
        if self.depth >= MAX_DEPTH:
            raise _Refused(problem=f"values are nested more than {MAX_DEPTH} levels deep; bench files need a "
                                   f"few levels", problem_mark=event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_Loader.yaml_implicit_resolvers = {}  # plain scalars are strings unless a YAML 1.2 core rule below matches

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
    try:
        return int(text, 0) if text.startswith(("0o", "0x")) else int(text, 10)
    except ValueError:  # Python refuses to convert integers of over 4300 digits
        raise _Refused(problem=f"the number {text[:20]}... has {len(text)} digits; no setting needs more than 20",
                       problem_mark=node.start_mark) from None


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
    text = _read_text(path)
    loader = None
    try:
        loader = _Loader(text)  # checks for control characters first
        node = loader.get_single_node()
        lines: dict[Path_, int] = {}
        return (_build(node, (), lines, loader) if node is not None else {}), lines
    except _Refused as exc:
        raise YamlError(f"{path}, line {exc.problem_mark.line + 1}: {exc.problem}.") from None
    except yaml.MarkedYAMLError as exc:
        where = f", line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise YamlError(f"{path}{where}: not valid YAML ({exc.problem or exc.context}). Check the line's indentation, "
                        f"brackets and quotes.") from None
    except yaml.reader.ReaderError as exc:
        raise YamlError(f"{path}, line {text.count(chr(10), 0, exc.position) + 1}: the control character "
                        f"#x{exc.character:04x} cannot appear in YAML. Delete it.") from None
    finally:
        if loader is not None:
            loader.dispose()


def parse_value(text: str) -> Any:
    """A value typed on the command line (`eval.epochs=50`, `'ipc=[1, 10]'`), read as the same value in a file
    would be: YAML 1.2 scalars, flow sequences and mappings, with the same refusals. YamlError says why not."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return _build(node, (), {}, loader) if node is not None else None
    except _Refused as exc:
        raise YamlError(f"{exc.problem}.") from None
    except yaml.MarkedYAMLError as exc:
        raise YamlError(f"not a YAML value ({exc.problem or exc.context}); quote the whole override for your "
                        f"shell, e.g. 'ipc=[1, 10]'.") from None
    except yaml.reader.ReaderError as exc:
        raise YamlError(f"the control character #x{exc.character:04x} cannot appear in a value.") from None
    finally:
        loader.dispose()


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes a string a YAML 1.2 reader would take for something else (`1e-3`), as well as those
    a YAML 1.1 reader would (`no`), so what `dump_yaml` writes reads back the same with `load_yaml`."""


for _tag, _rx, _first in _CORE_12:
    _Dumper.add_implicit_resolver(_tag, re.compile(_rx), _first)


def dump_yaml(data: Any) -> str:
    """`data` (plain values, as `load_yaml` returns them) as YAML text that `load_yaml` reads back equal."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def _read_text(path: Path) -> str:
    """The file's text, if it is a UTF-8 text file of at most MAX_BYTES."""
    if path.is_dir():
        raise YamlError(f"{path}: is a directory, not a YAML file. Give the path of the file itself.")
    if not path.exists():
        raise YamlError(f"{path}: no such file. Check the path (suites live in suites/*.yaml).")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise YamlError(f"{path}: cannot be read ({exc.strerror}). Fix its permissions.") from None
    if len(data) > MAX_BYTES:
        raise YamlError(f"{path}: the file is larger than {MAX_BYTES // 1024} KB, far more than a suite or site "
                        f"file needs; check that this is the file you meant.")
    head = data[:256]  # UTF-16 without a byte order mark: ASCII text has every other byte 0
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or len(head) > 1 and not (any(head[0::2]) and any(head[1::2])):
        raise YamlError(f"{path}: the file is UTF-16 text; save it as UTF-8.")
    if b"\0" in data:
        raise YamlError(f"{path}: the file is binary (it holds NUL bytes), not YAML text. Give the path of the "
                        f"YAML file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise YamlError(f"{path}, line {line}: the file is not UTF-8 (byte "
                        f"0x{data[exc.start]:02x} at offset {exc.start}; Latin-1 or Windows-1252 text looks like "
                        f"this). Save it as UTF-8.") from None


def _build(node: yaml.Node, at: Path_, lines: dict[Path_, int], loader: _Loader) -> Any:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(problem="a key is a list or a mapping; keys must be plain names",
                               problem_mark=key_node.start_mark)
            if key_node.value == "<<" and key_node.style is None:
                raise _Refused(problem="merge keys (<<) are not supported in bench files; write the keys out",
                               problem_mark=key_node.start_mark)
            key = loader.construct_object(key_node, deep=True)
            if key in out:
                raise _Refused(problem=f"key '{key}' appears twice in the same mapping (first at line "
                                       f"{lines[at + (key,)]}). Keep one of them", problem_mark=key_node.start_mark)
            lines[at + (key,)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, at + (key,), lines, loader)
            lines[at + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, at + (i,), lines, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def line_of(lines: dict[Path_, int | str], at: Path_) -> int | str | None:
    """The line of the longest prefix of `at` that was in the file (or the command-line override that set it)."""
    for n in range(len(at), -1, -1):
        if at[:n] in lines:
            return lines[at[:n]]
    return None
