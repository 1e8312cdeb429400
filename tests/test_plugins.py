"""A method from outside the package: by dotted path in a suite, and by a `bench.methods` entry point."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, cli_env, write

EXAMPLE = REPO / "examples" / "my_method"


def bench(args: list[str], cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**cli_env(), "PYTHONPATH": str(pythonpath)}
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def test_example_plugin_by_dotted_path_runs_through_bench_run(workdir: Path) -> None:
    suite = EXAMPLE / "suite.yaml"
    done = bench(["run", str(suite)], workdir, EXAMPLE)
    assert done.returncode == 0, done.stderr
    assert "distill group-means digits ipc=10" in done.stderr
    assert bench(["report", str(suite)], workdir, EXAMPLE).returncode == 0
    with open(workdir / "reports" / "my-method" / "results.csv") as f:
        rows = {(r["method"], r["ipc"]): r for r in csv.DictReader(f)}
    assert rows[("group-means", "10")]["n"] == "2" and float(rows[("group-means", "10")]["mean"]) > 50


def test_entry_point_plugin_is_listed_and_usable_by_name(workdir: Path, tmp_path: Path) -> None:
    """An installed distribution declaring the entry point, made by hand as pip would lay it out."""
    site = tmp_path / "site"
    dist = site / "bench_my_method-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-my-method\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[bench.methods]\ngroup-means = my_method:GroupMeans\n")
    shutil.copy(EXAMPLE / "my_method.py", site)

    listed = bench(["list", "methods"], workdir, site)
    assert listed.returncode == 0 and "group-means" in listed.stdout
    assert "entry point of bench-my-method" in listed.stdout and "[built-in]" in listed.stdout

    write(workdir / "s.yaml", """\
        datasets: [digits]
        ipc: [2]
        eval_archs: [MLP]
        methods:
          - name: group-means
        seeds: [0]
        eval: {epochs: 3}
        """)
    done = bench(["run", "s.yaml"], workdir, site)
    assert done.returncode == 0 and "done: 2 task(s) ran" in done.stdout, done.stderr


def test_broken_plugin_path_is_a_clear_error(workdir: Path) -> None:
    write(workdir / "s.yaml", """\
        datasets: [digits]
        ipc: [2]
        eval_archs: [MLP]
        methods:
          - entry: no_such_module:Thing
        seeds: [0]
        """)
    done = bench(["validate", "s.yaml"], workdir, workdir)
    assert done.returncode == 2 and "line 5, key 'methods[0].entry'" in done.stderr
    assert "cannot load method plugin 'no_such_module:Thing'" in done.stderr and "PYTHONPATH" in done.stderr
