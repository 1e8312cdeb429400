"""What a plan still needs, given the store: torch-free, so `bench run --dry-run` and `bench status` of a large
suite cost a file check per task, not an import of torch and every method's maths."""

from __future__ import annotations

from dataclasses import dataclass

from bench.plan import WHOLE_KIND, DistillTask, EvalTask, ExpertTask, Plan
from bench.store import Store

Task = ExpertTask | DistillTask | EvalTask


@dataclass
class Pending:
    """What a plan still needs, given the store."""

    experts: list[ExpertTask]
    distill: list[DistillTask]
    evaluate: list[EvalTask]
    done: int
    total: int

    @property
    def tasks(self) -> list[ExpertTask | DistillTask | EvalTask]:
        return [*self.experts, *self.distill, *self.evaluate]


def pending(plan: Plan, store: Store) -> Pending:
    """Evaluate tasks without a record, the artifacts they need and lack, the experts those need, and
    the whole-dataset stages not yet run."""
    evals = list({e.key: e for e in plan.evaluate}.values())
    todo = [e for e in evals if not store.has_record(e.key)]
    needed = {e.distill.key for e in todo}
    distill = [d for d in plan.distill if d.key in needed and not store.has_artifact(d.key)]
    needed_experts = {e.key for d in distill for e in d.experts} | {e.teacher.key for e in todo if e.teacher}
    experts = [e for e in plan.experts if e.key in needed_experts and not store.has_artifact(e.key)]
    experts += [w for w in plan.whole if not store.has_record(w.key)]  # whole-dataset rows: needed by none
    total = len(evals) + len(plan.distill) + len(plan.experts) + len(plan.whole)
    return Pending(experts, distill, todo, total - len(todo) - len(distill) - len(experts), total)


def stage_of(task: Task) -> str:
    """The SLURM stage (job array and profile settings) a task runs in: whole-dataset runs go with the experts."""
    return "expert" if isinstance(task, ExpertTask) else "distill" if isinstance(task, DistillTask) else "evaluate"


def kind_of(task: Task) -> str:
    """What a user sees a task called (plan, board, status, logs): expert, whole, distill or evaluate."""
    return "whole" if is_whole(task) else stage_of(task)


def plan_tasks(plan: Plan) -> list[Task]:
    """Every task of the plan once, in stage order (experts and whole-dataset runs, distill, evaluate)."""
    return [*plan.experts, *plan.whole, *plan.distill, *{e.key: e for e in plan.evaluate}.values()]


def is_whole(task: Task) -> bool:
    """A Whole Dataset run: a stage of the plan that leaves a record, not an artifact."""
    return isinstance(task, ExpertTask) and task.spec.kind == WHOLE_KIND


def is_done(task: Task, store: Store) -> bool:
    """Evaluations and whole-dataset runs leave a record, the other tasks an artifact."""
    recorded = isinstance(task, EvalTask) or is_whole(task)
    return store.has_record(task.key) if recorded else store.has_artifact(task.key)


def cell_of(task: EvalTask) -> tuple:
    """What the evaluations of one cell share, and `batch_seeds` trains together: all but the seed."""
    return task.distill.key, task.arch, task.recipe


def inputs_of(task: Task) -> list[str]:
    """The keys of the artifacts a task reads: a distillation's experts, an evaluation's synthetic set (and its
    teacher, under `labels: teacher`)."""
    if isinstance(task, DistillTask):
        return [e.key for e in task.experts]
    if isinstance(task, EvalTask):
        return [task.distill.key] + ([task.teacher.key] if task.teacher is not None else [])
    return []
