"""What a run says while it runs: plain timestamped lines where stderr is not a terminal, a live rich board where it
is, -q and -v, the per-kind ETA, Whole Dataset tasks called `whole`, and the threads each record was computed with."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bench.config import load_site
from bench.executors.board import Board, eta
from bench.executors.local import LocalExecutor
from bench.machine import available_cores
from conftest import SAFETY_TIMEOUT_S, write
from test_cli import GATE, start_at_gate

SUITE = """\
datasets: [digits]
ipc: [1]
eval_archs: [MLP]
methods:
  - name: random
  - name: dm
    params: {iterations: 3}
seeds: [0, 1]
eval: {epochs: 4}
whole_dataset: {epochs: 2, seeds: [0]}
"""
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "
ENDED = re.compile(STAMP + r"\[(\d+)/7\] (\w+) (.*?)(?:: [\d.]+%)? in (\d+):(\d\d):(\d\d) \| ETA (.*)$")
PROGRESS = re.compile(STAMP + r"    (.*?): (?:epoch|iteration|pass) \d+/\d+")


def test_eta_is_estimated_per_kind_from_that_kinds_finished_tasks() -> None:
    """The first task of a suite is often its most expensive: no other kind's mean stands in for a kind."""
    times = {"whole": [600.0], "distill": [], "evaluate": [2.0, 4.0]}
    assert eta({"whole": 1, "evaluate": 10}, times) == "0:10:30"  # 600 + 10 x 3
    assert eta({"whole": 0, "evaluate": 10}, times, parallel=2) == "0:00:15"
    assert eta({"distill": 4, "evaluate": 10}, times) == "≥0:00:30 (4 distill not timed yet)"
    assert eta({"expert": 0, "evaluate": 10}, {"whole": [600.0], "evaluate": []}) == "? (10 evaluate not timed yet)"


def test_eta_counts_what_running_tasks_spent_and_times_a_new_kind_from_its_progress() -> None:
    """A running task's time so far is not left; a distillation half done after 100 s times its kind at 200 s
    before any has finished (the first task of a suite no longer reads '?' until it ends)."""
    times = {"distill": [], "evaluate": [2.0, 4.0]}
    assert eta({"evaluate": 10}, times, running=[("evaluate", 2.0, 0.5)]) == "0:00:28"  # 10 x 3 - 2
    assert eta({"evaluate": 10}, times, running=[("evaluate", 9.0, 0.9)]) == "0:00:27"  # at most its mean, 3
    assert eta({"distill": 2, "evaluate": 10}, times, running=[("distill", 100.0, 0.5)]) == "0:05:30"  # 400 - 100 + 30
    assert eta({"distill": 2, "evaluate": 10}, times, running=[("distill", 5.0, 0.0)]) == \
        "≥0:00:30 (2 distill not timed yet)"


def _frame(board: Board) -> str:
    """What the live board shows now, as plain text."""
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(board.live.get_renderable())
    return console.file.getvalue()


def test_live_board_shows_each_running_task_with_its_worker_under_the_suite_bar() -> None:
    terminal = io.StringIO()
    with Board({"distill": 1, "evaluate": 2}, workers=2,
               console=Console(file=terminal, force_terminal=True, width=120)) as board:
        board.progress("d", "distill dm digits ipc=1 seed=0", "distill", 3, 10, "iteration, loss 0.52",
                       worker="w1 cpu")
        board.progress("e", "evaluate random digits ipc=1 MLP seed=0/0", "evaluate", 2, 5, "epoch, loss 1.9",
                       worker="w2 cpu")
        rows = _frame(board).splitlines()
        assert rows[0].startswith("suite") and "0/3" in rows[0] and "(2 evaluate not timed yet)" in rows[0]
        assert rows[1].startswith("distill dm digits ipc=1 seed=0") and "3/10" in rows[1] and "w1 cpu loss 0.52" in rows[1]
        assert "2/5" in rows[2] and "w2 cpu loss 1.9" in rows[2]

        board.finished("distill", "distill dm digits ipc=1 seed=0", 8.0, key="d", worker="w1 cpu")
        board.finished("evaluate", "evaluate random digits ipc=1 MLP seed=0/0", 6.0, ": 41.00%", key="e")
        board.failed("evaluate", "evaluate random digits ipc=1 MLP seed=0/1", "Traceback ...\nRuntimeError: boom", {},
                     keys=["f"])
        rows = _frame(board).splitlines()
        assert len(rows) == 1, "ended tasks leave the board"
        assert "3/3" in rows[0] and "1 failed · ETA 0:00:00" in rows[0]
    assert "\x1b[" in terminal.getvalue(), "drawn for a terminal"


def test_plain_lines_name_each_kind_and_the_threads_are_recorded(bench, workdir: Path) -> None:
    """stderr is not a terminal here: one timestamped line per task that ends, progress at most once a minute of
    a task's time; `whole` for the Whole Dataset run; --threads wins over bench.yaml's threads and is recorded."""
    write(workdir / "bench.yaml", "store: results\nreports: reports\ndevice: cpu\nworkers: 1\nthreads: 2\n")
    write(workdir / "s.yaml", SUITE)
    code, out, err = bench("run", "s.yaml", "--threads", "1")
    assert code == 0 and "(0 expert, 1 whole, 2 distill, 4 evaluate)" in out, err
    lines = err.splitlines()
    assert all(re.match(STAMP, line) for line in lines), err
    ended = [m for m in map(ENDED.match, lines) if m]
    assert [int(m[1]) for m in ended] == list(range(1, 8)), err
    assert sorted({m[2] for m in ended}) == ["distill", "evaluate", "whole"] and "whole_dataset" not in err
    assert ended[0][3] == "digits MLP seed=0" and ended[0][7] == "? (2 distill, 4 evaluate not timed yet)"
    for m in ended:
        seconds = int(m[4]) * 3600 + int(m[5]) * 60 + int(m[6])
        said = sum(1 for line in lines if (p := PROGRESS.match(line)) and p[1] == f"{m[2]} {m[3]}")
        assert said <= seconds // 60 + 1, f"{said} progress lines for a task of {seconds} s"
    records = [json.loads(p.read_text()) for p in (workdir / "results" / "records").rglob("*.json")]
    assert len(records) == 5 and {r["threads"] for r in records} == {1}

    code, out, _ = bench("status", "s.yaml")
    assert re.search(r"^whole\s+1\s+1\s", out, re.MULTILINE), out


def test_verbose_adds_every_epoch_and_quiet_shows_only_failures_and_the_summary(bench, workdir: Path,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write(workdir / "s.yaml", SUITE)
    code, _, err = bench("-v", "run", "s.yaml")
    assert code == 0 and err.count("evaluate random digits ipc=1 MLP seed=0/0: epoch ") == 5, err  # 4 epochs + 1
    shutil.rmtree(workdir / "results")

    from bench.methods.dm import DM

    def broken(self, ctx):
        raise RuntimeError("boom in dm")

    working = DM.distill
    monkeypatch.setattr(DM, "distill", broken)
    code, out, err = bench("-q", "run", "s.yaml")
    assert code == 1 and "cells ->" not in out
    assert re.match(STAMP + r"\[\d/7\] FAILED distill dm digits ipc=1 seed=0 \(skipping 2 task", err), err
    assert "RuntimeError: boom in dm" in err and "3 task(s) failed" in err
    assert "] evaluate random" not in err and "] whole" not in err, "tasks that ended well are not shown"

    monkeypatch.setattr(DM, "distill", working)
    code, out, err = bench("-q", "run", "s.yaml")
    assert code == 0 and err == "" and len(out.splitlines()) == 1 and out.startswith("done: 3 task(s) ran"), out


def test_threads_default_to_the_cores_shared_by_the_workers(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = load_site(workdir / "bench.yaml")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert LocalExecutor.from_site(site, workers=2).threads == max(1, available_cores() // 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert LocalExecutor.from_site(site, workers=2).threads == 3, "an explicit OMP_NUM_THREADS is kept"
    site = load_site(write(workdir / "bench.yaml", "device: cpu\nthreads: 5\n"))
    assert LocalExecutor.from_site(site).threads == 5 and LocalExecutor.from_site(site, threads=2).threads == 2


@pytest.mark.slow
def test_status_shows_the_tasks_workers_of_a_live_run_hold_as_running(workdir: Path) -> None:
    write(workdir / "gate.py", GATE)
    write(workdir / "s.yaml", SUITE.replace("  - name: random\n", "  - entry: gate:Gate\n").replace(
        "whole_dataset: {epochs: 2, seeds: [0]}\n", ""))
    proc, _, env = start_at_gate(workdir, "s.yaml", "--workers", "2")
    try:
        status = subprocess.run([sys.executable, "-m", "bench.cli", "status", "s.yaml"], cwd=workdir, env=env,
                                capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    assert "running distill gate digits ipc=1 seed=0: pid " in status.stdout, status.stdout
    assert re.search(r"^distill\s+2\s+\d\s+[12]\s", status.stdout, re.MULTILINE), status.stdout


def test_live_suite_row_eta_follows_the_running_tasks_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before any task has ended, the suite row's ETA is worked out from the progress the running one reports."""
    from bench.executors import board as board_module
    now = [100.0]
    monkeypatch.setattr(board_module.time, "monotonic", lambda: now[0])
    with Board({"distill": 1, "evaluate": 2}, console=Console(file=io.StringIO(), force_terminal=True, width=120)
               ) as board:
        assert "ETA ? (1 distill, 2 evaluate not timed" in _frame(board).splitlines()[0]
        board.progress("d", "distill dm digits ipc=1 seed=0", "distill", 1, 10, "iteration, loss 0.52")
        now[0] = 200.0
        board.progress("d", "distill dm digits ipc=1 seed=0", "distill", 5, 10, "iteration, loss 0.40")
        assert "ETA ≥0:01:40 (2 evaluate not timed yet)" in _frame(board).splitlines()[0]  # 100 s spent, half done
