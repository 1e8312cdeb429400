"""Markdown (GitHub): pipe tables, figures linked as SVG files next to table.md, notes."""

from __future__ import annotations

from bench.report.model import Cell, Report, Row, Table


# Text that GitHub would read as table syntax, a line break or raw HTML (an entity included), spelled literally.
_MD = str.maketrans({"\\": "\\\\", "|": "\\|", "<": "&lt;", ">": "&gt;", "&": "&amp;", "\n": " ", "\r": " "})


def _md(text: str) -> str:
    return text.translate(_MD)


def _cell(c: Cell) -> list[str]:
    """A cell's text, repeated under every column it spans: a pipe table cannot span, and a value under the first
    column alone reads as belonging to that column only."""
    text = _md(c.text)
    text = f"**{text}**" if c.bold or c.flag else text
    return [text] * c.span


def _line(values: list[str]) -> str:
    return "| " + " | ".join(values) + " |"


def _row(row: Row) -> str:
    return _line([_md(l) for l in row.labels] + [v for c in row.cells for v in _cell(c)])


def render_table(t: Table) -> str:
    """One pipe table; span titles are folded into the column titles, groups become italic separator rows."""
    n = len(t.label_columns) + len(t.columns)
    lines = [f"**{_md(t.title)}**", "", _line([_md(c) for c in (*t.label_columns, *t.flat_columns())]),
             _line(["---"] * len(t.label_columns) + ["---:"] * len(t.columns))]
    lines += [_row(r) for r in t.head]
    for g in t.groups:
        if g.title:
            lines.append(_line([f"*{_md(g.title)}*"] + [""] * (n - 1)))
        lines += [_row(r) for r in g.rows]
    lines += [_row(r) for r in t.foot]
    lines += [""] + [f"{_md(note)}" for note in t.notes]
    return "\n".join(lines).rstrip() + "\n"


def render_markdown(report: Report, figure_paths: dict[str, str]) -> str:
    """`figure_paths`: figure key -> SVG file name relative to the Markdown file."""
    lines = [f"# {report.name}", ""]
    if report.description:
        lines += [_md(report.description), ""]
    lines += [f"{report.complete} of {report.total} cells complete.", ""]
    for s in report.sections:
        lines += [f"## {s.title}", ""]
        if s.intro:
            lines += [s.intro, ""]
        for t in s.tables:
            lines += [render_table(t)]
        for f in s.figures:
            lines += [f"![{_md(f.title)}]({figure_paths[f.key]})", "", f"*{_md(f.caption)}*", ""]
    lines += ["## Notes", ""] + [f"- {_md(n)}" for n in report.notes]  # they name the methods
    if report.citations:
        lines += ["", "## References", "", "```bibtex", *"\n\n".join(report.citations).splitlines(), "```"]
    return "\n".join(lines) + "\n"
