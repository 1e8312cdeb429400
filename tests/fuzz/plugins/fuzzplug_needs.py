"""Fuzz corpus plugin: see tests/fuzz/generate.py."""

import no_such_dependency_for_fuzz  # noqa: F401
