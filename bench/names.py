"""'Did you mean' for every registry (methods, data sets, architectures, presets)."""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest known names (case-insensitive), or ''."""
    lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(lower[c]) for c in close)}?" if close else ""
