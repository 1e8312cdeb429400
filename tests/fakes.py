"""Records for tests, built through `bench.records.Record` like the executor's, with plausible values for the
fields a test does not look at."""

from __future__ import annotations

from typing import Any

from bench.records import Record

PROVENANCE = {"device": "cpu", "versions": {"bench": "0.1.0"}, "git_commit": None, "job_id": None, "host": "test"}


def record(key: str, accuracy: float, **fields: Any) -> Record:
    """An evaluation record (or, with kind="whole", a whole-dataset one) with `fields` set."""
    defaults = {"suite": "test", "dataset": "digits", "eval_arch": "ConvNet", "eval_seed": 0, "recipe": {"epochs": 4},
                "recipe_hash": "r", "wall_time_s": 1.0, "created": "2025-01-01T00:00:00+00:00", **PROVENANCE}
    return Record(key=key, accuracy=accuracy, **{**defaults, **fields})
