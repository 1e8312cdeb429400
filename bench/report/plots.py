"""Figures with matplotlib: compression-ratio curves and cross-architecture heat maps, SVG for HTML and Markdown,
PDF for LaTeX, byte-identical per input.

matplotlib's pyplot keeps global state and picks a GUI backend; a bare `Figure` does neither, so rendering
works the same in a SLURM job, a test and a laptop. SVG ids are salted with a constant and dates are left
out, so the same numbers give the same bytes (golden files). Text is drawn as written: a label with `$` is not
read as mathtext. PDFs embed their fonts as TrueType (Type 42), which venues accept, never as Type 3.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import re
import warnings
from contextlib import contextmanager
from typing import Iterator

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from bench.report.inputs import WHOLE
from bench.report.model import MISSING, Figure

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


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def curve(frame: pd.DataFrame, dataset: str, arch: str, key: str, font: str = "cm") -> Figure:
    """Accuracy against IPC (log x) and against stored bytes (log x), one line per method with a ± std band,
    and the whole-dataset accuracy as a dashed line with its band.

    All methods' lines, bands and markers are drawn as one collection each per axis: with 40 methods that is
    3 artists instead of 120 per axis, which is what keeps a 100,000-record report within its time budget.
    """
    data = frame[(frame["dataset"] == dataset) & (frame["arch"] == arch) & frame["mean"].notna()]
    points, whole = data[data["group"] != "whole"], data[data["group"] == "whole"]
    with _drawing(font):
        palette = itertools.cycle(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"])
        methods = []
        for i, (method, rows) in enumerate(points.groupby("method", sort=False)):
            rows = rows.sort_values("ipc")
            x = {"ipc": rows["ipc"].astype(float).to_numpy(), "bytes": rows["artifact_bytes"].astype(float).to_numpy()}
            methods.append((method, next(palette), LINESTYLES[i // 10 % len(LINESTYLES)], rows["mean"].to_numpy(),
                            rows["std"].fillna(0).to_numpy(), x))
        # A fixed layout computed here (constrained layout costs more than the lines at 40 methods): plots on
        # top, the legend below them in up to 5 columns, the figure as tall as the legend needs.
        entries = len(methods) + len(whole)
        legend_in = 0.17 * math.ceil(entries / LEGEND_COLUMNS) + 0.1
        height = 3.0 + 0.6 + legend_in
        fig = MplFigure(figsize=(9, height))
        fig.subplots_adjust(left=0.07, right=0.98, bottom=(legend_in + 0.6) / height, top=1 - 0.3 / height,
                            wspace=0.06)
        by_ipc, by_bytes = fig.subplots(1, 2, sharey=True)
        for ax, axis, values, label in ((by_ipc, "ipc", points["ipc"], "{:g}".format),
                                        (by_bytes, "bytes", points["artifact_bytes"], _human_bytes)):
            ax.set_xscale("log")
            if methods:
                colors = [m[1] for m in methods]
                ax.add_collection(PolyCollection(
                    [np.concatenate([np.column_stack([x[axis], mean - std]),
                                     np.column_stack([x[axis][::-1], (mean + std)[::-1]])])
                     for _, _, _, mean, std, x in methods], facecolors=colors, alpha=0.15, linewidths=0))
                ax.add_collection(LineCollection([np.column_stack([x[axis], mean]) for _, _, _, mean, _, x in methods],
                                                 colors=colors, linestyles=[m[2] for m in methods], linewidths=1.2))
                ax.scatter(np.concatenate([x[axis] for *_, x in methods]), np.concatenate([m[3] for m in methods]),
                           s=9, color=[m[1] for m in methods for _ in m[3]], zorder=3)
            for r in whole.itertuples(index=False):
                ax.axhline(r.mean, color="black", linestyle="--", linewidth=1)
                if not pd.isna(r.std):
                    ax.axhspan(r.mean - r.std, r.mean + r.std, color="black", alpha=0.08, linewidth=0)
            ticks = sorted({float(v) for v in values.dropna()})
            if ticks:  # label the values that were run (at most 8 of them), not powers of ten
                ticks = ticks[::math.ceil(len(ticks) / 8)]
                ax.set_xticks(ticks, [label(t) for t in ticks])
                ax.xaxis.set_minor_locator(NullLocator())
            ax.autoscale_view()
        by_ipc.set_xlabel("images per class (IPC)")
        by_bytes.set_xlabel("bytes stored")
        by_ipc.set_ylabel("accuracy (%)")
        by_ipc.set_title(f"{dataset}, {arch}: accuracy vs IPC", fontsize=9)
        by_bytes.set_title("accuracy vs stored bytes", fontsize=9)
        handles = [Line2D([], [], color=c, linestyle=ls, linewidth=1.5)
                   for _, c, ls, *_ in methods]
        handles += [Line2D([], [], color="black", linestyle="--", linewidth=1) for _ in whole.itertuples()]
        labels = [m[0] for m in methods] + list(whole["method"])
        if handles:
            fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False,
                       ncols=min(entries, LEGEND_COLUMNS), handlelength=2.5)
        text, pdf = _save(fig)
    caption = (f"{dataset} on {arch}: accuracy (mean ± std) against images per class and against the bytes stored "
               f"for the synthetic set" + (f"; dashed: {WHOLE}." if len(whole) else ".") + _diverged(frame, dataset, arch))
    return Figure(key=key, title=f"{dataset}, {arch}", svg=text, pdf=pdf, caption=caption)


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
    are at most `ANNOTATED_ROWS` methods (beyond, the numbers are the table's: texts are what makes a figure slow).
    One axes for all IPCs: a figure's cost is mostly per axes and per tick."""
    data = frame[(frame["dataset"] == dataset) & (frame["group"] != "whole")]
    means = {(r.method, r.ipc, r.arch): r.mean for r in data.itertuples(index=False)}
    acc = np.array([[means.get((m, ipc, a), np.nan) for ipc in ipcs for a in archs] for m in methods], dtype=float)
    refs = np.repeat(acc[:, [i * len(archs) + archs.index(ref) for i in range(len(ipcs))]], len(archs), axis=1)
    change = acc - refs
    limit = max(float(np.nanmax(np.abs(change))) if np.isfinite(change).any() else 0.0, 1.0)
    annotate = len(methods) <= ANNOTATED_ROWS
    with _drawing(font):
        width, height = 2.4 + 0.5 * acc.shape[1], max(1.5 + 0.22 * len(methods), 2.8)  # 2.8: the colour bar's label
        fig = MplFigure(figsize=(width, height))
        fig.subplots_adjust(left=1.3 / width, right=1 - 1.1 / width, bottom=0.9 / height, top=1 - 0.45 / height)
        ax = fig.subplots()
        image = ax.imshow(np.ma.masked_invalid(change), cmap=matplotlib.colormaps["RdBu"].with_extremes(bad="#eeeeee"),
                          vmin=-limit, vmax=limit, aspect="auto")
        for (i, j), value in np.ndenumerate(acc if annotate else ()):
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
        fig.colorbar(image, ax=ax, fraction=0.5 / width, pad=0.02).set_label(f"change from {ref} (points)")
        text, pdf = _save(fig)
    caption = (f"{dataset}: " + ("mean accuracy of each method on each evaluation architecture, per IPC; the colour "
                                 "is its" if annotate else
                                 "each method on each evaluation architecture, per IPC, coloured by its")
               + f" change from {ref} (the same method's accuracy there), red where accuracy drops.")
    return Figure(key=key, title=f"{dataset}, cross-architecture", svg=text, pdf=pdf, caption=caption)
