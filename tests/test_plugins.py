"""A method from outside the package: by dotted path in a suite, and by a `bench.methods` entry point; an
iterative plugin killed mid-run resumes from the harness's checkpoint to the same set, bit for bit."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench import data
from bench.logs import configure
from bench.methods.base import Checkpoint, DistillContext
from conftest import REPO, SAFETY_TIMEOUT_S, cli_env, write

EXAMPLE = REPO / "examples" / "my_method"


def bench(args: list[str], cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**cli_env(), "PYTHONPATH": str(pythonpath)}
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=SAFETY_TIMEOUT_S)


@pytest.mark.slow
def test_example_plugin_by_dotted_path_runs_through_bench_run(workdir: Path) -> None:
    suite = EXAMPLE / "suite.yaml"
    done = bench(["run", str(suite)], workdir, EXAMPLE)
    assert done.returncode == 0, done.stderr
    assert "distill group-means digits ipc=10" in done.stderr
    assert bench(["report", str(suite)], workdir, EXAMPLE).returncode == 0
    with open(workdir / "reports" / "my-method" / "results.csv") as f:
        rows = {(r["method"], r["ipc"]): r for r in csv.DictReader(f)}
    assert rows[("group-means", "10")]["n"] == "2" and float(rows[("group-means", "10")]["mean"]) > 50


@pytest.mark.slow
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


# The child distils with the example's iterative method, a checkpoint every 4 iterations, and stops to wait
# (as if slow) once iteration 6 is done: the checkpoint of iteration 4 is on disk, iteration 6's work is not.
KILLED_CHILD = """
import sys, threading
from pathlib import Path
import torch
from bench.data import load_dataset
from bench.methods.base import Checkpoint, DistillContext
from my_method import ProjectedMeans, ProjectedMeansParams

def wait_at_6(step, total, detail):
    if step == 6:
        Path(sys.argv[2]).touch()
        threading.Event().wait()

ds = load_dataset("digits", ".")
ctx = DistillContext(ds, 2, 3, torch.device("cpu"), lambda: None, ds.spec.dsa_strategy, progress=wait_at_6,
                     checkpoint=Checkpoint(Path(sys.argv[1]), every=4))
ProjectedMeans(ProjectedMeansParams(iterations=10)).distill(ctx)
"""


def test_iterative_plugin_killed_mid_run_resumes_to_the_same_set(digits: data.Dataset, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from my_method import ProjectedMeans, ProjectedMeansParams

    def context(checkpoint: Checkpoint) -> DistillContext:
        return DistillContext(digits, 2, 3, torch.device("cpu"), lambda: None, digits.spec.dsa_strategy,
                              checkpoint=checkpoint)

    params = ProjectedMeansParams(iterations=10)
    uninterrupted = ProjectedMeans(params).distill(context(Checkpoint()))
    path, waiting = tmp_path / "ckpt.pt", tmp_path / "waiting"
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(path), str(waiting)], cwd=tmp_path,
                             env={**cli_env(), "PYTHONPATH": str(EXAMPLE)}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600  # a safety net for a stuck child, not a speed requirement
        while not waiting.exists():
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "the child never reached iteration 6"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    finally:
        child.kill()
        child.stderr.close()
    assert torch.load(path, weights_only=True)["iteration"] == 4

    capfd.readouterr()
    configure()  # as the CLI does: the harness's notes go to stderr
    resumed = ProjectedMeans(params).distill(context(Checkpoint(path, every=4)))
    assert "resuming from checkpoint ckpt.pt at iteration 4" in capfd.readouterr().err
    assert uninterrupted.tensors().keys() == resumed.tensors().keys()
    for name, tensor in uninterrupted.tensors().items():
        assert torch.equal(tensor, resumed.tensors()[name]), name
    fresh = ProjectedMeans(params.model_copy(update={"iterations": 4})).distill(context(Checkpoint()))
    assert not torch.equal(fresh.images, resumed.images)  # so resuming is not trivially the same set



@pytest.mark.parametrize("saved", [
    {"format": 2, "iteration": 4, "state": {"tensors": {"images": torch.zeros(3, 1, 8, 8)}, "optimizers": {},
                                            "generators": {}, "extra": {}}},
    {"format": 2, "iteration": 4, "state": {"tensors": {"other": torch.zeros(1)}}},
    {"format": 2, "iteration": 99, "state": {}},
    {"format": 2, "state": {}},
    {"format": 1, "iteration": 4, "state": {}},
])
def test_a_checkpoint_that_no_longer_fits_is_discarded_with_a_warning(digits: data.Dataset, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch, capfd,
                                                                     saved: dict) -> None:
    """A checkpoint from other code (other tensors, shapes, iterations or layout) is never fatal: the run starts
    from scratch and computes what an uninterrupted run computes."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from my_method import ProjectedMeans, ProjectedMeansParams

    def context(checkpoint: Checkpoint) -> DistillContext:
        return DistillContext(digits, 2, 3, torch.device("cpu"), lambda: None, digits.spec.dsa_strategy,
                              checkpoint=checkpoint)

    params = ProjectedMeansParams(iterations=6)
    uninterrupted = ProjectedMeans(params).distill(context(Checkpoint()))
    path = tmp_path / "ckpt.pt"
    torch.save(saved, path)
    capfd.readouterr()
    resumed = ProjectedMeans(params).distill(context(Checkpoint(path, every=100)))
    assert f"warning: discarding checkpoint {path}" in capfd.readouterr().err
    assert torch.equal(uninterrupted.images, resumed.images) and not path.exists()


MEANS = """\
from bench.methods import Method, SyntheticSet
from bench.methods.base import class_labels


class Means(Method):
    name = "means"
    description = "each synthetic image is its class mean"
    uses_network = False

    def distill(self, ctx):
        images = [real.mean(0, keepdim=True).expand(ctx.ipc, -1, -1, -1) for real in ctx.real_per_class()]
        return SyntheticSet(torch_cat(images).cpu(), class_labels(len(images), ctx.ipc))


def torch_cat(images):
    import torch
    return torch.cat(images)
"""


def test_editing_a_plugin_makes_new_tasks_instead_of_reusing_old_results(workdir: Path) -> None:
    """A plugin's task keys hash its code: results of the old code are never reported as the new one's."""
    write(workdir / "means.py", MEANS)
    write(workdir / "s.yaml", """\
        datasets: [digits]
        ipc: [1]
        eval_archs: [MLP]
        methods: [{entry: "means:Means"}]
        seeds: [0]
        eval: {epochs: 1}
        """)
    assert bench(["run", "s.yaml"], workdir, workdir).returncode == 0
    assert "2 already in the store results, 0 to run" in bench(["run", "s.yaml", "--dry-run"], workdir, workdir).stdout
    write(workdir / "means.py", MEANS.replace("real.mean(0, keepdim=True)", "real.median(0, keepdim=True).values"))
    plan = bench(["run", "s.yaml", "--dry-run"], workdir, workdir).stdout
    assert "0 already in the store results, 2 to run (0 expert, 0 whole, 1 distill, 1 evaluate)" in plan, plan
    said = "means: 1 synthetic set(s) in the store were made by an older version of its code (last on 20"
    status = bench(["status", "s.yaml"], workdir, workdir)
    assert said in status.stdout and "they are not used here" in status.stdout, status.stdout
    assert bench(["report", "s.yaml"], workdir, workdir).returncode == 0
    assert f"Not used: {said}" in (workdir / "reports" / "s" / "table.md").read_text()
    assert bench(["run", "s.yaml"], workdir, workdir).returncode == 0
    assert said in bench(["status", "s.yaml"], workdir, workdir).stdout  # the new version's set is not "older"


RAISES_WHEN_PLANNED = """\
from bench.methods import Method


class Picky(Method):
    name = "picky"
    description = "its check_cell raises"
    uses_network = False

    @classmethod
    def check_cell(cls, dataset, ipc, params):
        raise RuntimeError("no idea about " + dataset)

    def distill(self, ctx):
        raise AssertionError("never planned, never run")
"""


def test_a_plugin_that_raises_while_the_suite_is_planned_is_one_paragraph(workdir: Path) -> None:
    write(workdir / "picky.py", RAISES_WHEN_PLANNED)
    write(workdir / "s.yaml", "datasets: [digits]\nipc: [1]\neval_archs: [MLP]\nmethods: [{entry: \"picky:Picky\"}]\n"
                              "seeds: [0]\n")
    for command in (["validate", "s.yaml"], ["run", "s.yaml", "--dry-run"]):
        done = bench(command, workdir, workdir)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "method 'picky' (picky) raised RuntimeError in its check_cell() while the suite was planned: no idea " \
               "about digits" in done.stderr and done.stderr.count("\n") == 1
