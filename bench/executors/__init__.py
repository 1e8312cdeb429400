"""Executors run a plan's pending tasks: `local` in this process, `slurm` as job arrays through submitit.

Both implement one interface, `Executor`: `run` does (or submits) the missing work of a plan and
says what happened; `status` says, per task, whether it is done, running, queued, failed or still
to run. Both call the same task functions (`bench.executors.tasks`), which read their inputs from
the store and write their outputs to it, so an executor only decides where and in which order
tasks run. This module stays light: an implementation is imported when it is chosen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bench.config import Site
    from bench.executors.todo import Pending
    from bench.plan import DistillTask, EvalTask, ExpertTask, Plan
    from bench.store import Store

STATES = ("done", "running", "queued", "failed", "not run")


class ExecutorError(RuntimeError):
    """The executor cannot do what was asked (e.g. sbatch refused a job); the message says what to fix."""


@dataclass
class Outcome:
    """What `Executor.run` did: a summary line for the user, and the tasks that failed (with why)."""

    summary: str
    failed: list[str] = field(default_factory=list)


@dataclass
class TaskStatus:
    """Where one task stands. `detail` says why a failed task failed (its traceback's or log's last
    lines); `job` and `log` say where it ran, for executors that know."""

    task: ExpertTask | DistillTask | EvalTask
    state: str  # one of STATES
    job: str | None = None
    log: str | None = None
    detail: str = ""


class Executor(Protocol):
    name: str

    def run(self, plan: Plan, store: Store, todo: Pending) -> Outcome:
        """Run, or submit, the plan's tasks whose output is not in the store (`todo`: `pending(plan, store)`,
        which the caller has already computed to show the plan)."""

    def status(self, plan: Plan, store: Store) -> tuple[list[TaskStatus], str]:
        """Every task of the plan with its state, and a note on where the states came from."""


def make_executor(name: str, site: Site, *, device: str | None = None, profile: str | None = None,
                  profile_origin: str = "--profile", workers: int | None = None,
                  threads: int | None = None) -> Executor:
    """The executor called `name` ("local" or "slurm"), set up from the site defaults; `device`, `profile`,
    `threads` and the local `workers` override them (a SLURM profile is resolved only when SLURM is chosen)."""
    if name == "slurm":
        from bench.executors.slurm import SlurmExecutor
        return SlurmExecutor.from_site(site, device=device, profile=profile, origin=profile_origin, threads=threads)
    from bench.executors.local import LocalExecutor
    return LocalExecutor.from_site(site, device=device, workers=workers, threads=threads)


def older_code(plan: Plan, store: Store) -> list[str]:
    """One line per plugin method of the plan whose store holds synthetic sets an older version of its code made:
    they are not reused (a plugin's keys hash its code), and `status` and the report say so."""
    by_label: dict[str, list[dict[str, str]]] = {}
    for task in plan.distill:
        if task.lineage is not None:
            by_label.setdefault(task.method.label, []).extend(
                store.older_versions(task.lineage, task.identity["source"]))
    return [f"{label}: {len(notes)} synthetic set(s) in the store were made by an older version of its code "
            f"(last on {max(n['created'] for n in notes)}); they are not used here, and `bench run` computes this "
            f"version's."
            for label, notes in by_label.items() if notes]
