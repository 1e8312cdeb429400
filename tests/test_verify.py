"""A damaged store, as a user meets it: a tiny suite run for real through the CLI, then records, artifacts and a
checkpoint damaged the ways a disk, a cut-short copy or a careless edit damage them. `bench report` still works
and names each damaged file, `bench verify` quarantines the rest with reasons, and `bench run` recomputes
exactly the damaged tasks, with no traceback anywhere."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest

from bench.cli import main
from bench.config import load_suite
from bench.plan import make_plan
from conftest import TINY_SUITE, write

# How each damaged record is damaged (all but the last two break the JSON or its shape; those two are edits
# the checksum catches).
RECORD_FAULTS = {
    "truncated": lambda text: text[:len(text) // 2],
    "zero_bytes": lambda text: b"",
    "empty_object": lambda text: b"{}",
    "list": lambda text: b"[]",
    "not_utf8": lambda text: b'{"key": "\xff\xfe"}',
    "accuracy_string": lambda text: re.sub(rb'"accuracy": ([0-9.]+)', rb'"accuracy": "\1"', text),
    "checksum_mismatch": lambda text: re.sub(rb'"accuracy": ([0-9])', rb'"accuracy": 9\1', text),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny suite run once, for real: its store, copied by each test before damaging it."""
    root = tmp_path_factory.mktemp("pristine")
    write(root / "bench.yaml", "store: results\nreports: reports\ndevice: cpu\n")
    write(root / "tiny.yaml", TINY_SUITE)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["--config", str(root / "bench.yaml"), "run", str(root / "tiny.yaml")]) == 0
    return root / "results"


def damage(workdir: Path, pristine: Path) -> dict[str, list[Path]]:
    """Copy the pristine store into workdir and damage it: 7 records (one of the dm IPC 2 artifact, one of the
    random IPC 2 one, five of the IPC 1 artifacts), those two artifacts (zero bytes, cut short) and a zero-byte
    checkpoint of the dm one. Returns the damaged files and the untouched records."""
    shutil.copytree(pristine, workdir / "results")
    write(workdir / "tiny.yaml", TINY_SUITE)
    plan = make_plan(load_suite(workdir / "tiny.yaml"))
    root = workdir / "results"
    path = {**{e.key: root / "records" / e.key[:2] / f"{e.key}.json" for e in plan.evaluate},
            **{d.key: root / "artifacts" / d.key[:2] / f"{d.key}.pt" for d in plan.distill}}
    dm2, random2 = ([d for d in plan.distill if (d.method.label, d.ipc) == (label, 2)][0] for label in ("dm", "random"))
    evals = list({e.key: e for e in plan.evaluate}.values())
    chosen = ([next(e for e in evals if e.distill.key == a.key) for a in (dm2, random2)]
              + [e for e in evals if e.distill.ipc == 1][:5])
    for e, fault in zip(chosen, RECORD_FAULTS.values()):
        path[e.key].write_bytes(fault(path[e.key].read_bytes()))
    path[dm2.key].write_bytes(b"")
    path[random2.key].write_bytes(path[random2.key].read_bytes()[:1000])
    checkpoint = root / "checkpoints" / dm2.key[:2] / f"{dm2.key}.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")
    return {"records": [path[e.key] for e in chosen], "artifacts": [path[dm2.key], path[random2.key]],
            "checkpoint": [checkpoint], "untouched": [path[e.key] for e in evals if e not in chosen]}


def relative(paths: list[Path], workdir: Path) -> list[str]:
    return [str(p.relative_to(workdir)) for p in paths]


def test_report_names_damaged_records_verify_quarantines_the_rest_and_run_recomputes_them(
        bench, workdir: Path, pristine: Path) -> None:
    files = damage(workdir, pristine)
    untouched = {p: p.read_bytes() for p in files["untouched"]}

    code, out, err = bench("report", "tiny.yaml")
    assert code == 0 and "Traceback" not in err and "incomplete" in out
    for path in relative(files["records"], workdir):
        assert f"warning: {path} is damaged: " in err and f"moved to results/quarantine/{path[8:]}" in err
    assert err.count("warning: ") == 7

    code, out, err = bench("verify", "tiny.yaml")
    assert code == 1 and "Traceback" not in err and "3 damaged" in out
    for path in relative(files["artifacts"] + files["checkpoint"], workdir):
        assert f"  {path}: " in out and f"warning: {path} is damaged" in err
    assert "the distillation it belongs to starts from scratch" in err
    assert bench("verify", "tiny.yaml")[:2] == (0, "verified 11 file(s) of suite 'tiny' in store results: all sound.\n")
    quarantined = sorted(p for p in (workdir / "results" / "quarantine").rglob("*") if p.is_file())
    assert len(quarantined) == 2 * 10 and all(p.with_name(p.name + ".reason.txt").exists()
                                              for p in quarantined if not p.name.endswith(".reason.txt"))

    code, out, err = bench("run", "tiny.yaml")
    assert code == 0 and "Traceback" not in err
    assert "11 already in the store results, 9 to run (0 expert, 0 whole, 2 distill, 7 evaluate)" in out
    assert "done: 9 task(s) ran, suite complete" in out
    assert all(p.read_bytes() == text for p, text in untouched.items())
    assert bench("verify")[:2] == (0, "verified 20 file(s) of store results: all sound.\n")
    code, out, err = bench("report", "tiny.yaml")
    assert code == 0 and not err and "incomplete" not in out


def test_run_alone_finds_and_recomputes_the_damaged_tasks(bench, workdir: Path, pristine: Path) -> None:
    files = damage(workdir, pristine)
    code, out, err = bench("run", "tiny.yaml")
    assert code == 0 and "Traceback" not in err
    assert "11 already in the store results, 9 to run (0 expert, 0 whole, 2 distill, 7 evaluate)" in out
    for path in relative([*files["records"], *files["artifacts"], *files["checkpoint"]], workdir):
        assert f"warning: {path} is damaged: " in err
    assert bench("verify")[:2] == (0, "verified 20 file(s) of store results: all sound.\n")


def test_verify_of_the_whole_store_checks_files_no_suite_names(bench, workdir: Path, pristine: Path) -> None:
    shutil.copytree(pristine, workdir / "results")
    write(workdir / "tiny.yaml", TINY_SUITE)
    stray = workdir / "results" / "records" / "ff" / "ff00000000000000000.json"
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"{")
    assert bench("verify", "tiny.yaml")[0] == 0
    code, out, err = bench("verify")
    assert code == 1 and "verified 21 file(s) of store results: 1 damaged" in out
    assert "  results/records/ff/ff00000000000000000.json: it is not valid JSON, or it was cut short" in out


def test_status_names_the_damaged_files_and_counts_their_tasks_as_not_done(
        bench, workdir: Path, pristine: Path) -> None:
    files = damage(workdir, pristine)
    code, out, err = bench("status", "tiny.yaml")
    assert "Traceback" not in err
    for path in relative([*files["records"], *files["artifacts"]], workdir):
        assert f"warning: {path} is damaged: " in err
    assert re.search(r"distill\s+4\s+2\s", out) and re.search(r"evaluate\s+16\s+9\s", out), out
