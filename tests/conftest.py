"""Shared helpers: write a site config and a suite into a temporary folder, run the CLI there.

Every test runs single-threaded, here and in the `bench` processes the tests start (through the
environment): the tests are many tiny tensor operations, and on a busy 2-core machine two OpenMP
threads spend longer waiting for each other than computing (measured 10x slower).
"""

from __future__ import annotations

import os
import tempfile
import textwrap
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # before torch or numpy start their thread pools; inherited by subprocesses
os.environ["BENCH_CACHE"] = tempfile.mkdtemp(prefix="bench-test-cache-")  # not the user's ~/.cache/bench

import pytest  # noqa: E402
import torch  # noqa: E402

from bench.cli import main  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]

TINY_SUITE = """\
name: tiny
datasets: [digits]
ipc: [1, 2]
eval_archs: [ConvNet, MLP]
methods:
  - name: random
  - name: dm
    params: {iterations: 3}
seeds: [0, 1]
eval: {epochs: 4}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with its own bench.yaml (store and reports inside it, one worker whatever the machine's cores),
    made the working directory."""
    write(tmp_path / "bench.yaml", "store: results\nreports: reports\ndevice: cpu\nworkers: 1\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def bench(workdir: Path, capsys: pytest.CaptureFixture):
    """Run `bench ARGS...` in-process; return (exit code, stdout, stderr)."""
    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


@pytest.fixture(scope="module")
def digits():
    """The built-in data set (it needs no data root), loaded once per test module."""
    from bench.data import load_dataset
    return load_dataset("digits", ".")


# How long a test lets a `bench` subprocess run before calling it hung: a safety net, never a claim
# about speed (these machines are shared and can be several times slower than idle).
SAFETY_TIMEOUT_S = 3600


def cli_env() -> dict[str, str]:
    """Environment for running `bench` in a subprocess from a test."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def check_golden(golden: Path, produced: str) -> None:
    """`produced` must equal the committed golden file. Locally a missing golden file is written (delete
    one to accept a deliberate change); in CI (`CI` or `BENCH_CI` set) it is a failure, so a test
    there can never pass by regenerating its own expectation."""
    if not golden.exists():
        if os.environ.get("CI") or os.environ.get("BENCH_CI"):
            pytest.fail(f"{golden} is missing: generate it locally (run this test once) and commit it")
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(produced)
    assert produced == golden.read_text(), f"output differs from {golden}; if that is intended: rm {golden}"
