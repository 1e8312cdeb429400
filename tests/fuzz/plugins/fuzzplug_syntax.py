"""Fuzz corpus plugin: see tests/fuzz/generate.py."""

def broken(:
    pass
