"""`bench report` with method labels that break naive renderers: mathtext, LaTeX, CSV formulas, Markdown and HTML
syntax, a newline; reports of one suite at once; a disk that fills up mid-report."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, SAFETY_TIMEOUT_S, TINY_SUITE, cli_env, write
from test_report import fabricate, report_cli, rows_of
from test_report_tools import need

# Mathtext would fail to parse the third and set the fourth in italics without its dollars.
LABELS = ["$\\frac{", "$5", "$\\frac{$", "$5 or $6", "DM ✓ 日本", "<b>x</b>|y", "=cmd()", "two\nlines"]


def hostile_suite() -> str:
    """The tiny suite with one dm entry per hostile label (distinct iterations, so distinct tasks)."""
    entries = "".join(f"  - {{name: dm, label: {json.dumps(label)}, params: {{iterations: {3 + i}}}}}\n"
                      for i, label in enumerate(LABELS))
    return TINY_SUITE.replace("  - name: dm\n    params: {iterations: 3}\n", entries)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    write(root / "bench.yaml", "store: results\nreports: reports\ndevice: cpu\n")
    (root / "tiny.yaml").write_text(hostile_suite())
    fabricate(root / "tiny.yaml", root / "results")
    code, out = report_cli(root)
    assert code == 0, out
    return root


def test_figures_draw_labels_as_written(hostile: Path) -> None:
    svg = (hostile / "reports" / "tiny" / "fig-curve-digits-ConvNet.svg").read_text()
    for text in ("$\\frac{", "$5", "$\\frac{$", "$5 or $6", "DM ✓ 日本", "&lt;b&gt;x&lt;/b&gt;|y", "=cmd()", "two",
                 "lines"):
        assert f">{text}</text>" in svg, text


def test_latex_escapes_every_label_and_compiles(hostile: Path, tmp_path: Path) -> None:
    report = hostile / "reports" / "tiny"
    table = (report / "latex" / "tab-paper-table-ConvNet.tex").read_text()
    for text in (r"\$\textbackslash{}frac\{ &", r"\$5 &", "DM [U+2713] [U+65E5][U+672C] &",
                 r"\textless{}b\textgreater{}x\textless{}/b\textgreater{}\textbar{}y &", "=cmd() &", "two lines &"):
        assert text in table, text
    assert "\\usepackage[T1]{fontenc}" in (report / "report.tex").read_text()
    exe = need("pdflatex")
    shutil.copytree(report, tmp_path / "tex")
    done = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=tmp_path / "tex",
                          capture_output=True, timeout=SAFETY_TIMEOUT_S)
    log = (tmp_path / "tex" / "report.log").read_text(errors="replace")
    assert done.returncode == 0 and (tmp_path / "tex" / "report.pdf").exists(), log[-3000:]
    assert "Unicode character" not in log and "Missing $" not in log


def test_csv_neutralises_formulas_and_keeps_numbers(hostile: Path) -> None:
    methods = [r["method"] for r in rows_of(hostile / "reports" / "tiny" / "results.csv")]
    assert "'=cmd()" in methods and "=cmd()" not in methods and "two\nlines" in methods
    from bench.report.render import results_csv
    frame = pd.DataFrame({"method": ["-1.5", "+x", "@x", "=1+1", "\tx", "a=b"], "mean": [-1.5, 1.0, 2.0, 3.0, 4.0, 5.0],
                          "n": [-2, 1, 1, 1, 1, 1]})
    assert results_csv(frame).splitlines() == ["method,mean,n", "'-1.5,-1.5000,-2", "'+x,1.0000,1", "'@x,2.0000,1",
                                               "'=1+1,3.0000,1", "'\tx,4.0000,1", "a=b,5.0000,1"]


def test_markdown_and_html_show_labels_literally(hostile: Path) -> None:
    md = (hostile / "reports" / "tiny" / "table.md").read_text()
    assert "| &lt;b&gt;x&lt;/b&gt;\\|y | " in md and "| two lines | " in md and "| $\\\\frac{ | " in md
    assert "<b>" not in md and all(line.count(" | ") >= 2 for line in md.splitlines() if line.startswith("| two"))
    html = (hostile / "reports" / "tiny" / "report.html").read_text()
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;|y" in html


def test_reports_of_one_suite_at_once_all_succeed(hostile: Path) -> None:
    """Two at once is the case to support; four make the overlap that broke the old writer (it removed and made
    latex/ again) likely on a suite this small."""
    command = [sys.executable, "-m", "bench.cli", "--config", str(hostile / "bench.yaml"), "report",
               str(hostile / "tiny.yaml")]
    procs = [subprocess.Popen(command, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=SAFETY_TIMEOUT_S)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    report = hostile / "reports" / "tiny"
    assert not [p for p in report.rglob("*") if p.name.endswith(".tmp")]
    assert json.loads((report / "results.json").read_text())["summary"]["complete"] == (1 + len(LABELS)) * 4


def test_a_full_disk_leaves_every_report_file_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up after a few files of the second report: each file is its old or its new version, and the
    next report is whole."""
    write(tmp_path / "bench.yaml", "store: results\nreports: reports\ndevice: cpu\n")
    write(tmp_path / "tiny.yaml", TINY_SUITE)
    fabricate(tmp_path / "tiny.yaml", tmp_path / "results", skip=3)
    report = tmp_path / "reports" / "tiny"

    def files() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in report.rglob("*") if p.is_file()}
    assert report_cli(tmp_path)[0] == 0
    old = files()
    fabricate(tmp_path / "tiny.yaml", tmp_path / "results")
    written = []

    def full_disk(fd: int) -> None:
        written.append(fd)
        if len(written) > 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr("bench.atomic.os.fsync", full_disk)
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert report_cli(tmp_path)[0] == 1
    assert err.getvalue().startswith("error: No space left on device") and "Traceback" not in err.getvalue()
    monkeypatch.undo()
    mid = files()
    assert report_cli(tmp_path)[0] == 0
    new = files()
    # Only the figures' digests are gone: removed first, so the next report draws the figures again.
    assert old != new and mid.keys() == old.keys() - {report / ".figures.json"}
    assert all(data in (old[p], new[p]) and data for p, data in mid.items())
