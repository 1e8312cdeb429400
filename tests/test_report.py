"""`bench report` on a real store: aggregation, every format, determinism, golden files, whole-dataset rows.

Most tests fabricate the store's records from the suite's own plan (the same keys `bench run` writes), so
they check the report path on many cells in milliseconds; one test trains for real (tiny recipe) to check
the whole-dataset stage end to end.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.config import load_suite
from bench.plan import make_plan
from bench.store import Store
from conftest import REPO, SAFETY_TIMEOUT_S, TINY_SUITE, check_golden, cli_env, write
from fakes import record

GOLDEN = Path(__file__).parent / "golden"
FIXTURES = Path(__file__).parent / "fixtures"

SUITE = TINY_SUITE + "whole_dataset: true\n"


def fake_accuracy(method: str, ipc: int, arch: str, dseed: int, seed: int) -> float:
    """Deterministic, distinct per run, and ordered: dm-b > dm > others, ConvNet > MLP, IPC 2 > IPC 1."""
    return (30.0 + {"dm": 10, "dm-b": 12}.get(method, 0) + 5 * ipc - (4 if arch == "MLP" else 0) + 0.5 * seed
            + 0.25 * dseed)


def fabricate(suite_path: Path, store_root: Path, skip: int = 0, over_budget: str | None = None) -> None:
    """Write the records (evaluations and whole-dataset runs) `bench run` would write, with fake accuracies.

    `skip` leaves out that many evaluation runs of the last cell (a partial cell); the method labelled
    `over_budget` is marked as storing more than its storage budget."""
    plan = make_plan(load_suite(suite_path))
    store = Store(store_root)
    evaluate = plan.evaluate[:len(plan.evaluate) - skip]
    for e in evaluate:
        d = e.distill
        store.write_record(record(
            e.key, fake_accuracy(d.method.label, d.ipc, e.arch, d.seed, e.seed), suite=plan.suite.name,
            group=d.method.cls.group, method=d.method.cls.name, method_label=d.method.label, dataset=d.dataset,
            ipc=d.ipc, distill_key=d.key, distill_seed=d.seed, eval_arch=e.arch, eval_seed=e.seed,
            artifact_bytes=d.ipc * 10 * (64 * 4 + 8), train_bytes=1257 * (64 * 4 + 8),
            distill_time_s=2.0 if d.method.cls.name == "dm" else 0.01, over_budget=d.method.label == over_budget))
    for t in plan.whole:
        acc = 90.0 + t.spec.params["seed"] - (3 if t.spec.arch == "MLP" else 0)
        store.write_record(record(t.key, acc, kind="whole", group="whole", suite=plan.suite.name,
                                  dataset=t.spec.dataset, eval_arch=t.spec.arch, eval_seed=t.spec.params["seed"],
                                  recipe=t.spec.params["recipe"], train_bytes=1257 * (64 * 4 + 8), wall_time_s=3.0))


def report_cli(root: Path, *args: str) -> tuple[int, str]:
    """`bench --config ROOT/bench.yaml report ROOT/tiny.yaml ARGS`; returns (exit code, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--config", str(root / "bench.yaml"), "report", str(root / "tiny.yaml"), *args])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny suite (with whole_dataset) fabricated into a store and reported once for the module's tests;
    returns the report folder. Tests that render again use their own folder."""
    root = tmp_path_factory.mktemp("reported")
    write(root / "bench.yaml", "store: results\nreports: reports\ndevice: cpu\n")
    write(root / "tiny.yaml", SUITE)
    fabricate(root / "tiny.yaml", root / "results")
    code, _ = report_cli(root)
    assert code == 0
    return root / "reports" / "tiny"


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_aggregate_numbers_and_whole_dataset_rows(reported: Path) -> None:
    rows = rows_of(reported / "results.csv")
    cells = {(r["method"], r["ipc"], r["arch"]): r for r in rows}
    assert len(rows) == 8 + 2  # 8 cells, then one Whole Dataset row per eval arch
    dm = cells["dm", "2", "MLP"]
    want = [fake_accuracy("dm", 2, "MLP", 0, s) for s in (0, 1)]
    assert float(dm["mean"]) == pytest.approx(sum(want) / 2) and float(dm["std"]) == pytest.approx(0.25)  # ddof=0
    assert dm["group"] == "distillation" and cells["random", "1", "ConvNet"]["group"] == "coreset"
    assert float(dm["ratio_pct"]) == pytest.approx(100 * 20 / 1257, abs=1e-4)
    whole = cells["Whole Dataset", "", "ConvNet"]
    assert whole["group"] == "whole" and float(whole["mean"]) == pytest.approx(90.5) and whole["n"] == "2"
    assert float(whole["std"]) == pytest.approx(0.5) and float(whole["ratio_pct"]) == 100

    data = json.loads((reported / "results.json").read_text())
    assert data["ddof"] == 0 and data["summary"] == {"complete": 8, "total": 8, "methods": ["random", "dm"],
                                                     "datasets": ["digits"]}
    assert data["cells"][-1]["method"] == "Whole Dataset" and data["cells"][-1]["ipc"] is None


def test_every_format_shows_the_same_cells(reported: Path) -> None:
    md = (reported / "table.md").read_text()
    html = (reported / "report.html").read_text()
    tex = (reported / "latex" / "tab-paper-table-ConvNet.tex").read_text()
    best = f"{(fake_accuracy('dm', 2, 'ConvNet', 0, 0) + fake_accuracy('dm', 2, 'ConvNet', 0, 1)) / 2:.1f} ± 0.2"
    assert f"**{best}**" in md and f"<b>{best}</b>" in html
    assert "\\textbf{" + best.replace(" ± ", r" $\pm$ ") + "}" in tex
    assert "| Ratio (%) | 0.796 | 1.59 |" in md  # 10 or 20 images of 1,257, as stored bytes
    assert "| dm | 0.796%, 2.0s | 1.59%, 2.0s |" in md  # the Cost table's digits
    assert "| Whole Dataset | 90.5 ± 0.5 | 90.5 ± 0.5 |" in md  # under each IPC column
    assert r"Ratio (\%)" in tex and r"\multicolumn{2}{c}{90.5 $\pm$ 0.5}" in tex  # Whole Dataset spans the IPCs
    assert "*Coresets*" in md and "*Distillation methods*" in md
    assert "Largest drop from ConvNet" in md and "4.0 (MLP)" in md
    assert "![digits, ConvNet](fig-curve-digits-ConvNet.svg)" in md and (reported / "fig-curve-digits-ConvNet.svg").exists()
    assert (reported / "latex" / "fig-curve-digits-ConvNet.pdf").read_bytes().startswith(b"%PDF")
    report_tex = (reported / "report.tex").read_text()
    assert r"\usepackage{booktabs}" in report_tex and r"\input{latex/tab-paper-table-ConvNet.tex}" in report_tex
    assert r"\includegraphics[width=\linewidth]{latex/fig-curve-digits-ConvNet.pdf}" in report_tex


def texts(svg: Path) -> list[str]:
    """The texts an SVG figure draws (matplotlib writes them as <text> elements: svg.fonttype none)."""
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg.read_text())


def test_a_curve_per_evaluation_architecture_and_a_cross_architecture_heat_map(reported: Path) -> None:
    md, tex = (reported / "table.md").read_text(), (reported / "report.tex").read_text()
    for arch in ("ConvNet", "MLP"):
        assert f"![digits, {arch}](fig-curve-digits-{arch}.svg)" in md
        assert f"digits, {arch}: accuracy vs IPC" in texts(reported / f"fig-curve-digits-{arch}.svg")
        assert f"{{latex/fig-curve-digits-{arch}.pdf}}" in tex
        assert (reported / "latex" / f"fig-curve-digits-{arch}.pdf").read_bytes().startswith(b"%PDF")
    # beside the cross-architecture tables: each method's mean on each architecture, per IPC
    cross = md.split("## Cross-architecture generalisation")[1].split("## ")[0]
    assert "![digits, cross-architecture](fig-cross-arch-digits.svg)" in cross
    drawn = texts(reported / "fig-cross-arch-digits.svg")
    assert {"IPC 1", "IPC 2", "random", "dm", "ConvNet", "MLP", "change from ConvNet (points)"} <= set(drawn)
    means = [f"{(fake_accuracy(m, ipc, arch, 0, 0) + fake_accuracy(m, ipc, arch, 0, 1)) / 2:.1f}"
             for m in ("random", "dm") for ipc in (1, 2) for arch in ("ConvNet", "MLP")]
    assert sorted(t for t in drawn if re.fullmatch(r"\d\d\.\d", t)) == sorted(means)  # the colour bar: one digit
    assert "{latex/fig-cross-arch-digits.pdf}" in tex


def font_subtypes(pdf: bytes) -> set[bytes]:
    """The subtypes of the fonts a PDF declares (matplotlib writes its font dictionaries uncompressed)."""
    return set(re.findall(rb"/Subtype /(Type0|Type1|Type3|TrueType|MMType1|CIDFontType0|CIDFontType2)\b", pdf))


def test_pdf_figures_embed_truetype_fonts_never_type3(reported: Path) -> None:
    """Venues refuse Type 3 fonts: every font of every figure is TrueType (Type 42, a CID font over an embedded
    TrueType file), Computer Modern by default, as the LaTeX report's body."""
    pdfs = sorted((reported / "latex").glob("fig-*.pdf"))
    assert len(pdfs) == 3
    for pdf in pdfs:
        data = pdf.read_bytes()
        assert b"/Type3" not in data and font_subtypes(data) == {b"Type0", b"CIDFontType2"}, pdf.name
        assert b"/FontFile2" in data and re.search(rb"/BaseFont /[A-Z]{6}\+Cmr10", data), pdf.name


def test_html_is_self_contained(reported: Path) -> None:
    html = (reported / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the page must not load anything"
    assert "<link" not in html and "<script src" not in html and "<style>" in html and "<svg" in html
    assert 'name="viewport"' in html and 'class="sortable"' in html and 'data-sort="' in html
    index = (reported.parent / "index.html").read_text()
    assert 'href="tiny/report.html"' in index and "8 / 8" in index


def files_in(folder: Path) -> dict[Path, bytes]:
    """Every file under `folder` (relative path -> bytes)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_store_gives_byte_identical_files(reported: Path) -> None:
    first = files_in(reported)
    assert len(first) >= 10
    code, _ = report_cli(reported.parents[1])
    assert code == 0 and first == files_in(reported)


def test_views_and_formats_made_in_worker_processes_are_the_same_files(reported: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A large report makes its views and formats in one forked process per core: the same bytes as in one."""
    from bench.report import render
    first = files_in(reported)
    monkeypatch.setattr(render, "available_cores", lambda: 2)
    monkeypatch.setattr(render, "PARALLEL_CELLS", 1)
    made_in: list[int] = []
    real = render.build_report
    monkeypatch.setattr(render, "build_report", lambda *a: made_in.append(a[-1]) or real(*a))
    code, _ = report_cli(reported.parents[1])
    assert code == 0 and made_in == [2] and first == files_in(reported)


@pytest.mark.parametrize("name", ["table.md", "report.html", "report.tex", "latex/tab-paper-table-ConvNet.tex",
                                  "latex/tab-cross-arch-digits-ipc1.tex", "results.csv"])
def test_golden_files(reported: Path, name: str) -> None:
    """Delete tests/golden/<file> to accept a new rendering (it is rewritten on the next run).

    Inline SVG is left out of the HTML golden file: its bytes belong to matplotlib's version, and its
    determinism is checked by test_same_store_gives_byte_identical_files."""
    produced = re.sub(r"<svg.*?</svg>", "<svg/>", (reported / name).read_text(), flags=re.S)
    check_golden(GOLDEN / name.replace("/", "__"), produced)


def test_partial_and_missing_cells(bench, workdir: Path) -> None:
    write(workdir / "tiny.yaml", SUITE.replace("whole_dataset: true\n", ""))
    fabricate(workdir / "tiny.yaml", workdir / "results", skip=1)
    write(workdir / "tiny.yaml", TINY_SUITE.replace("ipc: [1, 2]", "ipc: [1, 2, 3]"))
    code, out, _ = bench("report", "tiny.yaml")
    assert code == 0 and "(n=1/2)" in out and "–" in out and "incomplete" in out
    md = (workdir / "reports" / "tiny" / "table.md").read_text()
    assert "(n=1/2)" in md and "| – |" in md
    assert "Whole Dataset" not in md  # not asked for


def open_report(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`bench report --open` in a fresh process (Python's webbrowser reads BROWSER once per process)."""
    return subprocess.run([sys.executable, "-m", "bench.cli", "--config", str(root / "bench.yaml"), "report",
                           str(root / "tiny.yaml"), "--open"], env=env, capture_output=True, text=True,
                          timeout=SAFETY_TIMEOUT_S)


@pytest.mark.slow  # a fresh `bench report` process: 12 s measured on the shared 2-core machine (load 5)
def test_open_shows_the_page_in_the_browser_and_prints_its_path(reported: Path, tmp_path: Path) -> None:
    browser = write(tmp_path / "browser", f"#!{sys.executable}\nimport sys, pathlib\n"
                                          f"pathlib.Path({str(tmp_path / 'opened')!r}).write_text(sys.argv[1])\n")
    browser.chmod(0o755)
    done = open_report(reported.parents[1], {**cli_env(), "BROWSER": str(browser)})
    page = (reported / "report.html").resolve()
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1] == str(page) and "no web browser" not in done.stderr
    assert (tmp_path / "opened").read_text() == page.as_uri()


@pytest.mark.slow  # a fresh `bench report` process: 12 s measured on the shared 2-core machine (load 5)
def test_open_without_a_browser_says_so_and_prints_the_path(reported: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in cli_env().items() if k not in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY")}
    done = open_report(reported.parents[1], {**env, "PATH": str(tmp_path)})  # no browser on an empty PATH
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().splitlines()[-1] == str((reported / "report.html").resolve())
    assert "no web browser is registered here (set BROWSER" in done.stderr


def test_views_and_comparison_are_configurable(bench, workdir: Path) -> None:
    suite = SUITE + ("report: {views: [paper_table, reported], compare_to: iid2024, tolerance: 1.0,\n"
                     "         match: {dm: DM}}\n")
    write(workdir / "tiny.yaml", suite.replace("[digits]", "[cifar10]").replace("[1, 2]", "[10]"))
    plan = make_plan(load_suite(workdir / "tiny.yaml"))
    store = Store(workdir / "results")
    for e in plan.evaluate:  # DM on CIFAR10 IPC 10 / ConvNet: IID reports 48.5 (Table 1) and 48.9 (Table 3)
        acc = 48.9 if e.distill.method.label == "dm" else 26.0
        store.write_record(record(e.key, acc, artifact_bytes=1, train_bytes=100, distill_key=e.distill.key,
                                  distill_time_s=1.0))
    code, out, err = bench("report", "tiny.yaml")
    assert code == 0, err
    md = (workdir / "reports" / "tiny" / "table.md").read_text()
    assert "## Results" in md and "## Reproduced vs reported" in md and "## Cost" not in md
    # Δ with its 95% interval: the runs agree (std 0), so the paper's std over its 5 runs makes the width
    assert ("| dm | cifar10 | 10 | ConvNet | 48.9 ± 0.0 | 48.5 ± 0.6 | +0.4 [-0.4, +1.2] | IID (CVPR 2024), Table 1 "
            "| ok |") in md
    assert "IID (CVPR 2024), Table 3 prints 48.9±0.6 for dm on cifar10 IPC 10, ConvNet" in md  # main table compared
    assert ("| random | cifar10 | 10 | ConvNet | 26.0 ± 0.0 | 26.0 ± 1.2 | +0.0 [-1.7, +1.7] | IID (CVPR 2024), "
            "Table 1 | ok |") in md
    assert "Welch's interval of the difference, assuming the paper's std is np.std (ddof=0) over 5 runs" in md
    # the whole-dataset stage has not run: its comparison row says so rather than inventing a number
    assert "| Whole Dataset | cifar10 |  | ConvNet | – | 84.8 ± 0.1 | – |" in md
    assert "@inproceedings{iid2024" in (workdir / "reports" / "tiny" / "references.bib").read_text()


def test_outside_tolerance_is_flagged(bench, workdir: Path) -> None:
    write(workdir / "tiny.yaml", TINY_SUITE.replace("[digits]", "[cifar10]").replace("[1, 2]", "[10]")
          + "report: {compare_to: [iid2024], tolerance: 0.5, match: {dm: DM}}\n")  # dm sets iterations: 3
    plan = make_plan(load_suite(workdir / "tiny.yaml"))
    store = Store(workdir / "results")
    for e in plan.evaluate:
        store.write_record(record(e.key, 40.0, artifact_bytes=1, train_bytes=100, distill_key=e.distill.key,
                                  distill_time_s=1.0))
    assert bench("report", "tiny.yaml")[0] == 0
    md = (workdir / "reports" / "tiny" / "table.md").read_text()
    assert ("| dm | cifar10 | 10 | ConvNet | 40.0 ± 0.0 | 48.5 ± 0.6 | **-8.5 [-9.3, -7.7]** | IID (CVPR 2024), "
            "Table 1 | **outside ±0.5** |") in md  # the interval excludes 0: flagged
    html = (workdir / "reports" / "tiny" / "report.html").read_text()
    assert 'class="flag"' in html


@pytest.mark.parametrize("report_key, message", [
    ("{views: [paper_tabel]}", "unknown view 'paper_tabel'. Did you mean 'paper_table'?"),
    ("{compare_to: iid2042}", "unknown paper 'iid2042'. Did you mean 'iid2024'"),
    ("{ablation: [dm, dn]}", "no method entry is labelled 'dn'. Did you mean 'dm'?"),
    ("{tolerance: -1}", "greater than 0"),
    ("{compare_to: iid2024, match: {dm: IDM+Our}}", "no table of iid2024 has a method 'IDM+Our'. Did you mean 'IDM+Ours'"),
    ("{font: time}", "key 'report.font': Input should be 'cm', 'times' or 'sans' (got 'time')"),
    ("{fairness: {columns: [ior, lsr]}}", "key 'report.fairness.columns[1]': Input should be 'ior', 'hlr', 'lrs' or "
                                          "'ars' (got 'lsr')"),
    ("{fairness: {columns: [ior, ior]}}", "'ior' is listed twice (entries 1 and 2)"),
])
def test_report_key_errors_name_line_and_suggest(bench, workdir: Path, report_key: str, message: str) -> None:
    write(workdir / "tiny.yaml", TINY_SUITE + f"report: {report_key}\n")
    code, _, err = bench("validate", "tiny.yaml")
    assert code == 2 and "tiny.yaml, line 11" in err and message in err, err


def test_plan_has_one_whole_dataset_task_per_dataset_arch_recipe_seed(workdir: Path) -> None:
    write(workdir / "s.yaml", SUITE.replace("methods:\n", "methods:\n  - {name: dc, eval: {epochs: 5}}\n"))
    plan = make_plan(load_suite(workdir / "s.yaml"))
    # 1 data set x 2 archs x 2 recipes (4 and 5 epochs) x 2 seeds
    assert len(plan.whole) == 8 and {t.spec.kind for t in plan.whole} == {"whole_dataset"}
    assert {(t.spec.arch, t.spec.params["recipe"]["epochs"], t.spec.params["seed"]) for t in plan.whole} == {
        (a, e, s) for a in ("ConvNet", "MLP") for e in (4, 5) for s in (0, 1)}
    write(workdir / "s.yaml", TINY_SUITE)
    assert make_plan(load_suite(workdir / "s.yaml")).whole == ()


def test_every_task_key_is_the_hash_of_its_identity(workdir: Path) -> None:
    """Planning writes each evaluation's key from one JSON text per cell and architecture, with the recipe (encoded
    once) and each seed put in place: the keys are exactly those of hashing each identity whole, in every regime."""
    from bench.plan import content_key
    write(workdir / "s.yaml", SUITE.replace("methods:\n", "methods:\n  - {name: random, label: rt, eval: {labels: teacher, "
                                            "teacher_epochs: 2}}\n") + "distill_seeds: [0, 1]\n")
    plan = make_plan(load_suite(workdir / "s.yaml"))
    tasks = [*plan.experts, *plan.distill, *plan.evaluate, *plan.whole]
    assert len(plan.evaluate) == 3 * 2 * 2 * 2 * 2 and any(e.teacher for e in plan.evaluate)
    assert all(t.key == content_key(t.identity) for t in tasks) and len({t.key for t in tasks}) == len(tasks)


def test_whole_recipe_of_learned_lr() -> None:
    from bench.recipes import PRESETS
    from bench.plan import whole_recipe, whole_spec
    assert whole_recipe(PRESETS["mtt"]).lr == PRESETS["standard"].lr
    assert whole_spec("digits", "ConvNet", PRESETS["mtt"], 0) == whole_spec("digits", "ConvNet", PRESETS["standard"], 0)


@pytest.mark.slow
def test_whole_dataset_stage_trains_on_the_full_training_set(bench, workdir: Path) -> None:
    """The builder through the executor's own task function, on real digits, stored as records (no tensor
    file); then the report's row."""
    from bench.config import load_site
    from bench.executors.tasks import DatasetCache, run_task
    write(workdir / "w.yaml", "name: w\ndatasets: [digits]\nipc: [1]\neval_archs: [MLP]\nmethods: [{name: random}]\n"
                              "seeds: [0, 1]\neval: {epochs: 3, batch_size: 128}\nwhole_dataset: true\n")
    site, plan = load_site(workdir / "bench.yaml"), make_plan(load_suite(workdir / "w.yaml"))
    store, datasets = Store(site.store), DatasetCache(site.data_root, site.store / "cache")
    for task in plan.whole:
        run_task(task, store, datasets, torch.device("cpu"), lambda *a: None, "w")
    first = store.read_record(plan.whole[0].key)
    assert (first.kind, first.group, first.method, first.eval_arch) == ("whole", "whole", "whole_dataset", "MLP")
    assert first.eval_seed == 0 and first.recipe["epochs"] == 3 and first.wall_time_s > 0 and first.ipc is None
    assert first.train_bytes == 1257 * (64 * 4 + 8) and not any(store.has_artifact(t.key) for t in plan.whole)
    acc = [store.read_record(t.key).accuracy for t in plan.whole]
    assert all(60 < a <= 100 for a in acc) and acc[0] != acc[1]  # 4 passes over 1,257 digits; seeds differ
    run_task(plan.whole[0], store, datasets, torch.device("cpu"), lambda *a: None, "w")  # rerun: record kept
    assert store.read_record(plan.whole[0].key) == first
    code, out, _ = bench("report", "w.yaml")
    assert code == 0 and f"{sum(acc) / 2:.1f} ± {abs(acc[0] - acc[1]) / 2:.1f}" in out and "Whole Dataset" in out


def test_whole_dataset_artifact_of_an_older_bench_becomes_a_record_without_training(workdir: Path) -> None:
    """tests/fixtures/whole_v1.pt is a whole-dataset run as an older bench stored it (an `accuracy` tensor)."""
    from bench.executors.tasks import DatasetCache, run_task
    from bench.executors.todo import is_done
    write(workdir / "w.yaml", "name: w\ndatasets: [digits]\nipc: [1]\neval_archs: [MLP]\nmethods: [{name: random}]\n"
                              "seeds: [0]\neval: {epochs: 2}\nwhole_dataset: true\n")
    (task,) = make_plan(load_suite(workdir / "w.yaml")).whole
    store = Store(workdir / "results")
    path = store.root / "artifacts" / task.key[:2] / f"{task.key}.pt"
    path.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "whole_v1.pt", path)
    legacy = torch.load(path, weights_only=True)
    assert not is_done(task, store)
    said = run_task(task, store, DatasetCache(Path("data"), store.root / "cache"), torch.device("cpu"),
                    lambda *a: None, "w")
    rec = store.read_record(task.key)
    assert rec.accuracy == float(legacy["tensors"]["accuracy"]) and is_done(task, store)
    assert said == f": {rec.accuracy:.2f}%"
    assert rec.kind == "whole" and rec.wall_time_s == json.loads(legacy["meta"])["time_s"]  # its time: not retrained


def test_demo_suite_asks_for_whole_dataset_and_views() -> None:
    suite = load_suite(REPO / "suites" / "demo.yaml")
    assert suite.whole_dataset and suite.report.views == ("paper_table", "cross_arch", "curve", "cost")


def test_a_report_redraws_only_the_figures_whose_numbers_changed(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A figure is reused from the last report's files while what it plots is unchanged; the files are what a
    report drawing everything afresh writes; a figure file that went missing is drawn again."""
    from bench.report import plots
    monkeypatch.setattr("bench.report.render.available_cores", lambda: 1)  # draw here, where the calls are seen
    drawn: list[str] = []
    for kind in (plots.CurvePlot, plots.CrossArchPlot):
        monkeypatch.setattr(kind, "draw", lambda self, real=kind.draw: drawn.append(
            type(self).__name__ + getattr(self, "title", "")) or real(self))
    write(tmp_path / "bench.yaml", "store: results\nreports: reports\ndevice: cpu\n")
    write(tmp_path / "tiny.yaml", SUITE)
    fabricate(tmp_path / "tiny.yaml", tmp_path / "results", skip=1)  # the last cell (dm, IPC 2, MLP) lacks a run
    report = tmp_path / "reports" / "tiny"

    def figures() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in [*report.glob("fig-*.svg"), *report.glob("latex/fig-*.pdf")]}
    assert report_cli(tmp_path)[0] == 0 and len(drawn) == 3
    first, drawn[:] = figures(), []
    assert report_cli(tmp_path)[0] == 0 and drawn == [] and figures() == first
    fabricate(tmp_path / "tiny.yaml", tmp_path / "results")  # its last run arrives: MLP's numbers change
    assert report_cli(tmp_path)[0] == 0
    assert sorted(drawn) == ["CrossArchPlot", "CurvePlotdigits, MLP: accuracy vs IPC"]
    again = figures()
    assert again["fig-curve-digits-ConvNet.svg"] == first["fig-curve-digits-ConvNet.svg"]
    assert again["fig-curve-digits-MLP.svg"] != first["fig-curve-digits-MLP.svg"]
    shutil.rmtree(report)
    drawn[:] = []
    assert report_cli(tmp_path)[0] == 0 and len(drawn) == 3 and figures() == again  # afresh: the same bytes
    (report / "fig-curve-digits-ConvNet.svg").unlink()
    drawn[:] = []
    assert report_cli(tmp_path)[0] == 0 and drawn == ["CurvePlotdigits, ConvNet: accuracy vs IPC"]
    assert figures() == again


def test_read_fields_in_worker_processes_matches_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import store as store_module
    store = Store(tmp_path)
    for i in range(40):
        store.write_record(record(f"k{i:03d}", float(i), train_bytes=7 if i % 2 else None))
    keys = [f"k{i:03d}" for i in range(41)]  # the last one has no record
    fields = ("key", "accuracy", "train_bytes")
    here = store.read_fields(keys, fields)
    monkeypatch.setattr(store_module, "PARALLEL_READ", 10)  # 40 keys -> up to 4 workers
    assert store.read_fields(keys, fields) == here
    assert here[:2] == [("k000", 0.0, None), ("k001", 1.0, 7)] and len(here) == 40
    assert [r.key for r in store.read_records(keys)] == [k for k, _, _ in here]


def test_over_budget_results_are_marked(bench, workdir: Path) -> None:
    write(workdir / "tiny.yaml", TINY_SUITE)
    fabricate(workdir / "tiny.yaml", workdir / "results", over_budget="dm")
    code, out, _ = bench("report", "tiny.yaml")
    table = (workdir / "reports" / "tiny" / "table.md").read_text()
    assert code == 0 and "over the storage budget (NSD Eq. 3)" in table
    accuracy_rows = [line for line in table.splitlines() if "±" in line]
    dm_rows = [line for line in accuracy_rows if line.startswith("| dm ")]
    random_rows = [line for line in accuracy_rows if line.startswith("| random ")]
    assert dm_rows and all("†" in line for line in dm_rows) and not any("†" in line for line in random_rows)
