"""Names a suite may write that are checked without importing what they name, and 'did you mean' for every
registry (methods, data sets, architectures, presets, views)."""

from __future__ import annotations

import difflib
from typing import Iterable

# The views a suite may name under `report: {views: [...]}`, in the order a report shows them. The report's
# registry, bench.report.views.VIEWS, has exactly these keys (tests/test_report_views.py checks), so config
# validates view names without importing the report.
VIEW_NAMES = ("paper_table", "cross_arch", "curve", "ablation", "reported", "cost")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest known names (case-insensitive), or ''."""
    lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(lower[c]) for c in close)}?" if close else ""
