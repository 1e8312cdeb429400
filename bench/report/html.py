"""HTML: one self-contained page per suite (CSS, JS and SVG inline; no network request) and an index page."""

from __future__ import annotations

from bench.report.model import Report
from bench.report.templating import html_env


def render_html(report: Report, svgs: dict[str, str] | None = None) -> str:
    """`svgs`: figure key -> its SVG text, inlined (every figure of the report has one)."""
    return html_env().get_template("report.html.j2").render(report=report, svgs=svgs or {})


def render_index(suites: list[dict]) -> str:
    """`suites`: one dict per suite with name, href, description, complete, total, complete_frac, methods,
    datasets."""
    return html_env().get_template("index.html.j2").render(suites=suites)
