"""Shared helpers: write a site config and a suite into a temporary folder, run the CLI there."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from bench.cli import main

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
    """A folder with its own bench.yaml (store and reports inside it), made the working directory."""
    write(tmp_path / "bench.yaml", "store: results\nreports: reports\ndevice: cpu\n")
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


@pytest.fixture(scope="module")
def single_thread():
    """Many tiny ops: on a busy 2-core machine two OpenMP threads spend longer waiting for each
    other than computing (measured 10x slower), so a module can ask to run on one; restored after."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cli_env() -> dict[str, str]:
    """Environment for running `bench` in a subprocess from a test."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}
