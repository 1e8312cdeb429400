"""LaTeX: booktabs table fragments, matplotlib PDF figures, and a standalone report.tex that \\input's them."""

from __future__ import annotations

import re

from bench.report.model import Cell, Report, Row, Table
from bench.report.templating import latex_env

_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "–": "--", "—": "---",
        "Δ": r"$\Delta$", "β": r"$\beta$", "’": "'", "†": r"\textdagger{}", "×": r"$\times$", "−": "-"}
WIDE = 8  # tables with more columns than this are scaled to the text width


def tex(text: str) -> str:
    """Escape LaTeX's special characters and spell the report's few non-ASCII symbols in ASCII LaTeX."""
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def slug(key: str) -> str:
    """A file and label name: letters, digits and dashes only."""
    return re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-")


def _cell(c: Cell) -> str:
    text = rf"\textbf{{{tex(c.text)}}}" if c.bold or c.flag else tex(c.text)
    return rf"\multicolumn{{{c.span}}}{{c}}{{{text}}}" if c.span > 1 else text


def _row(row: Row) -> str:
    return " & ".join([tex(l) for l in row.labels] + [_cell(c) for c in row.cells]) + r" \\"


def render_table(t: Table) -> str:
    n_labels, n_cols = len(t.label_columns), len(t.columns)
    header = []
    if t.spans:
        header.append(" & ".join([tex(l) for l in t.label_columns]
                                 + [rf"\multicolumn{{{n}}}{{c}}{{{tex(title)}}}" for title, n in t.spans]) + r" \\")
        start, rules = n_labels + 1, []
        for _, n in t.spans:
            rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
            start += n
        header.append(" ".join(rules))
        header.append(" & ".join([""] * n_labels + [tex(c) for c in t.columns]) + r" \\")
    else:
        header.append(" & ".join(tex(c) for c in (*t.label_columns, *t.columns)) + r" \\")
    body = [_row(r) for r in t.head] + ([r"\midrule"] if t.head else [])
    for i, g in enumerate(t.groups):
        if i:
            body.append(r"\midrule")
        if g.title:
            body.append(rf"\multicolumn{{{n_labels + n_cols}}}{{l}}{{\textit{{{tex(g.title)}}}}} \\")
        body.extend(_row(r) for r in g.rows)
    if t.foot:
        body.append(r"\midrule")
        body.extend(_row(r) for r in t.foot)
    return latex_env().get_template("table.tex.j2").render(
        title=tex(t.title), label=slug(t.key), wide=n_labels + n_cols > WIDE, colspec="l" * n_labels + "c" * n_cols,
        header=header, body=body, notes=" ".join(tex(n) for n in t.notes))


def render_latex(report: Report) -> tuple[str, dict[str, str], dict[str, bytes]]:
    """report.tex, the table fragments {path: text} and the figure PDFs {path: bytes}, paths relative to
    the report's folder."""
    tables, figures, sections = {}, {}, []
    for s in report.sections:
        paths, figs = [], []
        for t in s.tables:
            path = f"latex/tab-{slug(t.key)}.tex"
            tables[path] = render_table(t)
            paths.append(path)
        for f in s.figures:
            path = f"latex/fig-{slug(f.key)}.pdf"
            figures[path] = f.pdf
            figs.append({"path": path, "caption": tex(f.caption), "label": slug(f.key)})
        sections.append({"title": tex(s.title), "intro": tex(s.intro), "tables": paths, "figures": figs})
    keys = [re.search(r"\{([^,]+),", c).group(1) for c in report.citations]
    doc = latex_env().get_template("report.tex.j2").render(
        title=tex(report.name), description=tex(report.description),
        status=tex(f"{report.complete} of {report.total} cells complete."), sections=sections,
        notes=[tex(n) for n in report.notes], bib=tex(", ".join(keys)))
    return doc, tables, figures
