"""Distillation methods: their specs (what a suite can name; `specs`, no torch) and their maths.

`Method`, `IterativeMethod`, `LoopState`, `DistillContext` and `SyntheticSet`, what a plugin is
written with, load torch and are imported from their modules on first use.
"""

from typing import Any

from bench.methods.registry import METHODS, UnknownMethod, get_method, register
from bench.methods.specs import MethodSpec, Params

__all__ = ["DistillContext", "IterativeMethod", "LoopState", "METHODS", "Method", "MethodSpec", "Params",
           "SyntheticSet", "UnknownMethod", "get_method", "register"]

_MATHS = {"DistillContext": "base", "Method": "base", "SyntheticSet": "base", "IterativeMethod": "loop",
          "LoopState": "loop"}


def __getattr__(name: str) -> Any:
    if name in _MATHS:
        import importlib
        return getattr(importlib.import_module(f"bench.methods.{_MATHS[name]}"), name)
    raise AttributeError(f"module 'bench.methods' has no attribute {name!r}")
