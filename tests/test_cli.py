"""The CLI as a user runs it: plan, run, rerun for free, report files; kill -9 mid-suite and resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, SAFETY_TIMEOUT_S, TINY_SUITE, cli_env, write


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_dry_run_plans_one_artifact_per_method_and_ipc(bench, workdir: Path) -> None:
    write(workdir / "tiny.yaml", TINY_SUITE)
    code, out, _ = bench("run", "tiny.yaml", "--dry-run")
    # 2 methods x 2 IPCs = 4 artifacts, each evaluated on 2 archs x 2 seeds = 16 evaluations.
    assert code == 0 and "8 cells -> 20 tasks, 0 already in the store" in out
    assert "(0 expert, 0 whole, 4 distill, 16 evaluate)" in out
    assert out.count("  distill ") == 4 and out.count("  evaluate ") == 16
    assert not (workdir / "results").exists(), "a dry run writes nothing"


def test_run_rerun_and_report(bench, workdir: Path) -> None:
    write(workdir / "tiny.yaml", TINY_SUITE)
    code, out, err = bench("run", "tiny.yaml")
    assert code == 0 and "done: 20 task(s) ran" in out
    assert "[20/20]" in err and "ETA" in err

    records = list((workdir / "results" / "records").rglob("*.json"))
    assert len(records) == 16
    rec = json.loads(records[0].read_text())
    for field in ("method", "params", "params_hash", "dataset", "ipc", "artifact_bytes", "distill_arch", "eval_arch",
                  "recipe", "recipe_hash", "distill_seed", "eval_seed", "accuracy", "wall_time_s", "device",
                  "versions", "git_commit", "job_id"):
        assert field in rec, field
    assert rec["recipe"]["epochs"] == 4 and rec["device"] == "cpu" and 0 <= rec["accuracy"] <= 100
    assert rec["artifact_bytes"] == rec["ipc"] * 10 * (64 * 4 + 8)

    code, out, _ = bench("run", "tiny.yaml")
    assert code == 0 and "20 already in the store" in out and "0 to run" in out and "done: 0 task(s) ran" in out

    code, out, _ = bench("report", "tiny.yaml")
    assert code == 0 and "Evaluated on ConvNet" in out and "digits IPC 2" in out
    rows = read_csv(workdir / "reports" / "tiny" / "results.csv")
    assert [(r["method"], r["ipc"], r["arch"]) for r in rows] == [
        (m, i, a) for m in ("random", "dm") for i in ("1", "2") for a in ("ConvNet", "MLP")]
    by_key = {(r["method"], r["ipc"], r["arch"]): r for r in rows}
    accs = [json.loads(p.read_text()) for p in records]
    want = [r["accuracy"] for r in accs if (r["method"], r["ipc"], r["eval_arch"]) == ("dm", 1, "MLP")]
    row = by_key[("dm", "1", "MLP")]
    assert row["n"] == "2" and float(row["mean"]) == pytest.approx(sum(want) / 2, abs=1e-3)
    assert float(row["std"]) == pytest.approx(abs(want[0] - want[1]) / 2, abs=1e-3)  # ddof=0
    table = (workdir / "reports" / "tiny" / "table.md").read_text()
    assert "| Method" in table and "ddof=0" in table and "4 epochs" in table


def test_report_marks_missing_cells(bench, workdir: Path) -> None:
    write(workdir / "tiny.yaml", TINY_SUITE.replace("ipc: [1, 2]", "ipc: [1]"))
    assert bench("run", "tiny.yaml")[0] == 0
    write(workdir / "tiny.yaml", TINY_SUITE.replace("ipc: [1, 2]", "ipc: [1, 2]").replace("seeds: [0, 1]",
                                                                                            "seeds: [0, 1, 2]"))
    code, out, _ = bench("report", "tiny.yaml")
    assert code == 0 and "(n=2/3)" in out and "–" in out and "incomplete" in out
    rows = read_csv(workdir / "reports" / "tiny" / "results.csv")
    assert {r["n"] for r in rows if r["ipc"] == "2"} == {"0"} and all(r["mean"] == "" for r in rows if r["ipc"] == "2")


def test_changing_a_method_param_reruns_only_that_method(bench, workdir: Path) -> None:
    write(workdir / "tiny.yaml", TINY_SUITE)
    bench("run", "tiny.yaml")
    write(workdir / "tiny.yaml", TINY_SUITE.replace("{iterations: 3}", "{iterations: 4}"))
    code, out, _ = bench("run", "tiny.yaml", "--dry-run")
    assert "10 already in the store" in out and "(0 expert, 0 whole, 2 distill, 8 evaluate)" in out


def test_missing_data_set_is_a_clear_error(bench, workdir: Path) -> None:
    write(workdir / "c.yaml", TINY_SUITE.replace("[digits]", "[cifar10]").replace("[1, 2]", "[1]"))
    code, _, err = bench("run", "c.yaml")
    assert code == 2 and "cifar-10-batches-py" in err and "data_root" in err and "Traceback" not in err


def test_failing_task_is_reported_and_the_rest_goes_on(bench, workdir: Path, monkeypatch) -> None:
    from bench.methods.dm import DM

    def broken(self, ctx):
        raise RuntimeError("boom in dm")

    monkeypatch.setattr(DM, "distill", broken)
    write(workdir / "tiny.yaml", TINY_SUITE)
    code, _, err = bench("run", "tiny.yaml")
    assert code == 1 and "RuntimeError: boom in dm" in err and "FAILED distill dm" in err
    assert "8 task(s) failed" not in err and "10 task(s) failed" in err  # 2 distill + their 8 evaluations
    assert len(list((workdir / "results" / "records").rglob("*.json"))) == 8  # random's cells are complete


GATE = """\
from pathlib import Path
import time

from bench.methods import Method
from bench.methods.base import SyntheticSet, class_labels, sample_per_class


class Gate(Method):
    \"\"\"Random images, once the test opens the gate: the run is provably alive when it is killed.\"\"\"

    name = "gate"
    description = "waits for the file gate.open"
    uses_network = False

    def distill(self, ctx):
        Path("gate.started").touch()
        while not Path("gate.open").exists():
            time.sleep(0.05)
        images = sample_per_class(ctx.real_per_class(), ctx.ipc, ctx.generator())
        return SyntheticSet(images.cpu(), class_labels(ctx.dataset.spec.num_classes, ctx.ipc))
"""


def start_at_gate(workdir: Path, suite: str, *args: str) -> tuple[subprocess.Popen, list[str], dict]:
    """Start `bench run SUITE ARGS` (with the gate plugin importable) and return once it waits at the gate: a
    state, whatever the machine's speed. The process, its command and its environment."""
    cmd = [sys.executable, "-m", "bench.cli", "run", suite, *args]
    env = {**cli_env(), "PYTHONPATH": str(workdir)}
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + SAFETY_TIMEOUT_S
    while not (workdir / "gate.started").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the run never reached the gate"
        time.sleep(0.05)
    return proc, cmd, env


@pytest.mark.slow
def test_sigkill_mid_suite_then_rerun_completes_without_duplicates(workdir: Path) -> None:
    """Killed while it waits at a gate after finishing random's and dm's cells (a state the test waits
    for, whatever the machine's speed), the rerun keeps every finished task and computes the rest once."""
    write(workdir / "gate.py", GATE)
    write(workdir / "tiny.yaml", TINY_SUITE.replace("    params: {iterations: 3}\n",
                                                      "    params: {iterations: 3}\n  - entry: gate:Gate\n"))
    proc, cmd, env = start_at_gate(workdir, "tiny.yaml")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    records = workdir / "results" / "records"
    assert len(list(records.rglob("*.json"))) == 16, "random's and dm's 16 evaluations finished before the gate"

    (workdir / "gate.open").touch()
    rerun = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stderr
    assert "20 already in the store" in rerun.stdout, "finished work before the kill is kept, not recomputed"
    assert "[10/10]" in rerun.stderr  # gate's 2 artifacts and 8 evaluations, each once

    recs = [json.loads(p.read_text()) for p in records.rglob("*.json")]  # every record parses
    assert len(recs) == 24 and len({r["key"] for r in recs}) == 24
    assert not list((workdir / "results").rglob("*.tmp")), "no partial files"
    report = subprocess.run([sys.executable, "-m", "bench.cli", "report", "tiny.yaml"], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    assert report.returncode == 0, report.stderr
    rows = read_csv(workdir / "reports" / "tiny" / "results.csv")
    assert len(rows) == 12 and all(r["n"] == r["n_expected"] == "2" for r in rows)


def test_two_runs_share_a_suite_and_one_takes_over_from_the_other_killed(workdir: Path) -> None:
    """Run A holds the gate's distillation (its claim); run B, started on the same store, does the other tasks,
    waits for the gate, and once A is killed with -9 takes its claim over: every task is computed once."""
    write(workdir / "gate.py", GATE)
    write(workdir / "s.yaml", """\
        datasets: [digits]
        ipc: [1]
        eval_archs: [MLP]
        methods: [{entry: "gate:Gate"}, {name: random}]
        seeds: [0, 1]
        eval: {epochs: 2}
        """)
    first, cmd, env = start_at_gate(workdir, "s.yaml")
    second = None
    try:
        second = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        lines = []
        while not any("waiting for 3 task(s) that another run is computing (held by pid" in x for x in lines):
            line = second.stderr.readline()
            assert line, "".join(lines)  # run B ended instead of waiting
            lines.append(line)
        assert sum("evaluate random" in x for x in lines) == 2, "B did the tasks A did not hold"
        status = subprocess.run([sys.executable, "-m", "bench.cli", "status", "s.yaml"], cwd=workdir, env=env,
                                capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
        assert f"running distill gate digits ipc=1 seed=0: pid {first.pid} on" in status.stdout, status.stdout
        first.kill()
        first.wait()
        (workdir / "gate.open").touch()
        out, err = second.communicate(timeout=SAFETY_TIMEOUT_S)
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
                proc.wait()
        first.stderr.close()
    err = "".join(lines) + err
    assert second.returncode == 0 and "suite complete" in out, err
    assert "taking over task" in err and "from a holder that is gone (pid" in err
    assert err.count("evaluate gate") == 2 and err.count("] distill gate") == 1
    keys = [json.loads(p.read_text())["key"] for p in (workdir / "results" / "records").rglob("*.json")]
    assert len(keys) == len(set(keys)) == 4
    assert not list((workdir / "results" / "claims").rglob("*.claim")), "every claim is released"


@pytest.mark.slow
def test_demo_suite_dm_beats_random_at_ipc_1(workdir: Path) -> None:
    """The README's promise for `make demo`, checked on the shipped suite."""
    for args in (["run", str(REPO / "suites" / "demo.yaml")], ["report", str(REPO / "suites" / "demo.yaml")]):
        done = subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=workdir, env=cli_env(),
                              capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
        assert done.returncode == 0, done.stderr[-2000:]
    csv_rows = read_csv(workdir / "reports" / "demo" / "results.csv")
    rows = {(r["method"], r["ipc"], r["arch"]): r for r in csv_rows if r["group"] != "whole"}
    assert len(rows) == 8 and all(r["n"] == "5" for r in rows.values())
    whole = {r["arch"]: r for r in csv_rows if r["group"] == "whole"}
    assert set(whole) == {"ConvNet", "MLP"} and all(r["n"] == "2" for r in whole.values()), "Whole Dataset row"
    for arch in ("ConvNet", "MLP"):
        assert float(rows[("dm", "1", arch)]["mean"]) >= float(rows[("random", "1", arch)]["mean"]) + 10


BROKEN = """\
import torch

from bench.methods import Method, Params, SyntheticSet


class BrokenParams(Params):
    fault: str


class Broken(Method):
    \"\"\"Returns a set with one `fault`, as a buggy plugin would.\"\"\"

    name = "broken"
    description = "returns a malformed set"
    uses_network = False
    Params = BrokenParams

    def distill(self, ctx):
        x = torch.zeros(10 * ctx.ipc, 1, 8, 8)
        y = torch.arange(10).repeat_interleave(ctx.ipc)
        fault = self.params.fault
        if fault == "nan":
            x[0, 0, 0, 0] = float("nan")
        elif fault == "label":
            y[-1] = 105
        elif fault == "shape":
            x = torch.zeros(10 * ctx.ipc, 64)
        elif fault == "float-labels":
            y = y.float()
        elif fault == "ipc":
            x, y = x[1:], y[1:]
        return SyntheticSet(x, y)
"""


@pytest.mark.parametrize("fault, problem", [
    ("nan", "the stored tensor 'images' holds NaN or Inf values"),
    ("label", "labels span 0..105, outside digits's classes 0..9"),
    ("shape", "must be a float tensor of shape (N, 1, 8, 8) for digits, got torch.float32 (10, 64)"),
    ("float-labels", "the labels must be one int64 class index per training image"),
    ("ipc", "IPC 1 means 1 image(s) of each of the 10 classes, got [0, 1, 1"),
])
def test_a_malformed_set_is_refused_before_it_is_stored(bench, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                        fault: str, problem: str) -> None:
    write(workdir / "broken.py", BROKEN)
    monkeypatch.syspath_prepend(str(workdir))
    write(workdir / "s.yaml", f"""\
        datasets: [digits]
        ipc: [1]
        eval_archs: [MLP]
        methods: [{{entry: "broken:Broken", params: {{fault: {fault}}}}}]
        seeds: [0]
        eval: {{epochs: 1}}
        """)
    code, _, err = bench("run", "s.yaml")
    assert code == 1 and f"broken ('broken', params {{'fault': '{fault}'}}) returned a synthetic set that cannot " \
                          f"be stored for digits at IPC 1" in err and problem in err, err
    assert not list((workdir / "results").rglob("artifacts/*/*.pt")), "nothing is stored"


def test_a_diverged_distillation_is_refused_naming_the_method(bench, workdir: Path) -> None:
    write(workdir / "s.yaml", """\
        datasets: [digits]
        ipc: [1]
        eval_archs: [MLP]
        methods: [{name: dm, params: {iterations: 2, lr_img: 1.0e+30}}]
        seeds: [0]
        eval: {epochs: 1}
        """)
    code, _, err = bench("run", "s.yaml")
    assert code == 1 and "dm ('dm', params {" in err and "'lr_img': 1e+30" in err
    assert "the stored tensor 'images' holds NaN or Inf values (the distillation diverged: lower its learning " \
           "rate)" in err


def test_a_diverged_evaluation_is_recorded_as_diverged_not_as_an_accuracy(bench, workdir: Path) -> None:
    """An eval lr of 1e8 makes the loss NaN: each run is stored as diverged, done (a rerun does not redo it),
    shown as "diverged" with a count in every format and left out of the means."""
    write(workdir / "s.yaml", """\
        datasets: [digits]
        ipc: [1]
        eval_archs: [MLP]
        methods: [{name: random}]
        seeds: [0, 1]
        eval: {epochs: 2, lr: 1.0e+8}
        """)
    code, out, err = bench("run", "s.yaml")
    assert code == 0 and err.count(": diverged (the training loss became nan in epoch 3/3 (lr 100000000.0))") == 2, err
    records = [json.loads(p.read_text()) for p in (workdir / "results" / "records").rglob("*.json")]
    assert [r["accuracy"] for r in records] == [None, None] and all("lr 100000000.0" in r["diverged"] for r in records)
    assert "0 to run" in bench("run", "s.yaml")[1]
    code, out, _ = bench("report", "s.yaml")
    assert code == 0 and "diverged (2/2)" in out and "incomplete" not in out
    report = workdir / "reports" / "s"
    assert "diverged (2/2)" in (report / "table.md").read_text() and "2 run(s) diverged" in (report / "report.tex").read_text()
    (row,) = read_csv(report / "results.csv")
    assert (row["mean"], row["n"], row["n_diverged"]) == ("", "0", "2")


def test_workers_killed_with_their_run_leave_a_store_the_rerun_completes(workdir: Path) -> None:
    """`bench run --workers 2`, killed with -9 while one worker holds the gate's distillation and the other works
    or waits: the workers die with it, and a rerun with workers computes each missing task once."""
    write(workdir / "gate.py", GATE)
    write(workdir / "tiny.yaml", TINY_SUITE.replace("    params: {iterations: 3}\n",
                                                      "    params: {iterations: 3}\n  - entry: gate:Gate\n"))
    proc, cmd, env = start_at_gate(workdir, "tiny.yaml", "--workers", "2")
    deadline = time.monotonic() + SAFETY_TIMEOUT_S
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == proc.pid]
    assert len(children) >= 2, "two worker processes"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    while any(Path(f"/proc/{pid}").exists() and _parent(Path(f"/proc/{pid}")) is not None for pid in children):
        assert time.monotonic() < deadline, "a worker outlived its run"
        time.sleep(0.05)

    (workdir / "gate.open").touch()
    rerun = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    assert rerun.returncode == 0 and "suite complete" in rerun.stdout, rerun.stderr
    assert "taking over task" in rerun.stderr  # the killed worker's claim on the gate's distillation
    keys = [json.loads(p.read_text())["key"] for p in (workdir / "results" / "records").rglob("*.json")]
    assert len(keys) == len(set(keys)) == 24
    assert not list((workdir / "results").rglob("*.tmp")) and not list((workdir / "results").rglob("*.claim"))


def _parent(proc: Path) -> int | None:
    """The parent pid of a live process (None for a zombie or one gone)."""
    try:
        fields = proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[1])
