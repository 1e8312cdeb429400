"""Fuzz corpus plugin: see tests/fuzz/generate.py."""

import sys

sys.exit(3)
