"""Names a suite may write that are checked without importing what they name, and 'did you mean' for every
registry (methods, data sets, architectures, presets, views)."""

from __future__ import annotations

import difflib
import re
from typing import Iterable

# The views a suite may name under `report: {views: [...]}`, in the order a report shows them. The report's
# registry, bench.report.views.VIEWS, has exactly these keys (tests/test_report_views.py checks), so config
# validates view names without importing the report.
VIEW_NAMES = ("paper_table", "cross_arch", "curve", "ablation", "reported", "fairness", "cost")
# The figures' typefaces a suite may name under `report: {font: ...}`: bench.report.plots.FONTS has these keys.
FONT_NAMES = ("cm", "times", "sans")
# DD-Ranking's scores a suite may add to the paper table under `report: {fairness: {columns: [...]}}`:
# bench.report.fairness.COLUMNS has these keys.
FAIRNESS_COLUMNS = ("ior", "hlr", "lrs", "ars")

# A suite's name names folders (reports/<name>/, <store>/slurm/<name>/) and SLURM jobs: portable file-name
# characters only, so it cannot climb out of them (`..`, `/`), hide (a leading `.`) or read as an option (`-`).
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")


def is_safe_name(name: str) -> bool:
    """Whether `name` can be used as one file or folder name on any system bench runs on."""
    return _SAFE_NAME.fullmatch(name) is not None and ".." not in name


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest known names (case-insensitive), or ''."""
    lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(lower[c]) for c in close)}?" if close else ""


def shorten(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters, so that a pasted blob in a file keeps an error message short."""
    return text if len(text) <= limit else f"{text[:limit - 3]}..."
