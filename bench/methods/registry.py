"""Method registry: name -> Method class, with "did you mean" for typos."""

from __future__ import annotations

import difflib

from bench.methods.base import Method

METHODS: dict[str, type[Method]] = {}


class UnknownMethod(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def register(cls: type[Method]) -> type[Method]:
    """Class decorator that makes a method available to suites by its `name`."""
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise ValueError(f"method name '{cls.name}' is registered twice ({METHODS[cls.name]} and {cls})")
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    if name in METHODS:
        return METHODS[name]
    close = difflib.get_close_matches(name.lower(), list(METHODS), n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownMethod(f"unknown method '{name}'.{hint} Known methods: {', '.join(sorted(METHODS))}.")
