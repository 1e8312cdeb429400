"""Fuzz corpus plugin: see tests/fuzz/generate.py."""

class Stop(BaseException):
    pass


raise Stop("a BaseException subclass")
