"""Each paper's Table 1, rendered from its suite's plan: every cell of the suite finds exactly the published
number of the method entry that reproduces it, from the table it should, and every number of the table that a
suite cell reproduces is found once."""

from __future__ import annotations

import pytest

from bench.config import load_suite
from bench.plan import expected_cells, make_plan, report_options
from bench.reference import PAPERS
from bench.report.aggregate import aggregate
from bench.report.views import reported_table
from conftest import REPO

# suite -> (paper, {suite entry label: the paper's column or row name it reproduces})
TABLE1 = {
    "iid-table1": ("iid2024", {"random": "Random", "herding": "Herding", "kcenter": "K-Center",
                               "forgetting": "Forgetting", "dc": "DC", "dsa": "DSA", "dm": "DM",
                               "iid-dm": "DM+Ours", "idm": "IDM", "iid-idm": "IDM+Ours"}),
    "udd-table1": ("udd2024", {"random": "Random", "herding": "Herding", "forgetting": "Forgetting", "dc": "DC",
                               "dsa": "DC", "mtt": "MTT", "IDC": "IDC", "UDD": "Ours"}),
    "nsd-table1": ("nsd2024", {"random": "Random", "herding": "Herding", "forgetting": "Forgetting", "dc": "DC",
                               "dsa": "DSA", "dm": "DM", "mtt": "MTT", "nsd": "Ours"}),
}


@pytest.mark.parametrize("name", sorted(TABLE1))
def test_every_cell_of_a_table1_suite_finds_its_own_reference(name: str) -> None:
    paper, names = TABLE1[name]
    suite = load_suite(REPO / "suites" / f"{name}.yaml")
    options = report_options(suite)
    assert options.compare_to == (paper,) and options.whole_dataset
    assert options.distill_seeds == ((0, 1, 2, 3, 4) if paper == "iid2024" else (0,)) and len(options.seeds) == 5
    table = reported_table(aggregate(expected_cells(make_plan(suite)), []), options)
    found: dict[tuple, tuple[str, str]] = {}
    for row in (r for g in table.groups for r in g.rows):
        dataset, ipc, arch, _, reported, _, source, _ = (c.text for c in row.cells)
        cell = (row.labels[0], dataset, ipc, arch)
        assert cell not in found, f"{cell} is compared with two numbers: {found[cell]} and {reported}"
        assert source == f"{PAPERS[paper].short}, Table 1", (cell, source)
        found[cell] = (row.cells[4].note, reported.replace(" ± ", "±"))

    for (label, dataset, ipc, _), (method, _) in found.items():
        whole = label.startswith("Whole Dataset")  # one row per evaluation recipe of the suite
        assert method == ("Whole Dataset" if whole else names[label]), (label, dataset, ipc)
    published = {(v.method, v.dataset, str(v.ipc or ""), v.text) for v in PAPERS[paper].tables["table1"].values
                 if v.bench is not None or v.group == "whole"}
    compared = {(m, d, i, t) for (_, d, i, _), (m, t) in found.items()}
    in_grid = {p for p in published if p[1] in suite.datasets and (p[2] == "" or int(p[2]) in suite.ipcs)}
    assert compared == in_grid, (in_grid - compared, compared - in_grid)


def test_udds_dc_column_is_dsa_where_it_prints_dsas_numbers() -> None:
    cells = {(v.dataset, v.ipc): v.bench for v in PAPERS["udd2024"].tables["table1"].values if v.method == "DC"}
    assert cells["cifar10", 10] == cells["cifar10", 50] == "dsa"
    assert {b for k, b in cells.items() if k not in {("cifar10", 10), ("cifar10", 50)}} == {"dc"}
    assert "DSA's published numbers" in PAPERS["udd2024"].tables["table1"].notes


def test_a_cell_two_tables_print_differently_is_compared_with_the_main_table_and_noted() -> None:
    """IID's Table 4 prints IDM ConvNet CIFAR-10 IPC 50 ... differently from Table 1: the report compares with
    Table 1 and its notes say what Table 4 prints."""
    suite = load_suite(REPO / "suites" / "iid-table1.yaml")
    table = reported_table(aggregate(expected_cells(make_plan(suite)), []), report_options(suite))
    (note,) = [n for n in table.notes if n.startswith("Tables of one paper disagree")]
    assert "IID (CVPR 2024), Table 3 prints 53.0±0.3 for idm on cifar10 IPC 10, ConvNet; this report compares " \
           "with IID (CVPR 2024), Table 1 (" in note


@pytest.mark.parametrize("name, deviations", [("iid-table1", {"idm-image-lr", "svhn-ipc1-batch"}),
                                              ("udd-table1", {"udd-image-lr"})])
def test_settings_that_depart_from_the_papers_text_are_named_in_the_suite_and_the_report(name: str,
                                                                                     deviations: set) -> None:
    from bench.report.views import notes
    options = report_options(load_suite(REPO / "suites" / f"{name}.yaml"))
    assert {n for n, _ in options.deviations} == deviations
    said = [n for n in notes(options) if n.startswith("Deviation '")]
    assert len(said) == len(deviations) and all("(named in the suite)" in n for n in said)


@pytest.mark.parametrize("report, problem", [("{significance: 1.5}", "significance"),
                                             ("{paper_runs: 1}", "paper_runs")])
def test_report_significance_and_paper_runs_are_checked(tmp_path, report: str, problem: str) -> None:
    from bench.config import ConfigError
    path = tmp_path / "s.yaml"
    path.write_text(f"datasets: [digits]\nipc: [1]\neval_archs: [MLP]\nmethods: [{{name: random}}]\nseeds: [0]\n"
                    f"report: {report}\n")
    with pytest.raises(ConfigError, match=f"report.{problem}"):
        load_suite(path)
