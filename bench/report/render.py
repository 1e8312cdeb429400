"""Write a suite's report in every format under reports/<suite>/, refresh reports/index.html, and return the
terminal rendering.

reports/<suite>/
  report.html          self-contained page (CSS, JS, SVG inline), sortable tables
  table.md             GitHub Markdown, figures as fig-*.svg next to it
  report.tex           standalone LaTeX (booktabs), \\input's latex/tab-*.tex, includes latex/fig-*.pdf
  results.csv, .json   the aggregated numbers (one row per cell, plus Whole Dataset rows)
  references.bib       BibTeX of the papers compared with (when `report: {compare_to: ...}`)
  .figures.json        what each figure was drawn from: an unchanged figure is reused, not drawn again

Every file is a function of the records and the suite's expected cells alone (no dates, fixed SVG ids), so the
same store gives byte-identical files. Each is written all at once (`bench.atomic`), so a reader, a full disk or a
second `bench report` of the same suite at the same time never sees a partial file.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
from pathlib import Path
from typing import Callable

import pandas as pd
from tabulate import tabulate

from bench.atomic import atomic_write
from bench.report.aggregate import DDOF
from bench.report.html import render_html, render_index
from bench.report.inputs import ReportOptions
from bench.report.latex import render_latex, slug
from bench.report.markdown import render_markdown
from bench.machine import available_cores, map_forked
from bench.report.model import Figure, Plot, Report, Row, Table
from bench.report.views import build_report

TERMINAL_SECTIONS = ("paper_table", "reported", "cost")
# What a spreadsheet reads as the start of a formula (OWASP, CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Files named after views: those an earlier report wrote and this one does not are removed.
VIEW_FILES = ("fig-*.svg", "latex/tab-*.tex", "latex/fig-*.pdf", "references.bib")
# Result cells from which a report's views and formats are made in one forked process per core: below, forking
# costs more than it saves.
PARALLEL_CELLS = 1000
DRAWN = ".figures.json"  # figure key -> digest of the plot its files were drawn from (`draw_figures`)


def _plain(value):
    """JSON-able, with NaN / NA as null."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def results_json(report: Report, frame: pd.DataFrame) -> str:
    """The suite, its summary and one line per cell (json's C encoder writes no indentation: the lines are
    made here, so a diff of two reports still shows the cells that changed)."""
    data = frame[frame["group"] != "whole"]
    head = json.dumps({"suite": report.name, "description": report.description, "ddof": DDOF,
                       "summary": {"complete": report.complete, "total": report.total,
                                   "methods": list(dict.fromkeys(data["method"])),
                                   "datasets": list(dict.fromkeys(data["dataset"]))}}, ensure_ascii=False)
    cells = (json.dumps({k: _plain(v) for k, v in row.items()}, ensure_ascii=False)
             for row in frame.to_dict(orient="records"))
    return f'{head[:-1]}, "cells": [\n' + ",\n".join(cells) + "\n]}\n"


def terminal_table(t: Table) -> str:
    """A plain-text table; a spanning cell (Whole Dataset) is repeated under each of its columns, and a titled
    group (Coresets, Distillation) starts with a row holding its title alone."""
    headers = [*t.label_columns, *t.flat_columns()]

    def line(r: Row) -> list[str]:
        return [*r.labels, *(v for c in r.cells for v in [c.text] * c.span)]

    rows = [line(r) for r in t.head]
    for g in t.groups:
        rows += ([[g.title] + [""] * (len(headers) - 1)] if g.title else []) + [line(r) for r in g.rows]
    rows += [line(r) for r in t.foot]
    return f"{t.title}\n{tabulate(rows, headers=headers, tablefmt='simple', disable_numparse=True)}"


def _inert(value):
    """A text cell that a spreadsheet would run as a formula, with a leading quote, as OWASP recommends."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_START) else value


def results_csv(frame: pd.DataFrame) -> str:
    """The aggregated frame as CSV, its text cells inert; numeric columns are left alone, so -1.5 stays a number."""
    text = frame.select_dtypes(exclude=["number", "bool"]).columns
    return frame.assign(**{c: frame[c].map(_inert) for c in text}).to_csv(index=False, float_format="%.4f")


def write_report(options: ReportOptions, frame: pd.DataFrame, out_dir: Path) -> str:
    """Write every format of the suite's report into out_dir and refresh the index one level up; return the
    terminal rendering (results tables, comparison and cost)."""
    workers = available_cores() if len(frame) >= PARALLEL_CELLS else 1
    report = build_report(options, frame, workers)
    figures = [f for s in report.sections for f in s.figures]
    names = {f.key: (f"fig-{slug(f.key)}.svg", f"latex/fig-{slug(f.key)}.pdf") for f in figures}
    drawings, digests = draw_figures(figures, names, out_dir)
    svgs = {k: svg for k, (svg, _) in drawings.items()}

    def latex() -> dict[str, str]:
        tex, tables = render_latex(report, {k: pdf for k, (_, pdf) in names.items()})
        return {"report.tex": tex, **tables}

    formats: list[Callable[[], dict[str, str]]] = [  # each a file name -> text; the longest to make first
        lambda: {"table.md": render_markdown(report, {k: svg for k, (svg, _) in names.items()}),
                 "results.csv": results_csv(frame), "results.json": results_json(report, frame)},
        lambda: {"report.html": render_html(report, svgs)}, latex]
    texts = {name: text for made in map_forked(lambda make: make(), formats, workers=workers)
             for name, text in made.items()}
    files = {**{names[k][0]: svg.encode() for k, svg in svgs.items()},
             **{names[k][1]: pdf for k, (_, pdf) in drawings.items()},
             **{name: text.encode() for name, text in texts.items()}}
    if report.citations:
        files["references.bib"] = ("\n\n".join(report.citations) + "\n").encode()
    # The figures' digests are written last, and removed first: a report cut short leaves files that no digest
    # vouches for, so the next one draws them again.
    (out_dir / DRAWN).unlink(missing_ok=True)
    for name, data in files.items():
        atomic_write(out_dir / name, lambda f: f.write(data))
    for old in (p for pattern in VIEW_FILES for p in out_dir.glob(pattern)):
        if old.relative_to(out_dir).as_posix() not in files:
            old.unlink(missing_ok=True)
    atomic_write(out_dir / DRAWN, lambda f: f.write(json.dumps(digests, indent=1, sort_keys=True).encode()))
    write_index(out_dir.parent)
    return "\n\n".join(terminal_table(t) for s in report.sections if s.key in TERMINAL_SECTIONS for t in s.tables)


def draw_figures(figures: list[Figure], names: dict[str, tuple[str, str]], out_dir: Path
                 ) -> tuple[dict[str, tuple[str, bytes]], dict[str, str]]:
    """Each figure's SVG text and PDF bytes, and the digest of its plot (`plots.digest`). A figure whose plot has
    the digest the last report recorded is read back from its files (`names`: SVG and PDF paths under out_dir);
    the others are drawn, in one process per available core where there are several: a figure is a function of
    its plot alone, and drawing 40 methods' curves is most of a 100,000-record report."""
    from bench.report.plots import digest

    try:
        drawn_before = json.loads((out_dir / DRAWN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        drawn_before = {}
    digests = {f.key: digest(f.plot) for f in figures}
    drawings: dict[str, tuple[str, bytes]] = {}
    for f in figures:
        if isinstance(drawn_before, dict) and drawn_before.get(f.key) == digests[f.key]:
            with contextlib.suppress(OSError, UnicodeDecodeError):
                svg, pdf = (out_dir / p for p in names[f.key])
                drawings[f.key] = (svg.read_bytes().decode(), pdf.read_bytes())  # as written: no newline translation
    todo = [f for f in figures if f.key not in drawings]
    # initializer: the figures' matplotlib objects form cycles, which a report's paused collector would keep
    drawn = map_forked(_draw, [f.plot for f in todo], workers=available_cores(), initializer=gc.enable)
    drawings.update(zip((f.key for f in todo), drawn))
    return {f.key: drawings[f.key] for f in figures}, digests


def _draw(plot: Plot) -> tuple[str, bytes]:
    return plot.draw()


def write_index(reports: Path) -> Path:
    """reports/index.html: every suite that has a report under `reports`, from its results.json."""
    suites = []
    for path in sorted(reports.glob("*/results.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            summary = data["summary"]
        except (ValueError, KeyError, TypeError):  # cut short by an older bench: listed again once reported again
            continue
        suites.append({"name": data["suite"], "href": f"{path.parent.name}/report.html",
                       "description": data["description"], "complete": summary["complete"],
                       "total": summary["total"], "complete_frac": summary["complete"] / max(summary["total"], 1),
                       "methods": summary["methods"], "datasets": summary["datasets"]})
    index, page = reports / "index.html", render_index(suites).encode()
    atomic_write(index, lambda f: f.write(page))
    return index
