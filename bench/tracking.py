"""Trackers: each record the store writes is also logged to Weights & Biases or MLflow (`tracking:` in
bench.yaml), and `bench export` sends a store's records there afterwards.

Data flows one way: the store hands each record here after writing it, and nothing here feeds back into a
run. A tracker that fails (no network, a server down, a full disk) is a warning: the record is in the store
already, and `bench export` sends it later. One record is one tracker run, named after its cell and seed
and tagged with the record's key, which is what makes an export skip what is there already.

Both packages are optional extras (`pip install 'bench[wandb]'`, `'bench[mlflow]'`), imported only when a
record is logged, so that a worker or SLURM job that logs nothing never pays for them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Iterable, Protocol
from urllib.parse import urlparse
from urllib.request import url2pathname

from bench.config import ConfigError, Site
from bench.records import Record

log = logging.getLogger(__name__)

TRACKERS = {"wandb": "wandb", "mlflow": "mlflow"}  # the `tracking:` key -> the module it needs
KEY_TAG = "bench.key"  # the MLflow tag (and W&B run id) that identifies a run with its record
PROVENANCE = ("key", "git_commit", "versions", "host", "device", "job_id", "created")  # wall time: a metric
METRICS = ("accuracy", "wall_time_s", "distill_time_s", "expert_time_s")


class TrackerError(RuntimeError):
    """`bench export` could not send a record; the message says how far it got and what to do."""


class Tracker(Protocol):
    name: ClassVar[str]  # the `tracking:` key: wandb | mlflow

    def log(self, record: Record) -> None:
        """One run for `record`: its name, config, accuracy (or why it diverged) and provenance."""

    def logged(self) -> set[str]:
        """The keys of the records already there (as far as the tracker can tell), for `bench export`."""

    def where(self) -> str:
        """Where runs go, for messages."""


def cell_name(record: Record) -> str:
    """suite/method/dataset/ipcN/arch: the cell a run belongs to (the Whole Dataset row has no IPC)."""
    ipc = [f"ipc{record.ipc}"] if record.ipc is not None else []
    return "/".join([record.suite, record.method_label or record.kind, record.dataset, *ipc, record.eval_arch])


def run_name(record: Record) -> str:
    return f"{cell_name(record)}/seed{record.eval_seed}"


def split(record: Record) -> tuple[dict[str, Any], dict[str, float], dict[str, Any]]:
    """(config, metrics, provenance) of a record: what defines the run, what it measured, where it ran."""
    fields = asdict(record)
    provenance = {k: fields[k] for k in PROVENANCE}
    metrics = {k: float(fields[k]) for k in METRICS if fields[k] is not None}
    config = {k: v for k, v in fields.items() if k not in (*PROVENANCE, *METRICS, "diverged", "schema_version")}
    return config | {"key": record.key}, metrics, provenance


@dataclass(frozen=True)
class WandbTracker:
    """One W&B run per record, with the record's key as the run id: logging a record again resumes its run
    instead of adding one. Runs of a cell share a group, so W&B shows their mean and spread."""

    project: str
    entity: str | None = None
    mode: str | None = None  # online | offline | disabled; None: W&B's own (WANDB_MODE, `wandb offline`)
    name: ClassVar[str] = "wandb"

    def log(self, record: Record) -> None:
        import wandb
        config, metrics, provenance = split(record)
        run = wandb.init(project=self.project, entity=self.entity, mode=self.mode, id=record.key, resume="allow",
                         name=run_name(record), group=cell_name(record), job_type=record.kind,
                         config=config | {"provenance": provenance},
                         settings=wandb.Settings(silent=True, console="off"))
        try:
            run.summary.update(metrics | ({"diverged": record.diverged} if record.diverged else {}))
        finally:
            run.finish()

    def logged(self) -> set[str]:
        """Offline, the runs already written under the wandb folder (`offline-run-<time>-<id>`); online, none is
        known without a query, and sending a record again resumes its run (its id is the key), never a copy."""
        import wandb
        settings = wandb.setup().settings
        if (self.mode or settings.mode) != "offline":
            return set()
        return {p.name.rsplit("-", 1)[1] for p in Path(settings.wandb_dir).glob("offline-run-*-*")}

    def where(self) -> str:
        return f"W&B project {'/'.join(filter(None, [self.entity, self.project]))}"


@dataclass(frozen=True)
class MlflowTracker:
    """One MLflow run per record in `experiment`, tagged `bench.key`: params are the config flattened to
    dotted names, metrics the accuracy and times, tags the provenance."""

    uri: str
    experiment: str = "bench"
    name: ClassVar[str] = "mlflow"

    def log(self, record: Record) -> None:
        client, experiment = _mlflow(self.uri, self.experiment)
        from mlflow.entities import Metric, Param
        config, metrics, provenance = split(record)
        end = int(datetime.fromisoformat(record.created).timestamp() * 1000)
        start = end - int(record.wall_time_s * 1000)
        tags = {f"bench.{k}": v for k, v in _flat(provenance).items()} | {
            KEY_TAG: record.key, "bench.suite": record.suite, "bench.cell": cell_name(record),
            "mlflow.source.git.commit": record.git_commit or ""}
        if record.diverged:
            tags["bench.diverged"] = record.diverged
        run = client.create_run(experiment, start_time=start, tags=tags, run_name=run_name(record)).info.run_id
        params = [Param(k, v) for k, v in _flat(config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a call
            client.log_batch(run, params=params[i:i + 100])
        client.log_batch(run, metrics=[Metric(k, v, end, 0) for k, v in metrics.items()])
        client.set_terminated(run, end_time=end)

    def logged(self) -> set[str]:
        client, experiment = _mlflow(self.uri, self.experiment)
        keys, token = set(), None
        while True:
            page = client.search_runs([experiment], max_results=1000, page_token=token)
            keys.update(r.data.tags[KEY_TAG] for r in page if KEY_TAG in r.data.tags)
            token = page.token
            if not token:
                return keys

    def where(self) -> str:
        return f"MLflow experiment '{self.experiment}' at {self.uri}"


@cache
def _mlflow(uri: str, experiment: str) -> tuple[Any, str]:
    """An MLflow client of `uri` and the id of `experiment` (created if missing), once per process.

    MLflow's file store does not keep experiment names unique: SLURM jobs or workers starting together would each
    create their own experiment of that name, and their runs would be split between them. For a folder, the
    lookup and creation hold an exclusive lock on a file in it.

    MLflow 3 sends usage telemetry to its makers unless told not to: bench tells it not to, before MLflow is
    imported, unless the user's environment says otherwise (`MLFLOW_DISABLE_TELEMETRY=false`)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if not uri.startswith("file:"):
        return _experiment(uri, experiment)
    import fcntl
    # bench.yaml names a folder: MLflow 3 keeps its file store only for those who say so.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    folder = Path(url2pathname(urlparse(uri).path))
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".bench-experiments.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _experiment(uri, experiment)


def _experiment(uri: str, experiment: str) -> tuple[Any, str]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return client, found.experiment_id
    try:
        return client, client.create_experiment(experiment)
    except MlflowException:  # another worker created it first
        return client, client.get_experiment_by_name(experiment).experiment_id


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested values as dotted names and text, as MLflow's params and tags hold them."""
    out = {}
    for k, v in values.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        elif v is not None:
            out[f"{prefix}{k}"] = v if isinstance(v, str) else json.dumps(v)
    return out


@dataclass(frozen=True)
class Tracking:
    """The trackers of `tracking:`, called by the store with each record it has written (`Store.on_record`).
    Holds settings, so it travels to worker processes and SLURM jobs.

    A tracker that fails once gets no more records from this process: a server that is down would otherwise
    cost each task its client's retries (minutes for MLflow), and print the same warning a thousand times."""

    trackers: tuple[Tracker, ...]
    failed: set[str] = field(default_factory=set, compare=False, repr=False)  # names of the trackers given up

    def __call__(self, record: Record) -> None:
        for tracker in self.trackers:
            if tracker.name in self.failed:
                continue
            try:
                tracker.log(record)
            except Exception as exc:  # noqa: BLE001 - the record is stored; a tracker must never fail the task
                self.failed.add(tracker.name)
                log.warning("could not log record %s (%s) to %s: %s: %s. The record is in the store; this "
                            "process sends no more records to %s, and `bench export` of suite '%s' with `--to %s` "
                            "sends them later.", record.key, run_name(record), tracker.where(), type(exc).__name__,
                            exc, tracker.name, record.suite, tracker.name)


def tracking(site: Site) -> Tracking | None:
    """The trackers `site` asks for, or None; a ConfigError where a tracker's package is not installed."""
    settings = site.tracking
    trackers: list[Tracker] = []
    if settings.wandb is not None:
        trackers.append(WandbTracker(settings.wandb.project, settings.wandb.entity, settings.wandb.mode))
    if settings.mlflow is not None:
        trackers.append(MlflowTracker(settings.mlflow.uri, settings.mlflow.experiment))
    for tracker in trackers:
        if not _installed(TRACKERS[tracker.name]):
            raise site.error(("tracking", tracker.name),
                             f"logging to {tracker.name} needs the '{TRACKERS[tracker.name]}' package, which this "
                             f"Python ({sys.executable}) does not have. Install it with `pip install "
                             f"'bench[{tracker.name}]'`, or remove `tracking: {tracker.name}:`.")
    return Tracking(tuple(trackers)) if trackers else None


def tracker_for(site: Site, name: str) -> Tracker:
    """The tracker `name` of `site` (for `bench export --to NAME`); a ConfigError where bench.yaml lacks it."""
    found = tracking(site)
    for tracker in found.trackers if found else ():
        if tracker.name == name:
            return tracker
    example = {"wandb": "{wandb: {project: my-project}}", "mlflow": "{mlflow: {uri: mlruns}}"}[name]
    where = f"{site.path} has none" if site.path else "there is no bench.yaml here"
    raise ConfigError(f"`bench export --to {name}` sends records where `tracking: {name}:` in bench.yaml says, and "
                      f"{where}. Add e.g. `tracking: {example}`.")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules (hidden)
        return False


def export(records: Iterable[Record], tracker: Tracker) -> tuple[int, int]:
    """Send the records the tracker does not hold yet; (sent, already there). `TrackerError` where one fails."""
    try:
        there = tracker.logged()
    except Exception as exc:  # noqa: BLE001 - whatever the client raises, said in one paragraph
        raise TrackerError(f"could not read which runs {tracker.where()} holds: {type(exc).__name__}: {exc}") from exc
    sent = skipped = 0
    for record in records:
        if record.key in there:
            skipped += 1
            continue
        try:
            tracker.log(record)
        except Exception as exc:  # noqa: BLE001
            raise TrackerError(f"could not send record {record.key} ({run_name(record)}) to {tracker.where()}: "
                               f"{type(exc).__name__}: {exc}. {sent} record(s) were sent before it; the same "
                               f"command again sends the rest.") from exc
        there.add(record.key)
        sent += 1
    return sent, skipped
