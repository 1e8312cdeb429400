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


def cli_env() -> dict[str, str]:
    """Environment for running `bench` in a subprocess from a test."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}
