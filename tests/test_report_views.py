"""Views and formats on hand-made frames, and the papers' published tables rendered from the reference files."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.names import FONT_NAMES, VIEW_NAMES
from bench.records import FIELDS
from bench.reference import PAPERS, parse_value
from bench.report import latex, markdown, plots
from bench.report.aggregate import COLUMNS, reference_frame
from bench.report.html import render_html
from bench.report.inputs import RECORD_FIELDS, MethodOptions, ReportOptions
from bench.report.model import Cell, Figure, Group, Report, Row, Section, Table
from bench.report.significance import BEST, TIED, column_verdict, delta_interval, welch_p
from bench.report.render import terminal_table
from bench.report.views import (VIEWS, ablation_table, cost_table, cross_arch_table, fmt_acc, fmt_ratio, paper_table,
                                reported_table)
from conftest import REPO

# IID (CVPR 2024) Table 1 as printed in the paper (the PDF's "±\pm±" written as "±"); the test reads it
# independently of bench/reference/iid2024.yaml, so it also checks the transcription.
IID_TABLE1 = """\
Ratio (%) 0.0014 0.14 0.7 0.02 0.2 1 0.2 2 10
Random Classic 14.6±1.6 35.1±4.1 70.9±0.9 14.4±2.0 26.0±1.2 43.4±1.0 4.2±0.3 14.6±0.5 30.0±0.4
Herding [34] Classic 20.9±1.3 50.5±3.3 72.6±0.8 21.5±1.2 31.6±0.7 40.4±0.6 8.4±0.3 17.3±0.3 33.7±0.5
K-Center [27] Classic 21.0±1.5 14.0±1.3 20.1±1.4 21.5±1.3 14.7±0.9 27.0±1.4 8.4±0.3 17.3±0.2 30.5±0.3
Forgetting [30] Classic 12.1±5.6 16.8±1.2 27.2±1.5 13.5±1.2 23.3±1.0 23.3±1.1 4.5±0.3 15.1±0.2 30.5±0.4
DD [33] Arxiv’18 - - - - 36.8±1.2 - - - -
LD [2] NeurIPS’20 - - - 25.7±0.7 38.3±0.4 42.5±0.4 11.5±0.4 - -
DC [40] ICLR’21 31.2±1.4 76.1±0.6 82.3±0.3 28.3±0.5 44.9±0.5 53.9±0.5 12.8±0.3 25.2±0.3 -
DSA [37] ICML’21 27.5±1.4 79.2±0.5 84.4±0.4 28.8±0.7 52.1±0.5 60.6±0.5 13.9±0.3 32.3±0.3 42.8±0.4
KIP [21] NeurIPS’21 62.4±0.3 81.1±0.5 84.3±0.1 29.8±0.2 46.1±0.3 53.2±0.4 12.0±0.2 29.0±0.2 -
CAFE [32] CVPR’22 42.9±3.3 77.9±0.6 82.3±0.3 30.3±1.1 46.3±0.6 55.5±0.6 12.9±0.3 27.8±0.3 37.9±0.3
DCC [19] ICML’22 34.3±1.6 76.2±0.8 83.3±0.2 34.0±0.7 54.4±0.5 64.2±0.4 14.6±0.3 33.5±0.3 39.3±0.4
DataDAM [25] ICCV’23 - - - 32.0±1.2 54.2±0.8 67.0±0.4 14.5±0.5 34.8±0.5 49.4±0.3
DM [39] WACV’23 21.6±0.8 72.8±0.3 82.6±0.5 26.4±0.8 48.5±0.6 62.2±0.5 11.4±0.3 29.7±0.3 43.0±0.4
DM+Ours - - 75.7±0.3 85.3±0.2 - 55.1±0.1 65.1±0.2 - 32.2±0.5 43.6±0.3
IDM [41] CVPR’23 65.3±0.3 81.0±0.1 84.1±0.1 45.2±0.5 57.3±0.3 67.2±0.1 23.1±0.2 44.7±0.1 49.9±0.2
IDM+Ours - 66.3±0.1 82.1±0.3 85.1±0.5 47.1±0.1 59.9±0.2 69.0±0.3 24.6±0.1 45.7±0.4 51.3±0.4
Whole Dataset 95.4±0.2 84.8±0.1 56.2±0.3
"""


def paper_rows() -> tuple[list[str], dict[str, tuple[str, list[str]]], list[str]]:
    """(ratios, {method: (venue, values)}, whole) from the printed table."""
    lines = IID_TABLE1.splitlines()
    ratios = lines[0].split()[2:]
    rows = {}
    for line in lines[1:-1]:
        line = re.sub(r" \[\d+\]", "", line)
        name, venue, *values = line.split()
        rows[name] = (venue, values)
    return ratios, rows, lines[-1].split()[2:]


def shown(value: str) -> str:
    """How the report writes a printed value: '14.6±1.6' -> '14.6 ± 1.6', '-' -> '–'."""
    return "–" if value == "-" else value.replace("±", " ± ")


@pytest.fixture(scope="module")
def iid_table1():
    return paper_table(reference_frame("iid2024", "table1"), "ConvNet", "iid-table1", "IID Table 1")


def test_iid_table1_from_the_transcribed_values_alone_markdown(iid_table1) -> None:
    ratios, rows, whole = paper_rows()
    md = markdown.render_table(iid_table1)
    lines = [line.replace("**", "") for line in md.splitlines()]
    assert "| Method | Venue | svhn IPC 1 | svhn IPC 10 | svhn IPC 50 | cifar10 IPC 1 | cifar10 IPC 10 | cifar10 IPC 50 " \
           "| cifar100 IPC 1 | cifar100 IPC 10 | cifar100 IPC 50 |" in lines
    assert f"| Ratio (%) |  | {' | '.join(ratios)} |" in lines
    for name, (venue, values) in rows.items():
        assert f"| {name} | {venue} | {' | '.join(shown(v) for v in values)} |" in lines, name
    spans = [shown(w) for w in whole for _ in range(3)]  # one value under each of its data set's 3 IPC columns
    assert f"| Whole Dataset |  | {' | '.join(spans)} |" in lines
    # Bold: the best mean of each column, decided on numbers: a printed table has no runs to test.
    assert "Bold: the largest mean of its column, as the paper printed it (no runs here to test)." in lines
    for j in range(9):
        column = {n: parse_value(v[j])[0] for n, (_, v) in rows.items() if v[j] != "-"}
        best = max(column.values())
        for name, (_, values) in rows.items():
            row = next(line for line in md.splitlines() if line.startswith(f"| {name} |"))
            cell = row.strip("|").split(" | ")[2 + j].strip()
            assert cell.startswith("**") == (values[j] != "-" and column[name] == best), (name, j)


class _Rows(HTMLParser):
    """Text of every table row (th and td cells) of an HTML page, with the bold ones marked."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "b" and self.cell is not None:
            self.cell.append("*")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def test_iid_table1_html_and_latex(iid_table1) -> None:
    ratios, rows, whole = paper_rows()
    page = render_html(Report("iid", "", (Section("paper_table", "Results", tables=(iid_table1,)),), ()))
    parser = _Rows()
    parser.feed(page)
    html_rows = {r[0]: [c.lstrip("*") for c in r[1:]] for r in parser.rows if r}
    tex = latex.render_table(iid_table1)
    tex_rows = {line.split(" & ")[0]: line for line in tex.splitlines() if " & " in line}
    assert html_rows["Ratio (%)"] == ["", *ratios]
    assert tex_rows["Ratio (\\%)"] == f"Ratio (\\%) &  & {' & '.join(ratios)} \\\\"
    for name, (venue, values) in rows.items():
        assert html_rows[name] == [venue, *(shown(v) for v in values)], name
        tex_values = [shown(v).replace(" ± ", r" $\pm$ ").replace("–", "--") for v in values]
        row = re.sub(r"\\textbf\{([^}]*)\}", r"\1", tex_rows[latex.tex(name)])
        assert row == " & ".join([latex.tex(name), latex.tex(venue), *tex_values]) + r" \\", name
    assert html_rows["Whole Dataset"] == ["", *(shown(w) for w in whole)]
    assert r"\multicolumn{3}{c}{95.4 $\pm$ 0.2}" in tex_rows["Whole Dataset"]
    assert r"\toprule" in tex and r"\cmidrule(lr){3-5}" in tex and r"\bottomrule" in tex


def test_every_reference_file_loads_and_cites() -> None:
    assert set(PAPERS) == {"iid2024", "udd2024", "nsd2024"}
    for paper in PAPERS.values():
        assert paper.citation.startswith("@") and f"{{{paper.key}," in paper.citation
        for table in paper.tables.values():
            assert table.values and all(v.paper == paper.key and v.table == table.id for v in table.values)
    iid = {(v.method, v.dataset, v.ipc): v for v in PAPERS["iid2024"].tables["table1"].values}
    assert (iid["IDM+Ours", "cifar10", 10].mean, iid["IDM+Ours", "cifar10", 10].std) == (59.9, 0.2)
    assert iid["Whole Dataset", "cifar100", None].text == "56.2±0.3"
    udd = {(v.method, v.dataset, v.ipc): v for v in PAPERS["udd2024"].tables["table1"].values}
    assert udd["IDC", "mnist", 1].std is None and udd["Ours", "cifar100", 50].mean == 51.3
    assert ("MTT", "mnist", 1) not in udd  # printed as "-"
    nsd = {(v.method, v.arch): v for v in PAPERS["nsd2024"].tables["table4"].values}
    assert nsd["Ours", "AlexNet"].mean == 71.4


def frame(rows: list[dict]) -> pd.DataFrame:
    defaults = {"group": "distillation", "dataset": "digits", "ipc": 1, "arch": "ConvNet", "std": 0.5, "n": 2,
                "n_diverged": 0, "n_expected": 2, "artifact_bytes": 100, "train_bytes": 10_000, "ratio_pct": 1.0,
                "distill_time_s": 1.0, "expert_time_s": 0.0}
    out = pd.DataFrame([{**defaults, **r} for r in rows], columns=COLUMNS)
    return out.astype({"ipc": "Int64", "artifact_bytes": "Int64", "train_bytes": "Int64"})


def test_paper_table_groups_missing_ratio_range_and_ties() -> None:
    """Equal means over 2 runs each are tied (≈, no bold); a column's only result is not bold."""
    t = paper_table(frame([
        {"method": "mine", "group": "plugin", "mean": 70.0},
        {"method": "idm", "mean": 70.0, "ratio_pct": 4.0},
        {"method": "random", "group": "coreset", "mean": 40.0},
        {"method": "random", "group": "coreset", "ipc": 10, "mean": 60.0, "ratio_pct": 10.0},
    ]), "ConvNet", "t", "T")
    assert [g.title for g in t.groups] == ["Coresets", "Distillation methods", "Your methods"]
    assert t.head[0].cells[0].text == "1–4" and t.head[0].cells[1].text == "10"
    idm, mine = t.groups[1].rows[0].cells, t.groups[2].rows[0].cells
    assert idm[0].text == mine[0].text == "70.0 ± 0.5 ≈" and not idm[0].bold and not mine[0].bold
    assert t.groups[0].rows[0].cells[0].text == "40.0 ± 0.5"  # significantly below the best: unmarked
    assert idm[1].text == "–" and not idm[1].bold and t.groups[0].rows[0].cells[1].text == "60.0 ± 0.5"
    assert not t.groups[0].rows[0].cells[1].bold and t.foot == () and t.notes == ()


def test_paper_table_shows_the_fairness_columns_a_suite_names() -> None:
    """`report: {fairness: {columns: [ior, lrs]}}`: each data set and IPC spans its accuracy, IOR and LRS columns,
    from bench.report.fairness's scores (worked by hand), "–" where an ingredient is missing, empty for random
    (the baseline), and the notes define the scores and say what fills the missing ones (not ARS's, not shown)."""
    from bench.names import FAIRNESS_COLUMNS
    from bench.report import fairness
    from bench.report.views import paper_table_view

    def entry(label: str, name: str, regime: str, key: str) -> MethodOptions:
        return MethodOptions(label, name, "standard", {}, {"labels": regime}, recipe_key=key, hard_key="H" + key[1:],
                             bare_key="H2", whole="Whole Dataset")
    methods = (entry("random", "random", "hard", "H1"), entry("random (teacher)", "random", "teacher", "T1"),
               entry("DM", "dm", "hard", "H1"), entry("DM (teacher)", "dm", "teacher", "T1"),
               entry("IDM", "idm", "hard", "X1"))  # IDM: no random and no hard-label run under its recipe
    accs = {"random": 90.0, "random (teacher)": 95.0, "DM": 93.0, "DM (teacher)": 96.0, "IDM": 91.0}
    rows = frame([{"method": m, "group": "coreset" if m.startswith("random") else "distillation", "ipc": 10,
                   "mean": a, "std": 0.01} for m, a in accs.items()]
                 + [{"method": "Whole Dataset", "group": "whole", "ipc": None, "mean": 98.0, "std": 0.01}])
    options = ReportOptions(name="s", description="", datasets=("digits",), ipcs=(10,), eval_archs=("ConvNet",),
                            distill_arch="ConvNet", seeds=(0,), distill_seeds=(0,), methods=methods,
                            fairness_columns=("ior", "lrs"))
    t = paper_table_view(rows, options).tables[0]
    assert tuple(fairness.COLUMNS) == FAIRNESS_COLUMNS
    # DM: IOR 93 - 90 = 3, HLR 98 - 93 = 5, alpha = 0.5 * 0.03 - 0.5 * 0.05 = -0.01: LRS = 0.622171 / 2.350402;
    # DM (teacher): IOR 96 - 95 = 1, HLR 5 (its hard-label cell is DM's), alpha = -0.02: LRS = 0.612320 / 2.350402.
    md = markdown.render_table(t).replace("**", "")
    assert "| Method | digits IPC 10 Accuracy | digits IPC 10 IOR | digits IPC 10 LRS (%) |" in md
    for line in ("| DM | 93.0 ± 0.0 | +3.0 | 26.5 |", "| DM (teacher) | 96.0 ± 0.0 | +1.0 | 26.1 |",
                 "| IDM | 91.0 ± 0.0 | – | – |", "| random | 90.0 ± 0.0 |  |  |", "| Ratio (%) | 1 |  |  |",
                 "| Whole Dataset | 98.0 ± 0.0 |  |  |"):
        assert line in md, md
    assert "w = 0.5" in md and "– in Random, IOR:" in md and "– in HLR, LRS:" in md and "– in ARS" not in md
    tex = latex.render_table(t)
    assert r"Method & \multicolumn{3}{c}{digits IPC 10} \\" in tex and r" & Accuracy & IOR & LRS (\%) \\" in tex
    assert r"DM & 93.0 $\pm$ 0.0 & +3.0 & 26.5 \\" in tex and r"IDM & 91.0 $\pm$ 0.0 & -- & -- \\" in tex
    assert ["DM (teacher)", "96.0 ± 0.0", "+1.0", "26.1"] in [re.split(r"\s{2,}", line)
                                                             for line in terminal_table(t).splitlines()]
    assert 'data-sort="0.260517"' in render_html(Report("s", "", (Section("p", "P", tables=(t,)),), ()))
    plain = paper_table_view(rows, ReportOptions(**{**options.__dict__, "fairness_columns": ()})).tables[0]
    assert plain.columns == ("IPC 10",) and plain.notes == ()


def test_cross_arch_largest_drop_from_the_distillation_arch() -> None:
    t = cross_arch_table(frame([
        {"method": "dm", "arch": "ConvNet", "mean": 60.0}, {"method": "dm", "arch": "AlexNet", "mean": 50.0},
        {"method": "dm", "arch": "ResNet18", "mean": 45.5}, {"method": "idm", "arch": "ConvNet", "mean": 62.0},
        {"method": "idm", "arch": "AlexNet", "mean": 61.0},
    ]), "digits", 1, "ConvNet", "x", "X")
    assert t.columns == ("ConvNet (distill)", "AlexNet", "ResNet18", "Largest drop from ConvNet")
    dm, idm = t.groups[0].rows
    assert dm.cells[-1].text == "14.5 (ResNet18)" and idm.cells[-1].text == "1.0 (AlexNet)"
    assert idm.cells[2].text == "–" and dm.cells[2].text == "45.5 ± 0.5"  # ResNet18: one result, not bold
    assert idm.cells[1].bold and not dm.cells[1].bold  # AlexNet: 61 vs 50, p = 0.004 over 2 runs each
    assert idm.cells[0].text == "62.0 ± 0.5 ≈" and dm.cells[0].text == "60.0 ± 0.5 ≈"  # 62 vs 60: p = 0.11


def test_ablation_differences_to_the_baseline() -> None:
    rows = [{"method": "base", "mean": 48.5}, {"method": "+cc", "mean": 52.2}, {"method": "both", "mean": 55.1},
            {"method": "other", "mean": 99.0}]
    t = ablation_table(frame(rows), ["base", "+cc", "both"], "ConvNet", "a", "A")
    texts = [r.cells[0].text for r in t.groups[0].rows]  # 55.1 vs 52.2 over 2 runs each: p = 0.055, a tie
    assert texts == ["48.5 ± 0.5", "52.2 ± 0.5 (+3.7) ≈", "55.1 ± 0.5 (+6.6) ≈"]
    t = ablation_table(frame([{**r, "n": 5, "n_expected": 5} for r in rows]), ["base", "+cc", "both"], "ConvNet",
                       "a", "A")
    assert [r.cells[0].text for r in t.groups[0].rows][2] == "55.1 ± 0.5 (+6.6)" and t.groups[0].rows[2].cells[0].bold


def cell(mean: float, std: float = 0.5, n: int = 5, n_expected: int = 5) -> SimpleNamespace:
    """One aggregated cell, as `column_verdict` and `welch_p` read it."""
    return SimpleNamespace(mean=mean, std=std, n=n, n_expected=n_expected)


def test_welch_p_from_an_aggregate_is_the_test_on_its_runs() -> None:
    """The ddof=0 std of the aggregate is turned into the sample std: the same p as scipy on the runs."""
    a, b = np.array([60.1, 61.3, 59.8, 60.6, 62.0]), np.array([58.9, 60.2, 59.1])
    agg = [cell(x.mean(), x.std(ddof=0), len(x)) for x in (a, b)]
    assert welch_p(*agg) == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-12)
    assert np.isnan(welch_p(cell(60.0, 0.0, 1), agg[1]))  # one run: no variance, no test
    assert welch_p(cell(60.0, 0.0), cell(59.0, 0.0)) == 0.0 and welch_p(cell(60.0, 0.0), cell(60.0, 0.0)) == 1.0


def test_a_clear_win_is_bold_and_overlapping_runs_are_tied() -> None:
    assert column_verdict({"a": cell(60.0), "b": cell(50.0), "c": cell(40.0)}) == {"a": BEST}
    # 60.3 vs 60.0 ± 1 over 5 runs cannot be told apart; 50 can, so it is unmarked
    assert column_verdict({"a": cell(60.0, 1.0), "b": cell(60.3, 1.0), "c": cell(50.0)}) == {"b": TIED, "a": TIED}
    assert column_verdict({"a": cell(60.0), "b": cell(59.0)}, level=0.05) == {"a": BEST}  # p = 0.02
    assert column_verdict({"a": cell(60.0), "b": cell(59.0)}, level=0.01) == {"a": TIED, "b": TIED}
    assert column_verdict({"a": cell(60.0)}) == {} and column_verdict({"a": cell(float("nan"), n=0)}) == {}


def test_one_run_and_partial_cells_are_never_bold() -> None:
    assert column_verdict({"a": cell(70.0, 0.0, 1), "b": cell(50.0)}) == {}  # the best cannot be tested
    # the runner-up cannot be tested: no bold; it is not tied either, and the others are clearly below
    assert column_verdict({"a": cell(70.0), "b": cell(69.0, 0.0, 1), "c": cell(50.0)}) == {}
    assert column_verdict({"a": cell(60.0, n=3), "b": cell(50.0)}) == {}  # 3 of its 5 runs: a clear win, not bold
    assert column_verdict({"a": cell(60.2, n=3), "b": cell(60.0)}) == {"a": TIED, "b": TIED}
    t = paper_table(frame([{"method": "a", "mean": 60.0, "n": 3, "n_expected": 5},
                           {"method": "b", "mean": 50.0, "n": 5, "n_expected": 5}]), "ConvNet", "t", "T")
    assert [r.cells[0].text for r in t.groups[0].rows] == ["60.0 ± 0.5 (n=3/5)", "50.0 ± 0.5"]
    assert not any(r.cells[0].bold for r in t.groups[0].rows)


def test_ties_and_bold_render_in_every_format() -> None:
    t = paper_table(frame([{"method": "a", "mean": 70.0}, {"method": "b", "mean": 70.2},
                           {"method": "a", "ipc": 10, "mean": 80.0}, {"method": "b", "ipc": 10, "mean": 60.0}]),
                    "ConvNet", "t", "T")
    md = markdown.render_table(t)
    assert "| a | 70.0 ± 0.5 ≈ | **80.0 ± 0.5** |" in md and "| b | 70.2 ± 0.5 ≈ | 60.0 ± 0.5 |" in md
    assert r"a & 70.0 $\pm$ 0.5 $\approx$ & \textbf{80.0 $\pm$ 0.5} \\" in latex.render_table(t)
    page = render_html(Report("r", "", (Section("paper_table", "Results", tables=(t,)),), ()))
    assert ">70.0 ± 0.5 ≈</td>" in page and "<b>80.0 ± 0.5</b>" in page


def test_whole_row_ratio_partial_and_single_runs_in_every_format() -> None:
    """The Whole Dataset value sits under every IPC column, the Ratio row has the Cost table's digits, a partial
    cell says n=k/N and is never bold (though it beats the rest clearly), one run says n=1 (not "± 0.0")."""
    small, large = 100 * 10 / 1257, 100 * 100 / 1257  # 10 and 100 images of 1,257: 0.796% and 7.96%
    f = frame([{"method": "a", "mean": 60.0, "n": 4, "n_expected": 5, "ratio_pct": small},
               {"method": "b", "mean": 50.0, "n": 5, "n_expected": 5, "ratio_pct": small},
               {"method": "a", "ipc": 10, "mean": 80.0, "std": 0.0, "n": 1, "n_expected": 1, "ratio_pct": large},
               {"method": "b", "ipc": 10, "mean": 70.0, "n": 3, "n_diverged": 2, "n_expected": 5, "ratio_pct": large},
               {"method": "Whole Dataset", "group": "whole", "ipc": None, "mean": 95.0, "std": 0.0, "n": 1,
                "n_expected": 1}])
    t = paper_table(f, "ConvNet", "t", "T")
    md = markdown.render_table(t)
    assert "| Ratio (%) | 0.796 | 7.96 |" in md and "| Whole Dataset | 95.0 (n=1) | 95.0 (n=1) |" in md
    assert "| a | 60.0 ± 0.5 (n=4/5) | 80.0 (n=1) |" in md and "**" not in md.split("\n", 1)[1]
    assert "| b | 50.0 ± 0.5 | 70.0 ± 0.5 (n=3/5, 2 diverged) |" in md
    assert "| a | 0.796%, 1.0s | 7.96%, 1.0s |" in markdown.render_table(cost_table(f))
    text = terminal_table(t)
    assert re.search(r"\nWhole Dataset +95\.0 \(n=1\) +95\.0 \(n=1\)\n", text + "\n")
    assert re.search(r"\nRatio \(%\) +0\.796 +7\.96\n", text)
    tex = latex.render_table(t)
    assert r"Whole Dataset & \multicolumn{2}{c}{95.0 (n=1)} \\" in tex and r"Ratio (\%) & 0.796 & 7.96 \\" in tex
    assert r"a & 60.0 $\pm$ 0.5 (n=4/5) & 80.0 (n=1) \\" in tex and r"\textbf" not in tex
    page = render_html(Report("r", "", (Section("paper_table", "Results", tables=(t,)),), ()))
    assert '<td colspan="2" data-sort="95.0">95.0 (n=1)</td>' in page and "<b>" not in page
    assert ">60.0 ± 0.5 (n=4/5)</td>" in page and ">80.0 (n=1)</td>" in page


def test_a_printed_table_bolds_its_largest_mean() -> None:
    """A paper's own table (`reference_frame`: n_expected = 0, no runs) keeps the paper's bold."""
    printed = {"a": cell(60.0, float("nan"), 0, 0), "b": cell(60.0, 0.1, 0, 0), "c": cell(59.9, 0.1, 0, 0)}
    assert column_verdict(printed) == {"a": BEST, "b": BEST}


def test_delta_interval_by_hand() -> None:
    # runs 50, 52, 54 (std 1.633 with ddof=0, 2 with ddof=1) against a bare 50.0: 2 ± t(0.975, 2) * 2 / sqrt(3),
    # t(0.975, 2) = 4.3027 from a t table
    lo, hi = delta_interval(52.0, float(np.std([50, 52, 54])), 3, 50.0, None, 5)
    assert (lo, hi) == pytest.approx((2 - 4.302653 * 2 / 3 ** 0.5, 2 + 4.302653 * 2 / 3 ** 0.5), abs=1e-5)
    # 5 runs with std 1.0 (ddof=0) against a paper's 50.0 ± 1.0 over 5 runs: each mean's variance is
    # 1.0 * 5/4 / 5 = 0.25, df = 0.5² / (2 * 0.25² / 4) = 8, t(0.975, 8) = 2.306004
    lo, hi = delta_interval(52.0, 1.0, 5, 50.0, 1.0, 5)
    assert (lo, hi) == pytest.approx((2 - 2.306004 * 0.5 ** 0.5, 2 + 2.306004 * 0.5 ** 0.5), abs=1e-5)
    assert delta_interval(52.0, 0.0, 1, 50.0, 1.0, 5) is None and delta_interval(52.0, 0.0, 4, 50.0, 0.0, 5) == (2, 2)


def test_reported_status_tells_outside_tolerance_from_noise() -> None:
    """IID Table 1 prints DM on CIFAR-10 IPC 10 / ConvNet as 48.5 ± 0.6 (5 runs)."""
    method = MethodOptions(label="dm", name="dm", preset="standard", params={}, recipe={})
    options = ReportOptions(name="s", description="", datasets=("cifar10",), ipcs=(10,), eval_archs=("ConvNet",),
                            distill_arch="ConvNet", seeds=(0,), distill_seeds=(0,), methods=(method,),
                            compare_to=("iid2024",), match={"dm": "DM"})
    t = reported_table(frame([
        {"method": "dm", "dataset": "cifar10", "ipc": 10, "mean": 48.9, "n": 10, "n_expected": 10},  # |Δ| = 0.4
        {"method": "dm", "dataset": "cifar10", "ipc": 10, "mean": 50.0, "std": 3.0, "n": 3, "n_expected": 3},
        {"method": "dm", "dataset": "cifar10", "ipc": 10, "mean": 40.0, "n": 10, "n_expected": 10},
        {"method": "dm", "dataset": "cifar10", "ipc": 10, "mean": 50.0, "std": 0.0, "n": 1, "n_expected": 1},
    ]), options)
    rows = [(r.cells[5], r.cells[7]) for r in t.groups[0].rows if r.cells[6].text == "IID (CVPR 2024), Table 1"]
    assert [(d.text, s.text, d.flag, s.flag) for d, s in rows] == [
        ("+0.4 [-0.4, +1.2]", "ok", False, False),  # the paper's std over 5 runs is most of the width
        ("+1.5 [-7.4, +10.4]", "within the noise", False, False),  # |Δ| > 1, but 3 runs spread by ± 3
        ("-8.5 [-9.3, -7.7]", "outside ±1", True, True),
        ("+1.5", "outside ±1", True, True)]  # one run: no interval, so the tolerance alone decides


def test_formatting_helpers() -> None:
    assert fmt_acc(48.54, 0.61) == "48.5 ± 0.6" and fmt_acc(94.2, float("nan")) == "94.2"
    assert fmt_acc(float("nan"), float("nan")) == "–" and fmt_acc(50, 1, 3, 5) == "50.0 ± 1.0 (n=3/5)"
    assert fmt_acc(50, 1, 3, 5, diverged=2) == "50.0 ± 1.0 (n=3/5, 2 diverged)"
    assert fmt_acc(float("nan"), float("nan"), 0, 5, diverged=5) == "diverged (5/5)"
    assert fmt_acc(50, 0, 1, 1) == "50.0 (n=1)" and fmt_acc(50, 0, 1, 5) == "50.0 (n=1/5)"  # never "± 0.0"
    assert fmt_acc(50, 0, 1, 3, diverged=2) == "50.0 (n=1/3, 2 diverged)"
    assert [fmt_ratio(x) for x in (0.0014, 0.14, 0.7, 1.0, 2.0, 10.0, 100.0)] == [
        "0.0014", "0.14", "0.7", "1", "2", "10", "100"]  # a paper's printed ratios, as printed
    assert [fmt_ratio(x) for x in (100 * 10 / 1257, 100 * 100 / 1257, 1.23456e-5)] == ["0.796", "7.96", "0.0000123"]
    assert latex.tex("a_b 50% & #1 ~x^2 {y} ± –") == (
        r"a\_b 50\% \& \#1 \textasciitilde{}x\textasciicircum{}2 \{y\} $\pm$ --")


def test_the_view_registry_has_the_names_config_accepts() -> None:
    assert tuple(VIEWS) == VIEW_NAMES and set(RECORD_FIELDS) <= FIELDS and tuple(plots.FONTS) == FONT_NAMES


@pytest.mark.parametrize("font, embedded", [("cm", b"Cmr10"), ("times", b"STIXGeneral-Regular"),
                                            ("sans", b"DejaVuSans")])
def test_report_font_switch_embeds_that_truetype_font(font: str, embedded: bytes) -> None:
    """`report: {font: ...}` picks the figures' typeface; each is embedded as TrueType, with fallbacks for what it
    lacks (Computer Modern has no Greek: STIX draws it, still TrueType)."""
    rows = frame([{"method": "dm-α", "mean": 40.0}, {"method": "dm-α", "ipc": 10, "mean": 60.0, "artifact_bytes": 1000},
                  {"method": "dm-α", "arch": "MLP", "mean": 35.0}])
    for fig in (plots.curve(rows, "digits", "ConvNet", "c", font),
                plots.cross_arch(rows, "digits", [1, 10], ["ConvNet", "MLP"], "ConvNet", ["dm-α"], "x", font)):
        _, pdf = fig.plot.draw()
        names = re.findall(rb"/BaseFont /[A-Z]{6}\+([\w-]+)", pdf)
        assert embedded in names and b"/Type3" not in pdf and b"/FontFile2" in pdf
        assert font != "cm" or b"STIXGeneral-Regular" in names  # the α


def modules_after(code: str) -> set[str]:
    """The bench modules a fresh interpreter has imported after running `code`."""
    code += "\nimport sys; print(' '.join(m for m in sys.modules if m.startswith('bench')))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_report_imports_nothing_above_it_and_config_imports_no_report() -> None:
    """The report's inputs are records and plain data: not config, plan, store, training code or methods."""
    report = modules_after("import bench.report.render, bench.report.aggregate, bench.report.plots")
    above = ("bench.config", "bench.plan", "bench.store", "bench.train", "bench.whole", "bench.methods",
             "bench.experts", "bench.executors")
    assert not {m for m in report if m.startswith(above)}, report
    config = modules_after("from bench.config import load_suite; load_suite(__import__('pathlib').Path("
                           "'suites/demo.yaml'))")
    assert not {m for m in config if m.startswith("bench.report")}, config


def test_markdown_figure_titles_and_captions_are_escaped() -> None:
    """A method label in a caption (runs that diverged) is written literally, not as table syntax or HTML."""
    fig = Figure("c", "dm <b>|x</b>", plot=None, caption="Runs of dm|<i>new</i> diverged.")
    text = markdown.render_markdown(Report("r", "", (Section("curve", "Curves", figures=(fig,)),), ()), {"c": "c.svg"})
    assert "![dm &lt;b&gt;\\|x&lt;/b&gt;](c.svg)" in text and "*Runs of dm\\|&lt;i&gt;new&lt;/i&gt; diverged.*" in text


def test_the_terminal_table_titles_each_group_as_the_other_formats_do() -> None:
    def row(method: str, mean: str) -> Row:
        return Row((method,), (Cell(mean),))
    t = Table(key="t", title="T", label_columns=("Method",), columns=("IPC 1",),
              groups=(Group("Coresets", (row("herding", "20.0"),)), Group("Distillation", (row("DM", "26.0"),)),
                      Group("", (row("mine", "30.0"),))))
    lines = [re.split(r"\s{2,}", line.rstrip()) for line in terminal_table(t).splitlines()]
    assert lines[3:] == [["Coresets"], ["herding", "20.0"], ["Distillation"], ["DM", "26.0"], ["mine", "30.0"]], lines
