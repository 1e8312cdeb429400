"""Method registry: built-in methods, plugins by dotted path, and `bench.methods` entry points.

Built-in methods are registered by their specs (`bench.methods.specs`, no torch); a plugin by its
one class, which holds its maths too.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
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
    """Import `package.module:Class`, check it is a complete Method, register it, return it.

    Whatever importing the plugin raises (its own exception, a SyntaxError, even `sys.exit`) becomes a
    PluginError naming the plugin's file: a broken plugin is a configuration error, not a crash of bench."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr or module_name.startswith("."):
        raise PluginError(f"'{path}' is not a plugin path: write `module.path:ClassName` (an absolute module path).")
    try:
        module = importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        if isinstance(exc, ModuleNotFoundError) and f"{module_name}.".startswith(f"{exc.name}."):
            raise PluginError(f"cannot load method plugin '{path}': {exc}. Install the package that holds it "
                              f"(`pip install -e DIR`) or put it on PYTHONPATH (also in SLURM jobs).") from None
        raise PluginError(f"cannot load method plugin '{path}': importing {_source(module_name)} raised "
                          f"{type(exc).__name__}: {exc}. Fix the plugin (`python -c 'import {module_name}'` shows "
                          f"the traceback).") from None
    from bench.methods.base import Method  # a plugin brings torch with it anyway
    from bench.methods.specs import Params
    where = f"'{path}' ({_source(module_name)})"
    if not hasattr(module, attr):
        raise PluginError(f"{where}: the module has no `{attr}`. Check the class name after the colon.")
    obj = getattr(module, attr)
    if not (isinstance(obj, type) and issubclass(obj, Method)):
        raise PluginError(f"{where} is not a subclass of bench.methods.Method.")
    if not isinstance(getattr(obj, "name", None), str) or not obj.name:
        raise PluginError(f"{where} has no `name`: give the class a `name = \"my-method\"`, the name suites use.")
    if not (isinstance(obj.Params, type) and issubclass(obj.Params, Params)):
        raise PluginError(f"{where}: its `Params` must be a subclass of bench.methods.Params.")
    if inspect.isabstract(obj):
        raise PluginError(f"{where} does not implement {', '.join(sorted(obj.__abstractmethods__))}: a Method "
                          f"implements `distill`, an IterativeMethod `init`, `step` and `finish`.")
    return register(obj, origin or f"plugin {path}")


def _source(module_name: str) -> str:
    """The file a module is (or would be) imported from, to name it in messages."""
    try:
        spec = importlib.util.find_spec(module_name)
    except Exception:  # its parent package is itself broken
        spec = None
    return spec.origin if spec is not None and spec.origin else f"module {module_name}"


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
