"""Fuzz corpus plugin: see tests/fuzz/generate.py."""

raise RuntimeError("this plugin is broken on purpose")
