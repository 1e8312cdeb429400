"""The slurm executor: submit a plan's pending tasks as job arrays and return; `status` watches them.

Tasks go out through submitit as one job array per stage (split at the cluster's MaxArraySize, and by time
limit), and the stages keep their order through SLURM dependencies (experts, then distillation, then
evaluation), so nothing waits on the submitting shell. Dependencies are `afterany`: a task whose input failed
runs, finds the input missing and fails with a message that says so, instead of pending forever. Every job runs
one task function that writes straight into the shared store. An array element holds one task or, where the
recipe trains a cell's seeds together on the jobs' device (`batch_seeds`, by default on CUDA), that cell's K
evaluations: one GPU trains them as `bench run` would here, under K times the stage's time limit. At the
time-limit warning or on preemption submitit requeues the job, and distillation resumes from the checkpoint it
keeps in the store.

What was submitted is written to <store>/slurm/<suite>/submissions/*.json, so `bench status` can say
per task whether it is done, running, queued or failed, from the store and `squeue` (plus `sacct`
where the cluster has accounting), without any live process.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, TextIO

import submitit
import torch

from bench.config import Site
from bench.executors import ExecutorError, Outcome, TaskStatus
from bench.executors.board import Board
from bench.executors.profiles import STAGES, SlurmProfile, choose_profile, slurm_minutes, submitit_parameters
from bench.executors.tasks import (Busy, DatasetCache, check_data, resolve_device, run_seeds, run_task,
                                   slurm_job_id)
from bench.executors.todo import Pending, Task, cell_of, inputs_of, is_done, kind_of, plan_tasks, stage_of
from bench.logs import LOG, configure, verbosity
from bench.machine import default_threads
from bench.plan import EvalTask, Plan
from bench.records import Record
from bench.store import Store, atomic_write

QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "SUSPENDED", "RESIZING",
          "SIGNALING", "STAGE_OUT"}
RUNNING = {"RUNNING", "COMPLETING"}
QUERY_TIMEOUT_S = 30
GPU_OPTIONS = {"gpus", "gpus-per-node", "gpus-per-task", "gres"}  # sbatch options that can ask for a GPU
WAIT_S = 30.0  # how often a job whose task another run holds looks again
log = LOG.getChild("slurm")


@dataclass(frozen=True)
class JobSettings:
    """Where a job finds the store and the data, pickled with each task (absolute paths)."""

    store: Path
    data_root: Path
    device: str
    suite: str
    checkpoint_every: int
    threads: int | None = None  # torch's threads (None: the cores SLURM gives the job)
    verbosity: int = 0  # of the job's log: the `-q`/`-v` of the `bench run` that submitted it
    on_record: Callable[[Record], None] | None = None  # the store's (bench.tracking): jobs log what they write


class TaskJob(submitit.helpers.Checkpointable):
    """What each array element runs: its tasks (one, or a cell's seeds that `batch_seeds` trains together). Being
    Checkpointable, it is requeued with the same arguments when its time limit nears or it is preempted; the
    tasks resume from the store."""

    def __call__(self, tasks: list[Task], settings: JobSettings) -> str:
        configure(settings.verbosity, sys.stdout)  # the job's log: the board's plain timestamped lines
        torch.set_num_threads(settings.threads or default_threads())
        device = resolve_device(settings.device)
        store, datasets = Store(settings.store, settings.on_record), DatasetCache(settings.data_root,
                                                                                 settings.store / "cache")
        board = Board({kind_of(tasks[0]): len(tasks)})
        log.info("bench: %s on %s, SLURM job %s, restart %s, %d thread(s), %s", "; ".join(
            f"{t.describe()} [{t.key}]" for t in tasks), socket.gethostname(), slurm_job_id(),
            os.environ.get("SLURM_RESTART_COUNT", "0"), torch.get_num_threads(), device)
        if len(tasks) > 1 and tasks[0].recipe.trains_together(device.type):
            return together(tasks, store, datasets, device, board, settings)
        return "\n".join(alone(task, store, datasets, device, board, settings) for task in tasks)


def alone(task: Task, store: Store, datasets: DatasetCache, device: torch.device, board: Board,
          settings: JobSettings) -> str:
    """Run one task; the jobs after this one start when it ends, so wait while another run holds it."""
    kind, label = kind_of(task), task.describe()
    while True:
        start = time.perf_counter()
        try:
            result = run_task(task, store, datasets, device, board.task_progress(task.key, label, kind),
                              settings.suite, settings.checkpoint_every)
            break
        except Busy as busy:
            log.info("bench: waiting: %s", busy)
            time.sleep(WAIT_S)
    board.finished(kind, label, time.perf_counter() - start, result, key=task.key)
    return result


def together(tasks: list[EvalTask], store: Store, datasets: DatasetCache, device: torch.device, board: Board,
             settings: JobSettings) -> str:
    """Train a cell's seeds together (`run_seeds`), and wait for those another run holds until each is done."""
    said: dict[str, str] = {}
    while todo := [t for t in tasks if not is_done(t, store)]:
        now = run_seeds(todo, store, datasets, device, board, settings.suite)
        said |= now
        if not now:  # every seed left is held by another run
            log.info("bench: waiting: another run holds %s", ", ".join(t.describe() for t in todo))
            time.sleep(WAIT_S)
    return "\n".join(said.get(t.key, "") for t in tasks)


def _query(cmd: list[str]) -> subprocess.CompletedProcess | None:
    """Run a SLURM client command with a deadline; None when it cannot run at all."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None


def max_array_size() -> int:
    """The cluster's MaxArraySize (array indices must stay below it); SLURM's default 1001 if unknown."""
    out = _query(["scontrol", "show", "config"])
    match = re.search(r"^MaxArraySize\s*=\s*(\d+)", out.stdout if out else "", re.MULTILINE)
    return int(match.group(1)) if match else 1001


def job_states(job_ids: set[str]) -> tuple[dict[str, str], str]:
    """SLURM state per job id (array elements as '12_3'), from squeue, then sacct for jobs squeue has
    forgotten. Jobs neither knows are absent. Also returns a note on where the states came from."""
    bases = sorted({j.split("_")[0] for j in job_ids}, key=int)
    states: dict[str, str] = {}
    if not bases:
        return states, ""
    note = "squeue"
    out = _query(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(bases), "-o", "%i|%T"])
    if out is None or (out.returncode != 0 and "Invalid job id" not in out.stderr):
        note = f"squeue failed ({(out.stderr.strip() if out else 'not found') or 'no output'})"
    else:
        states.update(line.split("|", 1) for line in out.stdout.split() if "|" in line)
    if job_ids - states.keys():
        acct = _query(["sacct", "-n", "-P", "-X", "-j", ",".join(bases), "-o", "JobID,State"])
        if acct is not None and acct.returncode == 0:
            note += " + sacct"
            for line in acct.stdout.split():
                job, _, state = line.partition("|")
                states.setdefault(job, state.split()[0] if state else "UNKNOWN")
        else:
            note += ", no accounting (sacct)"
    return states, note


@dataclass
class Submissions:
    """The submission manifests of a suite: which job ran which task, and where its logs are."""

    folder: Path
    jobs: dict[str, dict] = field(default_factory=dict)  # task key -> its latest job entry

    @classmethod
    def read(cls, store: Store, suite: str) -> Submissions:
        folder = store.root / "slurm" / suite
        found = cls(folder)
        for path in sorted((folder / "submissions").glob("*.json")):  # names start with the UTC time
            for entry in json.loads(path.read_text())["tasks"]:
                found.jobs[entry["key"]] = entry
        return found


@dataclass
class SubmitResult:
    arrays: list[tuple[str, str, int, list[str]]]  # (stage, array job id, tasks, dependencies)
    skipped_alive: int
    manifest: Path | None


def submit(plan: Plan, store: Store, todo: Pending, settings: JobSettings, profile: SlurmProfile,
           stream: TextIO | None = None) -> SubmitResult:
    """Submit every pending task not already queued or running; return at once."""
    stream = stream or sys.stdout
    if shutil.which("sbatch") is None:
        raise ExecutorError("the slurm executor needs SLURM's `sbatch` on PATH, and this machine has none. Submit "
                            "from the cluster's login node, start a local test cluster with `slurm/cluster.sh up`, "
                            "or run here with `--executor local`.")
    check_data(todo.tasks, DatasetCache(settings.data_root, settings.store / "cache"))
    history = Submissions.read(store, plan.suite.name)
    todo_keys = {t.key for t in todo.tasks}
    live = {k: e for k, e in history.jobs.items() if k in todo_keys}
    states, _ = job_states({e["job_id"] for e in live.values()})
    alive = {k: e["job_id"].split("_")[0] for k, e in live.items() if states.get(e["job_id"]) in QUEUED | RUNNING}
    producers = dict(alive)  # task key -> the job (array) id that will write its output
    chunk = max_array_size()
    now = datetime.now(timezone.utc)
    manifest_path = history.folder / "submissions" / f"{now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}.json"
    manifest = {"suite": plan.suite.name, "suite_path": str(plan.suite.path), "profile": profile.name,
                "created": now.isoformat(timespec="seconds"), "tasks": []}
    result = SubmitResult([], len(alive), None)
    executor = submitit.SlurmExecutor(folder=history.folder / "logs" / "%A", max_num_timeout=profile.max_requeues)
    for stage in STAGES:
        resources = profile.stages[stage]
        elements = jobs_of([t for t in todo.tasks if stage_of(t) == stage and t.key not in alive],
                           device_type(settings.device, resources))
        for size in sorted({len(element) for element in elements}):
            same, minutes = [element for element in elements if len(element) == size], job_minutes(resources, size)
            for start in range(0, len(same), chunk):
                part = same[start:start + chunk]
                after = sorted({producers[k] for element in part for t in element for k in inputs_of(t)
                                if k in producers}, key=int)
                params = submitit_parameters(resources, stage, profile) | {"time": minutes}
                if after:
                    params["dependency"] = "afterany:" + ":".join(after)
                executor.update_parameters(**params)
                try:
                    with executor.batch():
                        jobs = [executor.submit(TaskJob(), element, settings) for element in part]
                except submitit.core.utils.FailedJobError as exc:
                    reason = str(exc).strip().rstrip(".")
                    longer = (f" Its jobs train {size} seeds together and ask for {minutes} min, {size} times the "
                              f"stage's `time` up to its partition's limit: lower that `time`, or set `batch_seeds: "
                              f"false` in the suite's `eval:`." if size > 1 else "")
                    raise ExecutorError(
                        f"sbatch refused the {stage} array of profile '{profile.name}': {reason}. Check that profile "
                        f"in bench.yaml (partition, account, qos, sbatch options).{longer} Arrays submitted before "
                        f"this one are listed above and recorded; rerunning submits only what is missing.") from None
                array_id = jobs[0].job_id.split("_")[0]
                for element, job in zip(part, jobs):
                    for task in element:
                        producers[task.key] = array_id
                        manifest["tasks"].append({"key": task.key, "stage": stage, "label": task.describe(),
                                                  "job_id": job.job_id, "stdout": str(job.paths.stdout),
                                                  "stderr": str(job.paths.stderr),
                                                  "result": str(job.paths.result_pickle)})
                atomic_write(manifest_path, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
                result.manifest = manifest_path
                count = sum(len(element) for element in part)
                result.arrays.append((stage, array_id, count, after))
                print(f"  submitted {stage}: job {array_id} ({count} task{'s' * (count != 1)}"
                      + (f" in {len(part)} job{'s' * (len(part) != 1)} of {size} seeds trained together"
                         if size > 1 else "") + ")" + (f", after {', '.join(after)}" if after else ""),
                      file=stream, flush=True)
    return result


def job_minutes(resources: dict, size: int) -> int:
    """The time limit of a job of `size` tasks: the stage's `time` is one task's, so a job of K seeds trained
    together gets K times it, up to its partition's limit (a job over it would pend for ever where the cluster
    does not refuse it), never less than the stage's own."""
    asked, limit = resources["time"], partition_minutes(resources.get("partition")) if size > 1 else None
    return max(asked, min(asked * size, limit or asked * size))


def partition_minutes(partition: str | None) -> int | None:
    """The time limit of a partition (None: the cluster's default one) in minutes, from sinfo; None where it has
    none or sinfo cannot say."""
    out = _query(["sinfo", "-h", "-o", "%P %l"])
    for line in (out.stdout if out else "").splitlines():
        name, _, limit = line.partition(" ")
        if name.rstrip("*") == partition if partition else name.endswith("*"):
            return slurm_minutes(limit)
    return None


def device_type(device: str, resources: dict) -> str:
    """The kind of device a stage's jobs will train on, as far as the submitting shell can tell: the `device`
    bench runs with, where `auto` is CUDA when the stage asks SLURM for a GPU (`gpus_per_task`, or gpus/gres in
    its sbatch options)."""
    if device != "auto":
        return torch.device(device).type
    asks = resources.get("gpus_per_task") or any(
        key.lstrip("-").replace("_", "-") in GPU_OPTIONS and "gpu" in f"{key}={value}"
        for key, value in resources.get("sbatch", {}).items())
    return "cuda" if asks else "cpu"


def jobs_of(tasks: list[Task], device: str) -> list[list[Task]]:
    """The array elements that run `tasks`: one task each, except the evaluations of a cell whose recipe trains
    its seeds together on this kind of device (`batch_seeds`), which share one, as `bench run` trains them here."""
    elements: dict[tuple, list[Task]] = {}
    for task in tasks:
        together = isinstance(task, EvalTask) and task.recipe.trains_together(device)
        elements.setdefault(cell_of(task) if together else (task.key,), []).append(task)
    return list(elements.values())


def failure(job: dict, lines: int = 8) -> str:
    """Why a failed job failed: its traceback's last lines (from submitit's result), else its log's last lines."""
    result = Path(job["result"])
    if result.exists():
        try:
            with open(result, "rb") as f:
                outcome, detail = pickle.load(f)
            if outcome == "error":
                return "\n".join(str(detail).rstrip().splitlines()[-lines:])
        except Exception:  # noqa: BLE001 - an unreadable result: fall back to the log
            pass
    for log in (job["stderr"], job["stdout"]):
        path = Path(log)
        if path.exists() and path.stat().st_size:
            return "\n".join(path.read_text(errors="replace").rstrip().splitlines()[-lines:])
    return "(no log: the job ended before it started writing one)"


def status(plan: Plan, store: Store) -> tuple[list[TaskStatus], str]:
    """The state of every task of the plan, and a note saying where SLURM states came from. A task
    never submitted (or submitted by no manifest of this suite) is "not run"."""
    history = Submissions.read(store, plan.suite.name)
    tasks = plan_tasks(plan)
    done = {t.key for t in tasks if is_done(t, store)}
    states, note = job_states({history.jobs[t.key]["job_id"] for t in tasks
                               if t.key in history.jobs and t.key not in done})
    out = []
    for task in tasks:
        job = history.jobs.get(task.key)
        if task.key in done:
            out.append(TaskStatus(task, "done", job and job["job_id"]))
        elif job is None:
            out.append(TaskStatus(task, "not run"))
        else:
            state = states.get(job["job_id"])
            kind = "queued" if state in QUEUED else "running" if state in RUNNING else "failed"
            out.append(TaskStatus(task, kind, f"{job['job_id']} ({state or 'gone from squeue'})", job["stderr"],
                                  failure(job) if kind == "failed" else ""))
    return out, note


@dataclass
class SlurmExecutor:
    """Submits a plan's pending tasks as job arrays and returns; `status` watches them through SLURM."""

    site: Site
    device: str
    profile: str | None
    origin: str
    threads: int | None = None
    name: str = "slurm"

    @classmethod
    def from_site(cls, site: Site, device: str | None = None, profile: str | None = None,
                  origin: str = "--profile", threads: int | None = None) -> SlurmExecutor:
        return cls(site, device or site.device, profile, origin, threads or site.threads)

    def run(self, plan: Plan, store: Store, todo: Pending) -> Outcome:
        profile = choose_profile(self.site, self.profile, self.origin)
        settings = JobSettings(store=store.root.resolve(), data_root=self.site.data_root.resolve(),
                               device=self.device, suite=plan.suite.name,
                               checkpoint_every=self.site.checkpoint_every, threads=self.threads,
                               verbosity=verbosity(), on_record=store.on_record)
        result = submit(plan, store, todo, settings, profile)
        alive = f"; {result.skipped_alive} already queued or running" if result.skipped_alive else ""
        ids = " ".join(a[1] for a in result.arrays)
        return Outcome(f"submitted {sum(a[2] for a in result.arrays)} task(s) in {len(result.arrays)} job array(s) "
                       f"with profile '{profile.name}'{': ' + ids if ids else ''}{alive}.")

    def status(self, plan: Plan, store: Store) -> tuple[list[TaskStatus], str]:
        return status(plan, store)
