"""LaTeX: booktabs table fragments, matplotlib PDF figures, and a standalone report.tex that \\input's them."""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from bench.report.model import Cell, Report, Row, Table
from bench.report.templating import latex_env

_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
        "|": r"\textbar{}", "\n": " ", "\r": " ", "\u00a0": "~", "±": r"$\pm$", "–": "--", "—": "---", "’": "'",
        "†": r"\textdagger{}", "×": r"$\times$", "−": "-", "≈": r"$\approx$", "≤": r"$\leq$",
        "≥": r"$\geq$"}
# Greek letters that LaTeX's math mode names (the others look like Latin capitals).
_GREEK = frozenset("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon "
                   "phi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split())
WIDE = 8  # tables with more columns than this are scaled to the text width


def tex(text: str) -> str:
    """Escape LaTeX's special characters and spell any other character so that pdflatex (T1, utf8) typesets it."""
    return "".join(_TEX.get(ch) or (ch if _typeset(ch) else _unicode(ch)) for ch in str(text))


def _typeset(ch: str) -> bool:
    """Printable ASCII and Latin-1, which pdflatex typesets as they are with T1 and utf8 input."""
    return " " <= ch <= "~" or "\u00a1" <= ch <= "\u00ff"


@cache
def _unicode(ch: str) -> str:
    """A character pdflatex may have no glyph for: a control character as a space, a Greek letter as its math
    symbol, a letter with marks LaTeX lacks as its plain letters (ő -> o, ﬁ -> fi), anything else as its code
    point."""
    if unicodedata.category(ch) == "Cc":
        return " "
    greek = re.fullmatch(r"GREEK (SMALL|CAPITAL) LETTER (\w+)", unicodedata.name(ch, ""))
    if greek:
        name = greek[2].replace("LAMDA", "LAMBDA")
        name = name.lower() if greek[1] == "SMALL" else name.capitalize()
        if name in _GREEK:
            return f"$\\{name}$"
    plain = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if plain and all(map(_typeset, plain)):
        return tex(plain)
    return f"[U+{ord(ch):04X}]"


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


def render_latex(report: Report, figure_paths: dict[str, str]) -> tuple[str, dict[str, str]]:
    """report.tex and the table fragments {path: text}, paths relative to the report's folder.
    `figure_paths`: figure key -> PDF file name relative to report.tex."""
    tables, sections = {}, []
    for s in report.sections:
        paths, figs = [], []
        for t in s.tables:
            path = f"latex/tab-{slug(t.key)}.tex"
            tables[path] = render_table(t)
            paths.append(path)
        for f in s.figures:
            figs.append({"path": figure_paths[f.key], "caption": tex(f.caption), "label": slug(f.key)})
        sections.append({"title": tex(s.title), "intro": tex(s.intro), "tables": paths, "figures": figs})
    keys = [re.search(r"\{([^,]+),", c).group(1) for c in report.citations]
    doc = latex_env().get_template("report.tex.j2").render(
        title=tex(report.name), description=tex(report.description),
        status=tex(f"{report.complete} of {report.total} cells complete."), sections=sections,
        notes=[tex(n) for n in report.notes], bib=tex(", ".join(keys)))
    return doc, tables
