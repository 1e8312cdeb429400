"""Distillation methods. Importing this package registers the built-in ones."""

from bench.methods.base import DistillContext, Method, Params, SyntheticSet
from bench.methods.loop import IterativeMethod, LoopState
from bench.methods.registry import METHODS, UnknownMethod, get_method, register
# Registration side effect: importing each module registers its methods.
from bench.methods import coresets, dm, gradmatch, idm, iid, mtt, nsd, random, udd  # noqa: F401

__all__ = ["DistillContext", "IterativeMethod", "LoopState", "METHODS", "Method", "Params", "SyntheticSet",
           "UnknownMethod", "get_method", "register"]
