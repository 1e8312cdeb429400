"""Executors run a plan's pending tasks: `local` in this process, `slurm` as job arrays through submitit.

Both call the same task functions (`bench.executors.tasks`), which read inputs from the store and
write outputs to it, so an executor only decides where and in which order tasks run.
"""

from bench.executors.local import RunResult, run_local
from bench.executors.tasks import DatasetCache, MissingInput, Pending, pending, provenance, resolve_device, run_task

__all__ = ["DatasetCache", "MissingInput", "Pending", "RunResult", "pending", "provenance", "resolve_device",
           "run_local", "run_task"]
