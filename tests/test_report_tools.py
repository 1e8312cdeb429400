"""The report opened by the real tools: headless Chromium (DOM, sorting, screenshots), pdflatex and pdffonts.

They skip when the tool is missing, except under BENCH_CI=1 (CI installs chromium, texlive and poppler-utils),
where a missing tool fails the test.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import REPO, SAFETY_TIMEOUT_S, write
from test_report import SUITE, fabricate, report_cli, rows_of

# A label with every character LaTeX treats specially, to prove names are escaped.
NASTY = "dm_v2 50% & #1 ~^"


def need(*names: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    if os.environ.get("BENCH_CI") == "1":
        pytest.fail(f"{names[0]} is required when BENCH_CI=1 (apt-get install chromium texlive-latex-recommended "
                    f"poppler-utils)")
    pytest.skip(f"{names[0]} is not installed")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tools")
    write(root / "bench.yaml", "store: results\nreports: reports\ndevice: cpu\n")
    write(root / "tiny.yaml", SUITE.replace("  - name: dm\n", f"  - name: dm\n    label: '{NASTY}'\n")
          .replace("seeds:", "  - {name: dm, label: dm-b, params: {iterations: 4}}\nseeds:"))
    fabricate(root / "tiny.yaml", root / "results")
    assert report_cli(root)[0] == 0
    return root / "reports" / "tiny"


def chromium(*args: str) -> subprocess.CompletedProcess:
    exe = need("chromium", "chromium-browser", "google-chrome")
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--host-resolver-rules=MAP * ~NOTFOUND", *args],
                          capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)


class Tables(HTMLParser):
    """Cell texts of each table (by id) and the attributes of its header cells."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.headers: list[dict] = []
        self.current: str | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.current = attrs.get("id")
            self.tables[self.current] = []
        elif tag == "tr" and self.current:
            self.tables[self.current].append([])
        elif tag in ("td", "th") and self.current:
            self.cell = []
            if tag == "th" and "data-col" in attrs:
                self.headers.append(attrs)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[self.current][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def dom(page: Path) -> Tables:
    done = chromium("--dump-dom", page.resolve().as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    parsed = Tables()
    parsed.feed(done.stdout)
    return parsed


def test_chromium_renders_the_tables_and_runs_the_script(report_dir: Path) -> None:
    page = dom(report_dir / "report.html")
    rows = {r[0]: r[1:] for r in page.tables["t-paper_table-ConvNet"] if r}
    cells = {(r["method"], r["ipc"], r["arch"]): r for r in rows_of(report_dir / "results.csv")}
    for method in ("random", NASTY):
        for i, ipc in enumerate(("1", "2")):
            r = cells[method, ipc, "ConvNet"]
            assert rows[method][i] == f"{float(r['mean']):.1f} ± {float(r['std']):.1f}"
    assert rows["Ratio (%)"] == ["0.796", "1.59"] and rows["Whole Dataset"] == ["90.5 ± 0.5"]  # one cell, colspan 2
    assert page.headers and all(h.get("tabindex") == "0" for h in page.headers), "sort.js did not run"


def test_clicking_a_header_sorts_each_block(report_dir: Path, tmp_path: Path) -> None:
    html = (report_dir / "report.html").read_text()
    before = dom(report_dir / "report.html")
    rows = [r[0] for r in before.tables["t-paper_table-MLP"] if r]
    assert rows.index(NASTY) < rows.index("dm-b") and not any(h.get("aria-sort") for h in before.headers)
    click = '<script>document.querySelector(\'#t-paper_table-MLP th[data-col="1"]\').click();</script></body>'
    (tmp_path / "clicked.html").write_text(html.replace("</body>", click))
    parsed = dom(tmp_path / "clicked.html")
    rows = [r[0] for r in parsed.tables["t-paper_table-MLP"] if r]
    # best first (dm-b), and rows stay in their group: the coreset block is still above the distillation one
    assert rows.index("dm-b") < rows.index(NASTY) and rows.index("random") < rows.index("Distillation methods")
    clicked = [h for h in parsed.headers if h.get("aria-sort")]
    assert [(h["data-col"], h["aria-sort"]) for h in clicked] == [("1", "descending")]


def test_screenshots_phone_and_desktop(report_dir: Path, tmp_path: Path) -> None:
    for name, size in (("phone", "390,844"), ("desktop", "1280,900")):
        shot = tmp_path / f"{name}.png"
        done = chromium(f"--screenshot={shot}", f"--window-size={size}", "--hide-scrollbars",
                        (report_dir / "report.html").resolve().as_uri())
        assert done.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_pdflatex_compiles_the_standalone_report(report_dir: Path, tmp_path: Path) -> None:
    exe = need("pdflatex")
    work = tmp_path / "tex"
    shutil.copytree(report_dir, work)
    done = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=work,
                          capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (work / "report.pdf").read_bytes().startswith(b"%PDF")
    log = (work / "report.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log and "Missing $" not in log
    table = (work / "latex" / "tab-paper-table-ConvNet.tex").read_text()
    assert r"dm\_v2 50\% \& \#1 \textasciitilde{}\textasciicircum{}" in table and "$\\pm$" in table


def test_pdffonts_sees_only_embedded_truetype_fonts(report_dir: Path) -> None:
    """What a venue's font check sees: poppler's pdffonts lists every font of every figure as embedded TrueType
    (Type 42), none as Type 3."""
    exe = need("pdffonts")
    pdfs = sorted((report_dir / "latex").glob("fig-*.pdf"))
    assert pdfs
    for pdf in pdfs:
        done = subprocess.run([exe, str(pdf)], capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
        rows = done.stdout.splitlines()[2:]  # below the header and its rule
        assert done.returncode == 0 and rows, done.stderr
        for row in rows:
            assert re.search(r" (CID )?TrueType +\S+ +yes ", row) and "Type 3" not in row, (pdf.name, row)


def test_the_readme_screenshot_script_renders_any_report_folder(report_dir: Path, tmp_path: Path) -> None:
    """scripts/report_screenshot.py (`make screenshot`) writes docs/report.png from a report; it takes any folder."""
    need("chromium", "chromium-browser", "google-chrome")
    out = tmp_path / "shot.png"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "report_screenshot.py"), str(report_dir), str(out),
                           "--size", "640,900"], capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (640, 900)
    missing = subprocess.run([sys.executable, str(REPO / "scripts" / "report_screenshot.py"), str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    assert missing.returncode != 0 and "no report at" in missing.stderr
