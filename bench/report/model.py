"""The plain report model every format renders: tables of display cells, figures, sections.

Views compute it once from the aggregated DataFrame (text, numeric sort key, bold flag), so HTML, LaTeX,
Markdown and the terminal cannot disagree about a number or about which cell is best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

MISSING = "–"


@dataclass(frozen=True)
class Cell:
    text: str  # plain text; each renderer escapes it and maps "±" / "–" to its own notation
    value: float | None = None  # numeric sort key (the mean, not the string)
    bold: bool = False  # significantly the best of its column (bench.report.significance.column_verdict)
    span: int = 1  # columns this cell covers (a whole-dataset value spans its data set's IPC columns)
    note: str = ""  # longer explanation: an HTML tooltip
    flag: bool = False  # draws attention: a reproduction outside the tolerance

    @property
    def sort_key(self) -> str:
        return "" if self.value is None or math.isnan(self.value) else repr(round(self.value, 6))


@dataclass(frozen=True)
class Row:
    labels: tuple[str, ...]  # one per label column (Method[, Venue])
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Group:
    title: str  # "" for an untitled block
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Table:
    key: str  # unique within a report; used for ids and file names
    title: str
    label_columns: tuple[str, ...]
    columns: tuple[str, ...]
    groups: tuple[Group, ...]
    spans: tuple[tuple[str, int], ...] = ()  # a header row above `columns` (e.g. data sets over IPCs)
    head: tuple[Row, ...] = ()  # rows under the header that are not data (Ratio (%))
    foot: tuple[Row, ...] = ()  # rows after the data that are not ranked (Whole Dataset)
    notes: tuple[str, ...] = ()

    def flat_columns(self) -> list[str]:
        """Column titles with their span title prefixed, for formats with a single header row."""
        if not self.spans:
            return list(self.columns)
        names = [title for title, n in self.spans for _ in range(n)]
        return [f"{top} {col}".strip() for top, col in zip(names, self.columns)]


class Plot(Protocol):
    """What a figure shows, as plain data (`bench.report.plots`): equal plots draw the same bytes, so
    `write_report` reuses a figure whose plot has not changed instead of drawing it again."""

    def draw(self) -> tuple[str, bytes]:
        """Inline-able SVG text (no XML prolog) and PDF bytes."""


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    plot: Plot
    caption: str = ""


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    intro: str = ""
    tables: tuple[Table, ...] = ()
    figures: tuple[Figure, ...] = ()


@dataclass(frozen=True)
class Report:
    name: str
    description: str
    sections: tuple[Section, ...]
    notes: tuple[str, ...]
    citations: tuple[str, ...] = field(default=())  # BibTeX of the papers compared with
    complete: int = 0  # cells with every planned run
    total: int = 0
