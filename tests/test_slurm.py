"""`bench run --executor slurm` against a real one-node SLURM cluster (slurm/cluster.sh), and the parts
of the slurm executor that need no cluster: profiles, the sbatch file, checkpoints.

The cluster tests are skipped where Debian's slurm-wlm and munge are not installed, unless
BENCH_CI=1 (CI installs them, so there a missing cluster is a failure, not a skip).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

from bench.config import ConfigError, load_site, load_suite
from bench.executors.profiles import choose_profile, parse_profile, slurm_minutes, submitit_parameters
from bench.executors.slurm import device_type, jobs_of, status
from bench.executors.todo import cell_of
from bench.plan import make_plan
from bench.store import Store
from conftest import REPO, check_golden, write

PROFILES = """\
store: results
device: cpu
checkpoint_every: 5
profiles:
  test:
    cpus_per_task: 1
    mem_gb: 1
    time: 10
    gpus_per_task: 1
    setup: ["echo setting up on $(hostname)"]
    evaluate: {time: "00:05:00"}
  short:
    cpus_per_task: 1
    mem_gb: 1
    time: 1
    signal_delay_s: 20
    max_requeues: 10
"""

SUITE = """\
name: {name}
datasets: [digits]
ipc: [1, 2]
eval_archs: [ConvNet, MLP]
methods:
  - name: random
  - name: dm
    params: {{iterations: 4}}
seeds: [0, 1]
eval: {{epochs: 10}}
"""


# ---------------------------------------------------------------- profiles and the sbatch file (no cluster)

def test_profile_errors_name_the_key_and_list_the_valid_ones(tmp_path: Path) -> None:
    site = write(tmp_path / "bench.yaml", "profiles:\n  gpu:\n    partition: gpu\n    gpu_per_task: 1\n")
    with pytest.raises(ConfigError) as err:
        load_site(site)
    message = str(err.value)
    assert "line 4, key 'profiles.gpu.gpu_per_task': unknown key 'gpu_per_task'" in message
    assert "Did you mean 'gpus_per_task'" in message and "Valid keys here: account, array_parallelism" in message

    write(site, "profiles:\n  gpu:\n    time: 4h\n")
    with pytest.raises(ConfigError, match=r"line 3, key 'profiles.gpu.time': '4h' is not a SLURM time"):
        parse_profile(load_site(site), "gpu")
    write(site, "profiles:\n  gpu:\n    sbatch: {array: 0-9}\n")
    with pytest.raises(ConfigError, match=r"key 'profiles.gpu.sbatch.array': 'array' is set by bench"):
        parse_profile(load_site(site), "gpu")
    write(site, "executor: cluster\n")
    with pytest.raises(ConfigError, match=r"key 'executor'"):
        load_site(site)


def test_profile_choice_is_explicit(tmp_path: Path) -> None:
    site = load_site(write(tmp_path / "bench.yaml", "store: results\n"))
    with pytest.raises(ConfigError, match="needs an executor profile, and there is no `profiles:` key"):
        choose_profile(site, None, "here")
    site = load_site(write(tmp_path / "bench.yaml", PROFILES))
    with pytest.raises(ConfigError, match=r"several executor profiles \(test, short\) and none chosen"):
        choose_profile(site, None, "here")
    with pytest.raises(ConfigError, match="--profile: unknown executor profile 'tets'. Did you mean 'test'?"):
        choose_profile(site, "tets", "--profile")
    profile = choose_profile(site, "test", "--profile")
    assert profile.stages["distill"]["time"] == 10 and profile.stages["evaluate"]["time"] == 5


def test_sbatch_file_matches_the_golden_one(tmp_path: Path) -> None:
    """The job script a profile produces (delete the golden file to regenerate it after a deliberate change)."""
    from submitit.slurm.slurm import _make_sbatch_string
    profile = choose_profile(load_site(write(tmp_path / "bench.yaml", PROFILES)), "test", "--profile")
    params = submitit_parameters(profile.stages["evaluate"], "evaluate", profile)
    text = _make_sbatch_string(command="python -u -m submitit.core._submit /store/slurm/demo/logs/%A",
                               folder="/store/slurm/demo/logs/%A", map_count=3, dependency="afterany:12", **params)
    check_golden(REPO / "tests" / "golden" / "sbatch_evaluate.txt", text)


def test_a_cells_seeds_share_a_job_where_they_train_together(tmp_path: Path) -> None:
    """Where a cell's seeds train together (`batch_seeds`; by default on CUDA), SLURM gives them one array element,
    as `bench run` gives them one GPU; elsewhere each task is an element of its own, and they run side by side."""
    plan = make_plan(load_suite(write(tmp_path / "grid.yaml", SUITE.format(name="grid"))))
    evaluations, distillations = list(plan.evaluate), list(plan.distill)
    on_gpu = jobs_of(evaluations + distillations, "cuda")
    cells = [job for job in on_gpu if len(job) > 1]
    assert len(cells) == 8 and all(len({cell_of(t) for t in job}) == 1 and [t.seed for t in job] == [0, 1]
                                   for job in cells)
    assert sorted(t.key for job in on_gpu for t in job) == sorted(t.key for t in evaluations + distillations)
    assert all(len(job) == 1 for job in jobs_of(evaluations + distillations, "cpu"))
    evaluate = choose_profile(load_site(write(tmp_path / "bench.yaml", PROFILES)), "test", "--profile"
                              ).stages["evaluate"]
    assert [device_type(device, evaluate) for device in ("auto", "cpu", "cuda:1")] == ["cuda", "cpu", "cuda"]
    assert [device_type("auto", {"sbatch": extra}) for extra in (
        {"gres": "gpu:a100:1"}, {"--gpus-per-node": 2}, {"constraint": "gpu"}, {})] == ["cuda", "cuda", "cpu", "cpu"]
    # sinfo's partition limits, which cap such a job's K times the stage's time limit
    assert [slurm_minutes(t) for t in ("infinite", "1-00:00:00", "4:00:00", "30:00", "2-12", "10")] == [
        None, 1440, 240, 30, 3600, 10]


@pytest.mark.slow
@pytest.mark.parametrize("method, params", [
    ("dm", {"batch_real": 32}),
    ("dsa", {"batch_real": 16, "outer_loop": 2, "inner_loop": 1}),
    ("idm", {"batch_real": 16, "net_num": 3, "net_generate_interval": 2, "model_train_steps": 1,
             "trained_bs": 32, "acc_reset_interval": 3}),
])
def test_distillation_resumed_from_a_checkpoint_equals_an_uninterrupted_one(tmp_path: Path, method: str,
                                                                          params: dict) -> None:
    from bench.data import load_dataset
    from bench.methods import get_method
    from bench.methods.base import Checkpoint, DistillContext
    from bench.nets import get_network

    dataset = load_dataset("digits", tmp_path)
    cls = get_method(method).implementation()

    def distill(iterations: int, checkpoint: Checkpoint) -> torch.Tensor:
        ctx = DistillContext(dataset=dataset, ipc=2, seed=3, device=torch.device("cpu"),
                             make_net=lambda: get_network("ConvNet", 1, 10, 8), dsa_strategy="color_crop",
                             checkpoint=checkpoint)
        return cls(cls.Params(iterations=iterations, **params)).distill(ctx).images

    uninterrupted = distill(6, Checkpoint())
    saved = Checkpoint(tmp_path / "ckpt.pt", every=3)
    distill(4, saved)  # "killed" after iteration 4: the last checkpoint is iteration 3
    assert torch.load(saved.path, weights_only=True)["iteration"] == 3
    assert torch.equal(distill(6, saved), uninterrupted)


# ---------------------------------------------------------------- a real cluster

def _cluster_tools() -> bool:
    return all(shutil.which(t) or Path("/usr/sbin", t).exists() for t in ("slurmctld", "slurmd", "munged", "sbatch"))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A one-node cluster with 2 fake GPUs and MaxArraySize 4 (so arrays are split), on its own ports."""
    if not _cluster_tools():
        if os.environ.get("BENCH_CI") == "1":
            pytest.fail("BENCH_CI=1 but SLURM is not installed: apt-get install slurm-wlm munge")
        pytest.skip("SLURM is not installed (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("the test cluster's fake GPUs need root (mknod)")
    prefix = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "PREFIX": str(prefix), "MAX_ARRAY_SIZE": "4", "FAKE_GPUS": "2",
           "CTLD_PORT": "6917", "SLURMD_PORT": "6918"}
    script = REPO / "slurm" / "cluster.sh"
    up = subprocess.run(["bash", str(script), "up"], env=env, capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stdout + up.stderr
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(prefix / "slurm.conf")
    yield prefix
    subprocess.run(["bash", str(script), "down"], env=env, capture_output=True, timeout=60)
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old


def wait_until_idle(suite: Path, store: Path, cluster: Path, timeout_s: float = 600,
                    release_requeued: bool = False) -> list:
    """Poll `bench status`'s view until nothing is queued or running; fail loudly at the deadline.

    SLURM holds a requeued job for about two minutes (reason BeginTime); `release_requeued` lets it
    start at once, to keep the test short.
    """
    plan = make_plan(load_suite(suite))
    deadline = time.monotonic() + timeout_s
    while True:
        if release_requeued:
            held = subprocess.run(["squeue", "-h", "-t", "PENDING", "-o", "%i %r"], capture_output=True,
                                  text=True).stdout.split("\n")
            for job in [line.split()[0] for line in held if line.endswith("BeginTime")]:
                subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], capture_output=True)
        tasks, _ = status(plan, Store(store))
        if not any(t.state in ("queued", "running") for t in tasks):
            return tasks
        if time.monotonic() > deadline:
            queue = subprocess.run(["squeue", "-r", "-t", "all"], capture_output=True, text=True).stdout
            pytest.fail(f"jobs still busy after {timeout_s}s:\n{queue}\n"
                        + (cluster / "log" / "slurmctld.log").read_text()[-3000:])
        time.sleep(2)


def records(store: Path) -> dict[str, float]:
    found = {}
    for path in (store / "records").rglob("*.json"):
        record = json.loads(path.read_text())
        found[record["key"]] = record["accuracy"]
    return found


def _jobs_of(out: str) -> list[str]:
    return [line.split("job ")[1].split()[0] for line in out.splitlines() if line.startswith("  submitted ")]


@pytest.mark.slow
def test_suite_through_slurm_arrays_matches_the_local_run(cluster: Path, bench, workdir: Path) -> None:
    write(workdir / "bench.yaml", PROFILES)
    suite = write(workdir / "grid.yaml", SUITE.format(name="grid"))
    code, out, err = bench("run", "grid.yaml", "--executor", "slurm", "--profile", "test")
    assert code == 0, err
    # 4 distillations in one array; 16 evaluations split at MaxArraySize 4 into 4 arrays after them.
    assert "submitted 20 task(s) in 5 job array(s) with profile 'test'" in out
    distill_job, *eval_jobs = _jobs_of(out)
    assert f"submitted distill: job {distill_job} (4 tasks)\n" in out
    assert len(eval_jobs) == 4 and all(f"job {j} (4 tasks), after {distill_job}" in out for j in eval_jobs)
    script = (workdir / "results/slurm/grid/logs" / eval_jobs[0] / f"{eval_jobs[0]}_submission.sh").read_text()
    assert f"#SBATCH --dependency=afterany:{distill_job}" in script and "#SBATCH --array=0-3%4" in script
    assert "#SBATCH --gpus-per-node=1" in script and "#SBATCH --time=5" in script

    tasks = wait_until_idle(suite, workdir / "results", cluster)
    assert {t.state for t in tasks} == {"done"}, [(t.task.describe(), t.state, t.detail) for t in tasks]
    log = (workdir / "results/slurm/grid/logs" / distill_job / f"{distill_job}_0_0_log.out").read_text()
    assert "setting up on" in log and f"SLURM job {distill_job}_0" in log
    on_slurm = records(workdir / "results")
    assert len(on_slurm) == 16
    assert {json.loads(p.read_text())["job_id"].split("_")[0]
            for p in (workdir / "results/records").rglob("*.json")} == set(eval_jobs)

    code, out, _ = bench("run", "grid.yaml", "--executor", "slurm", "--profile", "test")
    assert code == 0 and "0 to run" in out and "submitted 0 task(s)" in out

    write(workdir / "local" / "bench.yaml", "store: results\ndevice: cpu\n")
    os.chdir(workdir / "local")
    assert bench("run", str(suite))[0] == 0
    assert records(workdir / "local" / "results") == on_slurm, "same seeds, same accuracies"


@pytest.mark.slow
def test_a_cells_seeds_trained_together_run_as_one_job(cluster: Path, bench, workdir: Path) -> None:
    """`batch_seeds: true`: the three seeds of each cell are one array element, under three times the evaluate time
    limit up to its partition's (5 minutes each, on a partition of 10), trained together, with the accuracies
    `bench run` gets here."""
    write(workdir / "bench.yaml", PROFILES + "  short_queue:\n    partition: short\n    time: 5\n")
    suite = write(workdir / "together.yaml", """\
        name: together
        datasets: [digits]
        ipc: [1, 2]
        eval_archs: [ConvNet]
        methods: [{name: random}]
        seeds: [0, 1, 2]
        eval: {epochs: 10, batch_seeds: true}
        """)
    code, out, err = bench("run", "together.yaml", "--executor", "slurm", "--profile", "short_queue")
    assert code == 0, err
    distill_job, eval_job = _jobs_of(out)
    assert f"submitted evaluate: job {eval_job} (6 tasks in 2 jobs of 3 seeds trained together), after " \
           f"{distill_job}" in out
    script = (workdir / "results/slurm/together/logs" / eval_job / f"{eval_job}_submission.sh").read_text()
    assert "#SBATCH --array=0-1%2" in script and "#SBATCH --time=10" in script
    assert {t.state for t in wait_until_idle(suite, workdir / "results", cluster)} == {"done"}
    stored = [json.loads(p.read_text()) for p in (workdir / "results" / "records").rglob("*.json")]
    by_job: dict[str, list] = {}
    for r in stored:
        by_job.setdefault(r["job_id"], []).append((r["ipc"], r["eval_seed"]))
    assert sorted(by_job) == [f"{eval_job}_0", f"{eval_job}_1"]
    assert sorted(sorted(cell) for cell in by_job.values()) == [[(ipc, s) for s in (0, 1, 2)] for ipc in (1, 2)]
    assert all(r["trained_with"] == [0, 1, 2] for r in stored)

    write(workdir / "local" / "bench.yaml", "store: results\ndevice: cpu\n")
    os.chdir(workdir / "local")
    assert bench("run", str(suite))[0] == 0
    assert records(workdir / "local" / "results") == records(workdir / "results"), "same seeds, same accuracies"


def _running_element(job: str, timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-r", "-t", "RUNNING", "-j", job, "-o", "%i"],
                             capture_output=True, text=True).stdout.split()
        if out:
            return out[0]
        time.sleep(0.5)
    pytest.fail(f"no element of job {job} started running within {timeout_s}s")


@pytest.mark.slow
def test_scancel_then_rerun_completes_without_duplicates(cluster: Path, bench, workdir: Path) -> None:
    write(workdir / "bench.yaml", PROFILES)
    suite = write(workdir / "long.yaml", """\
        name: long
        datasets: [digits]
        ipc: [1]
        eval_archs: [ConvNet]
        methods: [{name: random}]
        seeds: [0, 1]
        eval: {epochs: 3000}
        """)
    code, out, _ = bench("run", "long.yaml", "--executor", "slurm", "--profile", "test")
    assert code == 0
    victim = _running_element(_jobs_of(out)[-1])
    subprocess.run(["scancel", victim], check=True)

    tasks = wait_until_idle(suite, workdir / "results", cluster)
    failed = [t for t in tasks if t.state == "failed"]
    assert len(failed) == 1 and failed[0].job.startswith(victim + " ") and "CANCELLED" in failed[0].detail
    code, out, _ = bench("status", "long.yaml")
    assert code == 1 and "FAILED evaluate random digits ipc=1 ConvNet" in out and victim in out

    code, out, _ = bench("run", "long.yaml", "--executor", "slurm", "--profile", "test")
    assert code == 0 and "submitted 1 task(s) in 1 job array(s)" in out
    tasks = wait_until_idle(suite, workdir / "results", cluster)
    assert {t.state for t in tasks} == {"done"}
    assert len(list((workdir / "results" / "records").rglob("*.json"))) == 2
    assert not list((workdir / "results").rglob("*.tmp")), "no partial files"


@pytest.mark.slow
def test_job_that_raises_shows_as_failed_with_its_traceback(cluster: Path, bench, workdir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write(workdir / "bench.yaml", PROFILES)
    write(workdir / "boom.py", """\
        from bench.methods import Method

        class Boom(Method):
            name = "boom"
            description = "always fails"

            def distill(self, ctx):
                raise RuntimeError("boom: the method cannot run on " + ctx.dataset.spec.name)
        """)
    monkeypatch.setenv("PYTHONPATH", str(workdir))  # jobs inherit the submitting environment
    monkeypatch.syspath_prepend(str(workdir))
    suite = write(workdir / "boom.yaml", """\
        name: boom
        datasets: [digits]
        ipc: [1]
        eval_archs: [ConvNet]
        methods: [{entry: "boom:Boom"}]
        seeds: [0]
        eval: {epochs: 2}
        """)
    code, out, _ = bench("run", "boom.yaml", "--executor", "slurm", "--profile", "test")
    assert code == 0
    tasks = wait_until_idle(suite, workdir / "results", cluster)
    assert [t.state for t in tasks] == ["failed", "failed"]
    code, out, _ = bench("status", "boom.yaml")
    assert code == 1
    assert "FAILED distill boom digits ipc=1 seed=0" in out
    assert "RuntimeError: boom: the method cannot run on digits" in out
    assert "FAILED evaluate boom digits" in out and "MissingInput: this task needs the artifact" in out
    assert "log: " in out and "_log.err" in out


def _dm_iterations_for(seconds: float, params: dict) -> int:
    """How many DM iterations take about `seconds` here (measured, so the test works on any machine)."""
    from bench.data import load_dataset
    from bench.methods.base import DistillContext
    from bench.methods.dm import DM
    from bench.methods.specs import DMParams
    from bench.nets import get_network
    ctx = DistillContext(dataset=load_dataset("digits", Path(".")), ipc=10, seed=0, device=torch.device("cpu"),
                         make_net=lambda: get_network("ConvNet", 1, 10, 8), dsa_strategy="color_crop")
    start = time.perf_counter()
    DM(DMParams(iterations=5, **params)).distill(ctx)
    return max(20, int(seconds * 5 / (time.perf_counter() - start)))


@pytest.mark.slow
def test_timed_out_distillation_is_requeued_and_resumes_from_its_checkpoint(cluster: Path, bench,
                                                                            workdir: Path) -> None:
    # The profile `short` has a 1-minute limit and warns 20 s before it, so each run computes for
    # about 30 s after start-up: about 80 s of work needs a few requeues, each resuming where it was.
    iterations = _dm_iterations_for(80, {"batch_real": 64})
    write(workdir / "bench.yaml", PROFILES)
    suite = write(workdir / "slow.yaml", f"""\
        name: slow
        datasets: [digits]
        ipc: [10]
        eval_archs: [ConvNet]
        methods: [{{name: dm, params: {{iterations: {iterations}, batch_real: 64}}}}]
        seeds: [0]
        eval: {{epochs: 2}}
        """)
    code, out, _ = bench("run", "slow.yaml", "--executor", "slurm", "--profile", "short")
    assert code == 0
    distill_job = _jobs_of(out)[0]
    tasks = wait_until_idle(suite, workdir / "results", cluster, timeout_s=900, release_requeued=True)
    log = next((workdir / "results/slurm/slow/logs" / distill_job).glob("*_log.out")).read_text()
    assert {t.state for t in tasks} == {"done"}, log[-3000:]
    assert "this job is timed-out" in log and "restart 1" in log, log[-3000:]
    resumed = [int(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "resuming from checkpoint" in line]
    assert resumed and resumed[0] > 0 and resumed == sorted(resumed), log[-3000:]
    assert not list((workdir / "results" / "checkpoints").rglob("*.pt")), "the checkpoint goes with the artifact"


def test_a_profile_sbatch_refuses_is_named_in_the_error(cluster: Path, bench, workdir: Path) -> None:
    write(workdir / "bench.yaml", PROFILES + "  bad:\n    partition: nope\n    time: 5\n")
    write(workdir / "grid.yaml", SUITE.format(name="grid"))
    code, out, err = bench("run", "grid.yaml", "--executor", "slurm", "--profile", "bad")
    assert code == 1 and "sbatch refused the distill array of profile 'bad'" in err
    assert "invalid partition" in err.lower() and not (workdir / "results" / "records").exists()


@pytest.mark.slow
def test_jobs_log_their_records_to_the_tracker(cluster: Path, bench, workdir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A SLURM job logs each record it writes to bench.yaml's tracker (MLflow's file store here, no network), and
    its log shows what `bench -v` shows: every epoch."""
    from bench.tracking import KEY_TAG, _mlflow
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    write(workdir / "bench.yaml", PROFILES + "tracking:\n  mlflow: {uri: mlruns, experiment: slurm}\n")
    suite = write(workdir / "tracked.yaml", "name: tracked\ndatasets: [digits]\nipc: [1]\neval_archs: [MLP]\n"
                                            "methods: [{name: random}]\nseeds: [0, 1]\neval: {epochs: 2}\n")
    code, _, err = bench("-v", "run", "tracked.yaml", "--executor", "slurm", "--profile", "test")
    assert code == 0, err
    assert {t.state for t in wait_until_idle(suite, workdir / "results", cluster)} == {"done"}
    logs = [p.read_text() for p in (workdir / "results" / "slurm" / "tracked" / "logs").rglob("*_log.out")]
    assert sum("epoch 3/3, loss" in log for log in logs) == 2, logs
    deadline = time.monotonic() + 600
    while subprocess.run(["squeue", "-h"], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, "the jobs did not end"  # a job logs its record after storing it
        time.sleep(1)
    stored = [json.loads(p.read_text()) for p in (workdir / "results" / "records").rglob("*.json")]
    client, experiment = _mlflow((workdir / "mlruns").resolve().as_uri(), "slurm")
    runs = {r.data.tags[KEY_TAG]: r for r in client.search_runs([experiment])}
    assert set(runs) == {r["key"] for r in stored} and len(runs) == 2
    assert {(r["key"], r["job_id"]) for r in stored} == {(k, run.data.tags["bench.job_id"]) for k, run in runs.items()}
