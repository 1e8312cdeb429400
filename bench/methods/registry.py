"""Method registry: name -> Method class, with "did you mean" for typos."""

from __future__ import annotations

from bench.methods.base import Method
from bench.names import did_you_mean

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
    raise UnknownMethod(f"unknown method '{name}'.{did_you_mean(name, METHODS)} "
                        f"Known methods: {', '.join(sorted(METHODS))}.")
