"""Fuzz corpus plugin: see tests/fuzz/generate.py."""

from bench.methods import IterativeMethod, Method, Params


class NoName(Method):
    description = "no name"

    def distill(self, ctx):
        raise NotImplementedError


class NumberName(NoName):
    name = 5


class NoDistill(Method):
    name = "fuzz-no-distill"
    description = "no distill"


class NoStep(IterativeMethod):
    name = "fuzz-no-step"
    description = "init and finish only"

    def init(self, ctx):
        raise NotImplementedError

    def finish(self, state):
        raise NotImplementedError


class NotAMethod:
    name = "fuzz-not-a-method"


def a_function():
    return None


class BadParams(NoName):
    name = "fuzz-bad-params"
    Params = dict


class NamedDM(NoName):
    name = "dm"
