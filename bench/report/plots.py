"""Figures with matplotlib: compression-ratio curves and cross-architecture heat maps, SVG for HTML and Markdown,
PDF for LaTeX, byte-identical per input.

matplotlib's pyplot keeps global state and picks a GUI backend; a bare `Figure` does neither, so rendering
works the same in a SLURM job, a test and a laptop. SVG ids are salted with a constant and dates are left
out, so the same numbers give the same bytes (golden files). Text is drawn as written: a label with `$` is not
read as mathtext. PDFs embed their fonts as TrueType (Type 42), which venues accept, never as Type 3.

A view describes each figure as plain data (`CurvePlot`, `CrossArchPlot`); `bench.report.render` draws those whose
data changed since the last report, so matplotlib (0.6 s to import) is imported only when one is drawn.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import logging
import math
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pandas as pd

from bench.report.inputs import WHOLE
from bench.report.model import MISSING, Figure, Plot

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

STYLE = {"svg.hashsalt": "bench-report", "svg.fonttype": "none", "font.size": 9, "axes.grid": True,
         "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False, "text.parse_math": False,
         "pdf.fonttype": 42, "axes.unicode_minus": False}
# `report: {font: ...}`: the figures' typeface, each bundled with matplotlib (the same bytes on every machine),
# then fonts for the glyphs it lacks (Computer Modern has no Greek letters or ≈). Config checks the names against
# bench.names.FONT_NAMES, which tests/test_report_views.py keeps equal to these keys.
FONTS = {"cm": ("cmr10", "STIXGeneral", "DejaVu Sans"),  # Computer Modern: the body of report.tex (Latin Modern)
         "times": ("STIXGeneral", "DejaVu Serif"),  # Times-like: the body of the NeurIPS, ICML and CVPR templates
         "sans": ("DejaVu Sans",)}  # matplotlib's own default
LINESTYLES = ("-", "--", "-.", ":")
LEGEND_COLUMNS = 5
ANNOTATED_ROWS = 20  # methods up to which a heat map writes each cell's mean
# cmr10's font header has a zero date; fontTools warns about it each time a PDF embeds a subset of it.
logging.getLogger("fontTools.ttLib.tables._h_e_a_d").setLevel(logging.ERROR)


@contextmanager
def _drawing(font: str) -> Iterator[None]:
    """The report's matplotlib settings in `font`. Tick numbers are drawn without mathtext (every text is drawn
    literally), which matplotlib warns against for cmr10 because of its minus sign: `axes.unicode_minus` off
    draws a hyphen, which cmr10 has."""
    import matplotlib

    with matplotlib.rc_context({**STYLE, "font.family": list(FONTS[font])}), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "cmr10 font should ideally be used with mathtext")
        yield


def _save(fig: MplFigure) -> tuple[str, bytes]:
    """The figure as inline-able SVG text (no XML prolog; it shrinks to its box, never grows past its own size,
    so a small figure's text stays the size of a large one's) and PDF bytes, both without dates."""
    svg, pdf = io.BytesIO(), io.BytesIO()
    fig.savefig(svg, format="svg", metadata={"Date": None})
    fig.savefig(pdf, format="pdf", metadata={"CreationDate": None, "ModDate": None})
    text = svg.getvalue().decode()
    text = text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE so the SVG can be inlined in HTML
    text = re.sub(r'<svg([^>]*?) width="([^"]*)" height="[^"]*"', r'<svg\1 style="max-width: \2"', text, count=1)
    return text, pdf.getvalue()


@cache
def _code() -> str:
    """What else a figure's bytes depend on: this module's code and the version of matplotlib that draws."""
    return hashlib.sha256(Path(__file__).read_bytes() + version("matplotlib").encode()).hexdigest()


def digest(plot: Plot) -> str:
    """A hash of everything a figure's files are a function of: its plot's data (the repr of plain Python
    values, exact for floats), this module's code and matplotlib's version."""
    return hashlib.sha256(f"{_code()}\n{plot!r}".encode()).hexdigest()


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def curve(frame: pd.DataFrame, dataset: str, arch: str, key: str, font: str = "cm") -> Figure:
    """Accuracy against IPC (log x) and against stored bytes (log x), one line per method with a ± std band,
    and the whole-dataset accuracy as a dashed line with its band."""
    data = frame[(frame["dataset"] == dataset) & (frame["arch"] == arch) & frame["mean"].notna()]
    points, whole = data[data["group"] != "whole"], data[data["group"] == "whole"]
    columns = [points[c].astype(float).to_numpy() for c in ("ipc", "artifact_bytes", "mean")]
    columns.append(np.nan_to_num(points["std"].astype(float).to_numpy()))
    methods = []
    for method, rows in points.groupby("method", sort=False).indices.items():  # positions, in order of appearance
        rows = rows[np.argsort(columns[0][rows], kind="stable")]
        methods.append((method, *(tuple(c[rows].tolist()) for c in columns)))
    plot = CurvePlot(f"{dataset}, {arch}: accuracy vs IPC", tuple(methods),
                     tuple((r.method, float(r.mean), None if pd.isna(r.std) else float(r.std))
                           for r in whole.itertuples(index=False)), font)
    caption = (f"{dataset} on {arch}: accuracy (mean ± std) against images per class and against the bytes stored "
               f"for the synthetic set" + (f"; dashed: {WHOLE}." if len(whole) else ".") + _diverged(frame, dataset, arch))
    return Figure(key=key, title=f"{dataset}, {arch}", plot=plot, caption=caption)


@dataclass(frozen=True)
class CurvePlot:
    """A compression-ratio figure as plain data: per method (label, IPCs, bytes, means, stds), per Whole Dataset
    row (label, mean, std or None)."""

    title: str
    methods: tuple[tuple[str, tuple[float, ...], tuple[float, ...], tuple[float, ...], tuple[float, ...]], ...]
    whole: tuple[tuple[str, float, float | None], ...]
    font: str

    def draw(self) -> tuple[str, bytes]:
        """All methods' lines, bands and markers are drawn as one collection each per axis: with 40 methods that
        is 3 artists instead of 120 per axis."""
        import matplotlib
        from matplotlib.collections import LineCollection, PolyCollection
        from matplotlib.figure import Figure as MplFigure
        from matplotlib.lines import Line2D
        from matplotlib.ticker import NullLocator

        with _drawing(self.font):
            palette = itertools.cycle(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"])
            colors = [next(palette) for _ in self.methods]
            styles = [LINESTYLES[i // 10 % len(LINESTYLES)] for i in range(len(self.methods))]
            # A fixed layout computed here (constrained layout costs more than the lines at 40 methods): plots on
            # top, the legend below them in up to 5 columns, the figure as tall as the legend needs.
            entries = len(self.methods) + len(self.whole)
            legend_in = 0.17 * math.ceil(entries / LEGEND_COLUMNS) + 0.1
            height = 3.0 + 0.6 + legend_in
            fig = MplFigure(figsize=(9, height))
            fig.subplots_adjust(left=0.07, right=0.98, bottom=(legend_in + 0.6) / height, top=1 - 0.3 / height,
                                wspace=0.06)
            by_ipc, by_bytes = fig.subplots(1, 2, sharey=True)
            for ax, axis, label in ((by_ipc, 1, "{:g}".format), (by_bytes, 2, _human_bytes)):
                ax.set_xscale("log")
                xs = [np.array(m[axis]) for m in self.methods]
                means, stds = [np.array(m[3]) for m in self.methods], [np.array(m[4]) for m in self.methods]
                if self.methods:
                    ax.add_collection(PolyCollection(
                        [np.concatenate([np.column_stack([x, mean - std]), np.column_stack([x[::-1], (mean + std)[::-1]])])
                         for x, mean, std in zip(xs, means, stds)], facecolors=colors, alpha=0.15, linewidths=0))
                    ax.add_collection(LineCollection([np.column_stack([x, mean]) for x, mean in zip(xs, means)],
                                                     colors=colors, linestyles=styles, linewidths=1.2))
                    ax.scatter(np.concatenate(xs), np.concatenate(means), s=9, zorder=3,
                               color=[c for c, mean in zip(colors, means) for _ in mean])
                for _, mean, std in self.whole:
                    ax.axhline(mean, color="black", linestyle="--", linewidth=1)
                    if std is not None:
                        ax.axhspan(mean - std, mean + std, color="black", alpha=0.08, linewidth=0)
                ticks = sorted({float(v) for x in xs for v in x if not math.isnan(v)})
                if ticks:  # label the values that were run (at most 8 of them), not powers of ten
                    ticks = ticks[::math.ceil(len(ticks) / 8)]
                    ax.set_xticks(ticks, [label(t) for t in ticks])
                    ax.xaxis.set_minor_locator(NullLocator())
                ax.autoscale_view()
            by_ipc.set_xlabel("images per class (IPC)")
            by_bytes.set_xlabel("bytes stored")
            by_ipc.set_ylabel("accuracy (%)")
            by_ipc.set_title(self.title, fontsize=9)
            by_bytes.set_title("accuracy vs stored bytes", fontsize=9)
            handles = [Line2D([], [], color=c, linestyle=ls, linewidth=1.5) for c, ls in zip(colors, styles)]
            handles += [Line2D([], [], color="black", linestyle="--", linewidth=1) for _ in self.whole]
            if handles:
                fig.legend(handles, [m[0] for m in self.methods] + [w[0] for w in self.whole], loc="lower center",
                           bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False, ncols=min(entries, LEGEND_COLUMNS),
                           handlelength=2.5)
            return _save(fig)


def _diverged(frame: pd.DataFrame, dataset: str, arch: str) -> str:
    """The caption's account of the runs left out of the points because their loss became NaN or Inf."""
    gone = frame[(frame["dataset"] == dataset) & (frame["arch"] == arch) & (frame["n_diverged"] > 0)]
    cells = ", ".join(f"{r.method}" + ("" if pd.isna(r.ipc) else f" at IPC {r.ipc}") + f" ({r.n_diverged} of "
                      f"{r.n_expected})" for r in gone.itertuples(index=False))
    return f" Runs that diverged (NaN or Inf loss) are left out of the means: {cells}." if cells else ""


def cross_arch(frame: pd.DataFrame, dataset: str, ipcs: list[int], archs: list[str], ref: str, methods: list[str],
               key: str, font: str = "cm") -> Figure:
    """A heat map, methods (rows, in `methods` order) x evaluation architectures grouped by IPC: each cell is
    coloured by its change in mean accuracy from the same method and IPC on `ref` (red: lower, blue: higher), so
    the architectures a synthetic set does not transfer to stand out at a glance, and shows the mean where there
    are at most `ANNOTATED_ROWS` methods (beyond, the numbers are the table's: texts are what makes a figure slow)."""
    data = frame[(frame["dataset"] == dataset) & (frame["group"] != "whole")]
    means = {(r.method, r.ipc, r.arch): r.mean for r in data.itertuples(index=False)}
    acc = tuple(tuple(float(means.get((m, ipc, a), math.nan)) for ipc in ipcs for a in archs) for m in methods)
    annotate = len(methods) <= ANNOTATED_ROWS
    caption = (f"{dataset}: " + ("mean accuracy of each method on each evaluation architecture, per IPC; the colour "
                                 "is its" if annotate else
                                 "each method on each evaluation architecture, per IPC, coloured by its")
               + f" change from {ref} (the same method's accuracy there), red where accuracy drops.")
    return Figure(key=key, title=f"{dataset}, cross-architecture", caption=caption,
                  plot=CrossArchPlot(acc, tuple(ipcs), tuple(archs), ref, tuple(methods), font))


@dataclass(frozen=True)
class CrossArchPlot:
    """A cross-architecture heat map as plain data: the mean accuracy per method (rows) and IPC x architecture."""

    acc: tuple[tuple[float, ...], ...]
    ipcs: tuple[int, ...]
    archs: tuple[str, ...]
    ref: str
    methods: tuple[str, ...]
    font: str

    def draw(self) -> tuple[str, bytes]:
        """One axes for all IPCs: a figure's cost is mostly per axes and per tick."""
        import matplotlib
        from matplotlib.figure import Figure as MplFigure

        ipcs, archs, methods = self.ipcs, list(self.archs), self.methods
        acc = np.array(self.acc, dtype=float).reshape(len(methods), len(ipcs) * len(archs))
        refs = np.repeat(acc[:, [i * len(archs) + archs.index(self.ref) for i in range(len(ipcs))]], len(archs), axis=1)
        change = acc - refs
        limit = max(float(np.nanmax(np.abs(change))) if np.isfinite(change).any() else 0.0, 1.0)
        with _drawing(self.font):
            width, height = 2.4 + 0.5 * acc.shape[1], max(1.5 + 0.22 * len(methods), 2.8)  # 2.8: the bar's label
            fig = MplFigure(figsize=(width, height))
            fig.subplots_adjust(left=1.3 / width, right=1 - 1.1 / width, bottom=0.9 / height, top=1 - 0.45 / height)
            ax = fig.subplots()
            image = ax.imshow(np.ma.masked_invalid(change), vmin=-limit, vmax=limit, aspect="auto",
                              cmap=matplotlib.colormaps["RdBu"].with_extremes(bad="#eeeeee"))
            for (i, j), value in np.ndenumerate(acc if len(methods) <= ANNOTATED_ROWS else ()):
                ax.text(j, i, MISSING if np.isnan(value) else f"{value:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(change[i, j]) > 0.6 * limit else "black")
            for i, ipc in enumerate(ipcs):
                ax.text((i + 0.5) * len(archs) - 0.5, -0.7, f"IPC {ipc}", ha="center", va="bottom")
                if i:
                    ax.axvline(i * len(archs) - 0.5, color="white", linewidth=4)
            ax.set_xticks(range(acc.shape[1]), archs * len(ipcs), rotation=45, ha="right", rotation_mode="anchor")
            ax.set_yticks(range(len(methods)), methods)
            ax.tick_params(length=0)
            ax.grid(False)
            ax.spines[:].set_visible(False)
            fig.colorbar(image, ax=ax, fraction=0.5 / width, pad=0.02).set_label(f"change from {self.ref} (points)")
            return _save(fig)
