"""Write a suite's report in every format under reports/<suite>/, refresh reports/index.html, and return the
terminal rendering.

reports/<suite>/
  report.html          self-contained page (CSS, JS, SVG inline), sortable tables
  table.md             GitHub Markdown, figures as fig-*.svg next to it
  report.tex           standalone LaTeX (booktabs), \\input's latex/tab-*.tex, includes latex/fig-*.pdf
  results.csv, .json   the aggregated numbers (one row per cell, plus Whole Dataset rows)
  references.bib       BibTeX of the papers compared with (when `report: {compare_to: ...}`)

Every file is a function of the records and the suite's expected cells alone (no dates, fixed SVG ids), so the
same store gives byte-identical files.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.report.aggregate import DDOF
from bench.report.html import render_html, render_index
from bench.report.inputs import ReportOptions
from bench.report.latex import render_latex, slug
from bench.report.markdown import render_markdown
from bench.report.model import Report, Table
from bench.report.views import build_report

TERMINAL_SECTIONS = ("paper_table", "reported", "cost")


def _plain(value):
    """JSON-able, with NaN / NA as null."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def results_json(report: Report, frame: pd.DataFrame) -> str:
    cells = [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    data = frame[frame["group"] != "whole"]
    return json.dumps({"suite": report.name, "description": report.description, "ddof": DDOF,
                       "summary": {"complete": report.complete, "total": report.total,
                                   "methods": list(dict.fromkeys(data["method"])),
                                   "datasets": list(dict.fromkeys(data["dataset"]))},
                       "cells": cells}, indent=1, ensure_ascii=False) + "\n"


def terminal_table(t: Table) -> str:
    headers = [*t.label_columns, *t.flat_columns()]
    rows = [[*r.labels, *(v for c in r.cells for v in [c.text] + [""] * (c.span - 1))]
            for r in (*t.head, *(r for g in t.groups for r in g.rows), *t.foot)]
    return f"{t.title}\n{tabulate(rows, headers=headers, tablefmt='simple', disable_numparse=True)}"


def write_report(options: ReportOptions, frame: pd.DataFrame, out_dir: Path) -> str:
    """Write every format of the suite's report into out_dir and refresh the index one level up; return the
    terminal rendering (results tables, comparison and cost)."""
    report = build_report(options, frame)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Figures and LaTeX fragments are named after views; drop the previous run's so none are left stale.
    shutil.rmtree(out_dir / "latex", ignore_errors=True)
    for old in out_dir.glob("fig-*.svg"):
        old.unlink()
    figures = {f.key: f"fig-{slug(f.key)}.svg" for s in report.sections for f in s.figures}
    for s in report.sections:
        for f in s.figures:
            (out_dir / figures[f.key]).write_text(f.svg, encoding="utf-8")
    (out_dir / "report.html").write_text(render_html(report), encoding="utf-8")
    (out_dir / "table.md").write_text(render_markdown(report, figures), encoding="utf-8")
    tex, tables, pdfs = render_latex(report)
    (out_dir / "latex").mkdir()
    (out_dir / "report.tex").write_text(tex, encoding="utf-8")
    for path, text in tables.items():
        (out_dir / path).write_text(text, encoding="utf-8")
    for path, data in pdfs.items():
        (out_dir / path).write_bytes(data)
    bib = out_dir / "references.bib"
    if report.citations:
        bib.write_text("\n\n".join(report.citations) + "\n", encoding="utf-8")
    else:
        bib.unlink(missing_ok=True)
    frame.to_csv(out_dir / "results.csv", index=False, float_format="%.4f")
    (out_dir / "results.json").write_text(results_json(report, frame), encoding="utf-8")
    write_index(out_dir.parent)
    return "\n\n".join(terminal_table(t) for s in report.sections if s.key in TERMINAL_SECTIONS for t in s.tables)


def write_index(reports: Path) -> Path:
    """reports/index.html: every suite that has a report under `reports`, from its results.json."""
    suites = []
    for path in sorted(reports.glob("*/results.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        summary = data["summary"]
        suites.append({"name": data["suite"], "href": f"{path.parent.name}/report.html",
                       "description": data["description"], "complete": summary["complete"],
                       "total": summary["total"], "complete_frac": summary["complete"] / max(summary["total"], 1),
                       "methods": summary["methods"], "datasets": summary["datasets"]})
    index = reports / "index.html"
    index.write_text(render_index(suites), encoding="utf-8")
    return index
