"""Method registry: built-in methods, plugins by dotted path, and `bench.methods` entry points.

Built-in methods are registered by their specs (`bench.methods.specs`, no torch); a plugin by its
one class, which holds its maths too.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from pathlib import Path
from functools import cache
from importlib.metadata import entry_points

from bench.methods.specs import BUILTIN, MethodSpec
from bench.names import did_you_mean

METHODS: dict[str, type[MethodSpec]] = {}
ORIGIN: dict[str, str] = {}  # method name -> "built-in" or where the plugin came from


class UnknownMethod(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class PluginError(ImportError):
    """A plugin that cannot be imported or is not a Method; the message says what to fix."""


def register(cls: type[MethodSpec], origin: str = "built-in") -> type[MethodSpec]:
    """Class decorator that makes a method available to suites by its `name`."""
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise PluginError(f"method name '{cls.name}' is registered twice ({ORIGIN[cls.name]}: "
                          f"{METHODS[cls.name].__module__}, and {cls.__module__}). Rename one of them.")
    METHODS[cls.name] = cls
    ORIGIN[cls.name] = origin
    return cls


def load_entry(path: str, origin: str | None = None) -> type[MethodSpec]:
    """Import `package.module:Class`, check it is a Method, register it, return it."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise PluginError(f"'{path}' is not a plugin path: write `module.path:ClassName`.")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginError(f"cannot load method plugin '{path}': {exc}. Install the package that holds it "
                          f"(`pip install -e DIR`) or put it on PYTHONPATH (also in SLURM jobs).") from None
    from bench.methods.base import Method  # a plugin brings torch with it anyway
    if not (isinstance(obj, type) and issubclass(obj, Method)):
        raise PluginError(f"'{path}' is not a subclass of bench.methods.Method.")
    return register(obj, origin or f"plugin {path}")


@cache
def load_entry_points() -> None:
    """Register the methods that installed packages declare under the `bench.methods` entry point group."""
    for ep in entry_points(group="bench.methods"):
        load_entry(ep.value, origin=f"entry point of {ep.dist.name if ep.dist else ep.name}")


def get_method(name: str) -> type[MethodSpec]:
    """The spec of the method called `name`: a built-in one, else an installed plugin's."""
    if name in METHODS:
        return METHODS[name]
    load_entry_points()
    if name in METHODS:
        return METHODS[name]
    raise UnknownMethod(f"unknown method '{name}'.{did_you_mean(name, METHODS)} "
                        f"Known methods: {', '.join(sorted(METHODS))}.")


@cache
def source_hash(cls: type[MethodSpec]) -> str | None:
    """A hash of a plugin's code: its package's .py files (every module of it), or its one module file.
    None for a built-in method, whose `version` says when its artifacts change.

    Part of a plugin's task keys, so editing the plugin makes new tasks instead of silently reusing
    the results of its old code (a plugin author need not remember to bump `version`)."""
    if cls.__module__.split(".")[0] == "bench":
        return None
    top = sys.modules[cls.__module__.split(".")[0]]
    if hasattr(top, "__path__"):  # a package: every module of it may hold the method's code
        files = sorted(f for folder in top.__path__ for f in Path(folder).rglob("*.py"))
    else:
        files = [Path(inspect.getfile(cls))]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:20]


def load_builtin_maths() -> None:
    """Import every built-in method's maths, which registers the synthetic-set formats and expert
    builders they define: what a process that runs tasks needs before it reads any artifact."""
    for spec in BUILTIN:
        spec.implementation()


for _spec in BUILTIN:
    register(_spec)
