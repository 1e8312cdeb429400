"""SLURM executor profiles: `bench.yaml`'s `profiles:` turned into per-stage job resources.

Config only checks a profile's structure (its schema); what the keys mean to SLURM (time formats,
which sbatch options bench sets itself, submitit's parameter names) is the SLURM executor's
business, so it lives here, beside it, and is read only when a suite goes to SLURM or
`bench validate bench.yaml` asks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.config import ConfigError, ResourcesSchema, Site, unknown_name

STAGES = ("expert", "distill", "evaluate")
# sbatch options bench sets itself, per job: a profile's `sbatch:` must not set them.
_RESERVED_SBATCH = {"array", "dependency", "output", "error", "job-name", "signal", "open-mode", "wckey"}
_DEFAULT_TIME_MIN = 60


@dataclass(frozen=True)
class SlurmProfile:
    """A validated executor profile: per stage, the resources of its jobs (time in minutes)."""

    name: str
    stages: dict[str, dict[str, Any]]
    max_requeues: int
    signal_delay_s: int


def choose_profile(site: Site, name: str | None, origin: str) -> SlurmProfile:
    """The profile named on the command line or in a suite (`origin` says which), else the default."""
    name = name or site.profile or ("default" if "default" in site.profiles else None)
    if name is None and len(site.profiles) == 1:
        name = next(iter(site.profiles))
    where = site.path or "bench.yaml"
    if not site.profiles:
        raise ConfigError(f"{where}: the slurm executor needs an executor profile, and there is no "
                          f"`profiles:` key. Add one, e.g. `profiles: {{gpu: {{partition: gpu, gpus_per_task: "
                          f"1, cpus_per_task: 8, mem_gb: 32, time: 240}}}}` (see the README, 'On a cluster').")
    if name is None:
        raise ConfigError(f"{where}: several executor profiles ({', '.join(site.profiles)}) and none chosen. "
                          f"Pick one with `--profile NAME`, a suite's `profile:` key, or `profile:` in {where}.")
    if name not in site.profiles:
        raise ConfigError(f"{origin}: {unknown_name('executor profile', name, site.profiles, 'bench.yaml')} "
                          f"Profiles are defined under `profiles:` in {where}.")
    return parse_profile(site, name)


def parse_profile(site: Site, name: str) -> SlurmProfile:
    """Resolve a profile's stages (a stage's keys over the profile's own) and check times and sbatch extras."""
    p = site.profiles[name]
    base = p.model_dump(include=set(ResourcesSchema.model_fields), exclude_none=True)
    base_time = _minutes(site, p.time, ("profiles", name, "time")) if p.time is not None else _DEFAULT_TIME_MIN
    reserved = _RESERVED_SBATCH | {"mem", "time"} | {k.replace("_", "-") for k in ResourcesSchema.model_fields}
    stages = {}
    for stage in STAGES:
        override = getattr(p, stage)
        own = override.model_dump(exclude_none=True) if override else {}
        merged = {**base, **own}
        merged["time"] = _minutes(site, own["time"], ("profiles", name, stage, "time")) if "time" in own \
            else base_time
        for key in merged.get("sbatch", {}):
            if key.lstrip("-").replace("_", "-") in reserved:
                at = ("profiles", name) + ((stage,) if "sbatch" in own else ()) + ("sbatch", key)
                raise site.error(at, f"'{key}' is set by bench or by a profile key, so it cannot be an extra "
                                     f"sbatch option. Profile keys: {', '.join(ResourcesSchema.model_fields)}.")
        stages[stage] = merged
    return SlurmProfile(name, stages, p.max_requeues, p.signal_delay_s)


def _minutes(site: Site, value: int | str, at: tuple) -> int:
    """A profile's time limit as whole minutes, or an error naming its key."""
    if isinstance(value, int):
        if value <= 0:
            raise site.error(at, f"a time limit must be positive, got {value} minutes.")
        return value
    total = slurm_minutes(value)
    if total is None:
        raise site.error(at, f"'{value}' is not a SLURM time. Write minutes (240) or \"HH:MM:SS\" / "
                             f"\"D-HH:MM:SS\" in quotes.")
    if total <= 0:
        raise site.error(at, f"a time limit must be positive, got '{value}'.")
    return total


def slurm_minutes(text: str) -> int | None:
    """SLURM's time formats (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) as whole minutes, seconds
    rounded up; None for anything else (`infinite`, `UNLIMITED`, a typo)."""
    text = text.strip()
    days, _, clock = text.rpartition("-") if "-" in text else ("0", "", text)
    parts = clock.split(":")
    if not (days.isdigit() and all(x.isdigit() for x in parts) and 1 <= len(parts) <= 3):
        return None
    numbers = [int(x) for x in parts]
    if "-" in text:  # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = (numbers + [0, 0])[:3]
    else:  # MM, MM:SS, HH:MM:SS
        hours, minutes, seconds = ([0] * (3 - len(numbers)) + numbers) if len(numbers) == 3 else \
            (0, numbers[0], numbers[1] if len(numbers) > 1 else 0)
    return int(days) * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def submitit_parameters(resources: dict, stage: str, profile: SlurmProfile) -> dict:
    """A profile stage's resources as submitit's SlurmExecutor parameters."""
    params: dict = {"job_name": f"bench-{stage}", "time": resources["time"],
                    "signal_delay_s": profile.signal_delay_s}
    for key in ("partition", "account", "qos", "cpus_per_task", "array_parallelism", "setup"):
        if key in resources:
            params[key] = resources[key]
    if resources.get("gpus_per_task"):  # one task per job, so per task is per node
        params["gpus_per_node"] = resources["gpus_per_task"]
    if "mem_gb" in resources:
        params["mem"] = f"{math.ceil(resources['mem_gb'] * 1024)}M"
    if "sbatch" in resources:
        params["additional_parameters"] = {k.lstrip("-").replace("-", "_"): v for k, v in resources["sbatch"].items()}
    return params
