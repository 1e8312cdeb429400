"""Trackers as a user sets them up: `tracking:` in bench.yaml logs every record of a run to W&B (offline mode, its
run files read back here) and MLflow (a local file store, queried with MlflowClient); `bench export` sends an
existing store once; a broken tracker is a warning and loses no record. Nothing here touches the network."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from bench.store import Store
from bench.tracking import KEY_TAG, MlflowTracker, Tracking, WandbTracker, _mlflow
from conftest import write
from fakes import record as fake_record

TRACKED = """\
name: tracked
datasets: [digits]
ipc: [1]
eval_archs: [MLP]
methods:
  - name: random
seeds: [0, 1]
eval: {epochs: 2}
whole_dataset: true
"""
RUNS = {"tracked/random/digits/ipc1/MLP/seed0", "tracked/random/digits/ipc1/MLP/seed1",
        "tracked/whole/digits/MLP/seed0", "tracked/whole/digits/MLP/seed1"}
SITE = "store: results\nreports: reports\ndevice: cpu\nworkers: 1\n"
WANDB = "  wandb: {project: bench-tests, mode: offline}\n"
MLFLOW = "  mlflow: {uri: mlruns, experiment: tests}\n"


@pytest.fixture
def offline(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """W&B offline with every folder of its own in the test's folder, MLflow without telemetry: no network."""
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(workdir / "wandb-home" if var != "WANDB_DIR" else workdir))
    for var, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_ERROR_REPORTING": "false",
                       "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}.items():
        monkeypatch.setenv(var, value)
    yield workdir
    import wandb
    wandb.teardown()  # W&B reads its settings once per process: the next test has other folders


def records(workdir: Path) -> dict[str, dict]:
    return {r["key"]: r for r in (json.loads(p.read_text()) for p in (workdir / "results" / "records").rglob("*.json"))}


def mlflow_runs(workdir: Path, experiment: str = "tests") -> dict[str, object]:
    """The MLflow runs of the file store bench.yaml's `uri: mlruns` names, by their `bench.key` tag (one each)."""
    client, experiment_id = _mlflow((workdir / "mlruns").resolve().as_uri(), experiment)
    runs = client.search_runs([experiment_id])
    keys = [r.data.tags[KEY_TAG] for r in runs]
    assert len(keys) == len(set(keys)), "a record was logged twice"
    return {r.data.tags[KEY_TAG]: r for r in runs}


def wandb_runs(workdir: Path) -> dict[str, dict]:
    """The offline runs under WANDB_DIR/wandb, read from each run's `.wandb` file with W&B's own protobuf types:
    by run id, its name, group, job type, config and summary."""
    from wandb.proto import wandb_internal_pb2 as pb
    runs = {}
    for path in sorted((workdir / "wandb").glob("offline-run-*/run-*.wandb")):
        run: dict = {"config": {}, "summary": {}}
        for record in _wandb_records(path.read_bytes(), pb.Record):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                r = record.run
                run |= {"id": r.run_id, "name": r.display_name, "group": r.run_group, "job_type": r.job_type,
                        "config": {u.key: json.loads(u.value_json) for u in r.config.update}}
            elif kind == "summary":
                run["summary"] |= {u.key: json.loads(u.value_json) for u in record.summary.update if u.key}
        assert run["id"] not in runs, f"run {run['id']} was written twice"
        runs[run["id"]] = run
    return runs


def _wandb_records(data: bytes, message: type) -> list:
    """The records of a `.wandb` file: a 7-byte header, then 32 KiB blocks of chunks (crc32, length, type; type
    1 a whole record, 2/3/4 its first/middle/last part), the LevelDB log format W&B writes."""
    assert data[:4] == b":W&B"
    out, pos, parts = [], 7, b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a chunk header is padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        parts += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            out.append(message.FromString(parts))
            parts = b""
    return out


def check_logged(record: dict, mlflow_run, wandb_run: dict) -> None:
    """What one record must have left in both trackers: name, config, accuracy and provenance."""
    name = "/".join(["tracked", record["method_label"] or "whole", "digits"]
                    + ([f"ipc{record['ipc']}"] if record["ipc"] else []) + ["MLP", f"seed{record['eval_seed']}"])
    assert name in RUNS
    data = mlflow_run.data
    assert mlflow_run.info.run_name == name and mlflow_run.info.status == "FINISHED"
    assert data.metrics["accuracy"] == pytest.approx(record["accuracy"])
    assert data.metrics["wall_time_s"] == pytest.approx(record["wall_time_s"])
    assert data.params["method"] == record["method"] and data.params["kind"] == record["kind"]
    assert data.params["recipe.epochs"] == "2" and data.params["recipe_hash"] == record["recipe_hash"]
    assert data.params["eval_seed"] == str(record["eval_seed"]) and data.params["eval_arch"] == "MLP"
    if record["kind"] == "evaluate":
        assert data.params["params_hash"] == record["params_hash"] and data.params["ipc"] == "1"
        assert data.params["distill_seed"] == "0" and data.params["artifact_bytes"] == str(record["artifact_bytes"])
    assert data.tags["bench.suite"] == "tracked" and data.tags["bench.cell"] == name.rsplit("/", 1)[0]
    assert data.tags["bench.host"] == record["host"] and data.tags["bench.device"] == "cpu"
    assert data.tags["bench.versions.torch"] == record["versions"]["torch"]
    assert data.tags["mlflow.source.git.commit"] == (record["git_commit"] or "")

    assert wandb_run["name"] == name and wandb_run["group"] == name.rsplit("/", 1)[0]
    assert wandb_run["job_type"] == record["kind"]
    config = wandb_run["config"]
    assert config["key"] == record["key"] and config["method"] == record["method"]
    assert config["recipe"] == record["recipe"] and config["params"] == record["params"]
    assert config["eval_seed"] == record["eval_seed"] and config["distill_seed"] == record["distill_seed"]
    assert config["provenance"] == {k: record[k] for k in ("key", "git_commit", "versions", "host", "device",
                                                            "job_id", "created")}
    assert wandb_run["summary"]["accuracy"] == pytest.approx(record["accuracy"])
    assert wandb_run["summary"]["wall_time_s"] == pytest.approx(record["wall_time_s"])


@pytest.mark.slow
def test_a_run_logs_every_record_to_wandb_and_mlflow(bench, offline: Path) -> None:
    write(offline / "bench.yaml", SITE + "tracking:\n" + WANDB + MLFLOW)
    write(offline / "tracked.yaml", TRACKED)
    code, out, err = bench("run", "tracked.yaml")
    assert code == 0 and "suite complete" in out and "could not log" not in err

    stored = records(offline)
    assert len(stored) == 4 and {r["kind"] for r in stored.values()} == {"evaluate", "whole"}
    in_mlflow, in_wandb = mlflow_runs(offline), wandb_runs(offline)
    assert set(in_mlflow) == set(in_wandb) == set(stored)  # W&B's run id is the record's key
    for key, record in stored.items():
        check_logged(record, in_mlflow[key], in_wandb[key])


@pytest.mark.slow
def test_export_sends_a_store_once(bench, offline: Path) -> None:
    write(offline / "tracked.yaml", TRACKED)
    assert bench("run", "tracked.yaml")[0] == 0  # bench.yaml without `tracking:`: nothing logged
    assert not (offline / "mlruns").exists() and not (offline / "wandb").exists()

    code, _, err = bench("export", "tracked.yaml", "--to", "mlflow")
    assert code == 2 and "`tracking: mlflow:`" in err and "tracking: {mlflow: {uri: mlruns}}" in err

    write(offline / "bench.yaml", SITE + "tracking:\n" + WANDB + MLFLOW)
    for to in ("mlflow", "wandb"):
        code, out, _ = bench("export", "tracked.yaml", "--to", to)
        assert code == 0 and "4 of its 4 record(s) are in the store" in out and "sent 4 to" in out, out
        code, out, _ = bench("export", "tracked.yaml", "--to", to)
        assert code == 0 and "sent 0 to" in out and "4 already there" in out, out

    stored, in_mlflow, in_wandb = records(offline), mlflow_runs(offline), wandb_runs(offline)
    assert set(in_mlflow) == set(in_wandb) == set(stored) and len(stored) == 4
    for key, record in stored.items():
        check_logged(record, in_mlflow[key], in_wandb[key])


@pytest.mark.slow
def test_a_failing_tracker_is_one_warning_and_loses_no_record(bench, offline: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    (offline / "blocked").write_text("a file where the MLflow store's folder should be\n")
    write(offline / "bench.yaml", SITE + "tracking:\n  mlflow: {uri: blocked/mlruns, experiment: tests}\n")
    write(offline / "tracked.yaml", TRACKED)
    code, out, err = bench("run", "tracked.yaml")
    assert code == 0 and "done: 5 task(s) ran" in out
    shown = err + caplog.text  # the warning: on stderr, or in pytest's capture where bench's logging is not set up
    assert shown.count("could not log record") == 1, shown  # then this run gives MLflow up
    assert "NotADirectoryError" in shown and "`bench export` of suite 'tracked' with `--to mlflow`" in shown
    assert len(records(offline)) == 4
    code, _, err = bench("export", "tracked.yaml", "--to", "mlflow")  # an export fails as a whole: one error
    assert code == 1 and err.startswith("error: could not read which runs MLflow experiment 'tests'") and \
        "NotADirectoryError" in err and err.count("\n") == 1, err

    write(offline / "bench.yaml", SITE + "tracking:\n" + MLFLOW)
    code, out, _ = bench("export", "tracked.yaml", "--to", "mlflow")
    assert code == 0 and "sent 4 to MLflow experiment 'tests'" in out
    assert set(mlflow_runs(offline)) == set(records(offline))


@pytest.mark.slow
def test_workers_log_what_they_write(bench, offline: Path) -> None:
    write(offline / "bench.yaml", SITE + "tracking:\n" + MLFLOW)
    write(offline / "tracked.yaml", TRACKED)
    code, out, err = bench("run", "tracked.yaml", "--workers", "2")
    assert code == 0 and "suite complete" in out and "could not log" not in err
    assert set(mlflow_runs(offline)) == set(records(offline)) and len(records(offline)) == 4


def test_tracking_mistakes_are_one_paragraph_each(bench, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(workdir / "tracked.yaml", TRACKED)
    write(workdir / "bench.yaml", SITE + "tracking:\n  tensorboard: {logdir: tb}\n")
    code, _, err = bench("validate", "bench.yaml")
    assert code == 2 and "key 'tracking.tensorboard'" in err and "unknown key 'tensorboard'" in err
    assert "Valid keys here: mlflow, wandb." in err

    write(workdir / "bench.yaml", SITE + "tracking:\n  wandb: {entity: my-lab}\n")
    code, _, err = bench("validate", "bench.yaml")
    assert code == 2 and "required key 'project' is missing" in err

    write(workdir / "bench.yaml", SITE + "tracking:\n  mlflow: {uri: ''}\n")
    code, _, err = bench("validate", "bench.yaml")
    assert code == 2 and "key 'tracking.mlflow.uri': must not be empty, got ''." in err

    write(workdir / "bench.yaml", SITE + "tracking:\n" + WANDB)
    monkeypatch.setitem(sys.modules, "wandb", None)  # as where the extra is not installed
    for args in (("validate", "bench.yaml"), ("validate", "tracked.yaml"), ("run", "tracked.yaml", "--dry-run")):
        code, out, err = bench(*args)
        assert code == 2 and err.count("error:") == 1 and "bench.yaml, line 6, key 'tracking.wandb'" in err, err
        assert "needs the 'wandb' package" in err and "pip install 'bench[wandb]'" in err
    assert not (workdir / "results").exists()


def test_a_diverged_run_is_logged_as_diverged_without_an_accuracy(offline: Path) -> None:
    why = "the training loss became NaN or Inf in epoch 1 (lr 1e8)"
    store = Store(offline / "results", Tracking((WandbTracker("bench-tests"), MlflowTracker(
        (offline / "mlruns").as_uri(), "tests"))))
    store.write_record(fake_record("d1verged0000000000000", None, suite="tracked", method="dm", method_label="dm",
                                   ipc=1, diverged=why))
    assert store.read_record("d1verged0000000000000").diverged == why
    run = mlflow_runs(offline)["d1verged0000000000000"]
    assert run.data.tags["bench.diverged"] == why and "accuracy" not in run.data.metrics
    assert run.info.run_name == "tracked/dm/digits/ipc1/ConvNet/seed0"
    summary = wandb_runs(offline)["d1verged0000000000000"]["summary"]
    assert summary["diverged"] == why and "accuracy" not in summary and summary["wall_time_s"] == 1.0


@pytest.mark.parametrize("user", [None, "false"])
def test_mlflow_is_told_not_to_send_telemetry_unless_the_user_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      user: str | None) -> None:
    if user is None:
        monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", user)
    assert MlflowTracker((tmp_path / "mlruns").as_uri(), "t").logged() == set()
    from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY
    assert MLFLOW_DISABLE_TELEMETRY.get() is (user is None)
