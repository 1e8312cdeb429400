"""The store: atomic files, many concurrent writers lose nothing, artifacts written once; records and artifact
metadata read back through their types, including files written before schema versions existed."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.records import SCHEMA_VERSION, ArtifactMeta, DamagedFile, Record, RecordError
from bench.store import Store, atomic_write
from fakes import PROVENANCE, record

FIXTURES = Path(__file__).parent / "fixtures"


def _writer(root: str, worker: int, n: int) -> None:
    store = Store(Path(root))
    for i in range(n):
        # Every worker also writes the shared keys: same key -> same file, never a duplicate.
        store.write_record(record(f"w{worker:02d}r{i:03d}", float(i), job_id=str(worker)))
        store.write_record(record(f"shared{i:03d}", float(i), job_id=str(worker)))


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    workers, n = 6, 40
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, n)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()  # no time limit: a loaded machine is slow, not wrong
        assert p.exitcode == 0
    files = sorted((tmp_path / "records").rglob("*"))
    json_files = [f for f in files if f.is_file()]
    assert all(f.suffix == ".json" for f in json_files), "no temporary file may be left behind"
    assert len(json_files) == workers * n + n
    store = Store(tmp_path)
    for w in range(workers):
        for i in range(n):
            assert store.read_record(f"w{w:02d}r{i:03d}") == record(f"w{w:02d}r{i:03d}", float(i), job_id=str(w))
    assert all(store.read_record(f"shared{i:03d}").accuracy == i for i in range(n))


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "x" / "a.json"

    def explode(f) -> None:
        f.write(b"half a rec")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, explode)
    assert not target.exists() and list(target.parent.iterdir()) == []


# A run that claims the task "abc" and stops writing its record (in fsync, after the temp file) until it is killed.
STOPS_MID_WRITE = ("import os, sys, time; from pathlib import Path; sys.path.insert(0, sys.argv[2]); "
                   "from fakes import record; from bench.store import Store; store = Store(Path(sys.argv[1])); "
                   "claim = store.claim('abc'); os.fsync = lambda fd: time.sleep(3600); "
                   "store.write_record(record('abc', 1.0))")


def test_taking_over_a_killed_runs_claim_removes_the_temp_file_it_was_writing(tmp_path: Path) -> None:
    """kill -9 between a record's temp file and its rename leaves the hidden temp file, never a partial record;
    the run that takes the dead run's claim over removes it, and leaves the temp files of other writers."""
    writer = subprocess.Popen([sys.executable, "-c", STOPS_MID_WRITE, str(tmp_path), str(Path(__file__).parent)])
    while not (left := list(tmp_path.rglob(".abc.json.*.tmp"))):
        assert writer.poll() is None, "the writer ended before writing"
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    folder = left[0].parent
    running = folder / f".abd.json.{socket.gethostname()}.{os.getpid()}.0badc0de.tmp"
    elsewhere = folder / f".abd.json.another-host.{writer.pid}.0badc0de.tmp"
    for planted in (running, elsewhere):
        planted.write_bytes(b"half")
    store = Store(tmp_path)
    assert not store.has_record("abc") and len(left) == 1
    with store.claim("abc"):
        assert sorted(folder.glob(".*.tmp")) == sorted([running, elsewhere])
        store.write_record(record("abc", 2.0))
    assert store.read_record("abc").accuracy == 2.0


def test_a_failed_write_keeps_the_previous_version(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_record(record("abc", 1.0))
    path = next((tmp_path / "records").rglob("abc.json"))
    with pytest.raises(RuntimeError):
        atomic_write(path, lambda f: (f.write(b"{"), (_ for _ in ()).throw(RuntimeError("killed"))))
    assert json.loads(path.read_text())["accuracy"] == 1.0


def test_artifacts_round_trip_and_are_written_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    images = torch.arange(6.0).view(2, 3)
    first = ArtifactMeta("k1", {"kind": "distill", "seed": 0}, 1.5, PROVENANCE, format="images", bytes=40)
    store.save_artifact({"images": images, "labels": torch.tensor([0, 1])}, first)
    store.save_artifact({"images": images * 0, "labels": torch.tensor([0, 1])}, ArtifactMeta("k1", {}, 9.0, PROVENANCE))
    tensors, meta = store.load_artifact("k1")
    assert torch.equal(tensors["images"], images) and meta == first
    assert store.has_artifact("k1") and not store.has_artifact("k2")


def test_a_record_written_before_schema_versions_reads_through_the_type(tmp_path: Path) -> None:
    """tests/fixtures/record_v1.json was written by `bench run` before records had a schema version."""
    text = (FIXTURES / "record_v1.json").read_text()
    rec = Record.from_json(text)
    assert (rec.schema_version, rec.kind, rec.group) == (1, "evaluate", None)
    assert (rec.method, rec.dataset, rec.ipc, rec.eval_arch, rec.eval_seed) == ("dm", "digits", 1, "MLP", 0)
    assert rec.accuracy == json.loads(text)["accuracy"] and rec.artifact_bytes == 2640 and rec.train_bytes == 331848
    assert Record.from_json(rec.to_json()) == rec
    path = tmp_path / "records" / rec.key[:2] / f"{rec.key}.json"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    store = Store(tmp_path)
    assert store.read_record(rec.key) == rec and store.read_records([rec.key, "absent"]) == [rec]
    assert store.read_fields([rec.key], ("accuracy", "kind", "schema_version")) == [(rec.accuracy, "evaluate", 1)]
    older = {k: v for k, v in json.loads(text).items()  # fields added while records had no version
             if k not in ("train_bytes", "expert_time_s", "budget_bytes", "over_budget")}
    old = Record.from_json(json.dumps(older))
    assert (old.train_bytes, old.expert_time_s, old.budget_bytes, old.over_budget) == (None, 0.0, None, False)


def test_a_record_of_a_newer_bench_or_with_unknown_fields_is_refused(tmp_path: Path) -> None:
    newer = json.loads(record("k", 1.0).to_json()) | {"schema_version": 99}
    with pytest.raises(RecordError, match=f"schema version 99; this bench reads up to {SCHEMA_VERSION}. Update bench"):
        Record.from_json(json.dumps(newer))
    path = tmp_path / "records" / "k" / "k.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(newer))
    with pytest.raises(RecordError, match="Update bench"):
        Store(tmp_path).read_fields(["k"], ("accuracy",))
    with pytest.raises(RecordError, match="fields that no schema version of Record has: acc"):
        Record.from_json(json.dumps(json.loads(record("k", 1.0).to_json()) | {"acc": 1.0}))
    with pytest.raises(RecordError, match="no field acc"):
        Store(tmp_path).read_fields(["k"], ("acc",))


def test_artifact_metadata_written_before_schema_versions_reads_through_the_type() -> None:
    """tests/fixtures/artifact_meta_v1.json: a synthetic set's metadata as `bench run` stored it, flat."""
    meta = ArtifactMeta.from_json((FIXTURES / "artifact_meta_v1.json").read_text())
    assert (meta.schema_version, meta.key, meta.format, meta.bytes, meta.image_bytes) == (
        1, "5ff93ddcfcf3b6354aba", "images", 2640, 2560)
    assert (meta.budget_bytes, meta.over_budget, meta.expert_time_s) == (2560, False, 0)
    assert meta.time_s == 2.3417307440000172 and meta.provenance["host"] == "vm" and meta.provenance["job_id"] is None
    assert meta.identity == {"kind": "distill", "method": "dm", "version": 1, "dataset": "digits", "ipc": 1,
                             "arch": "ConvNet", "seed": 0, "experts": [], "params": meta.identity["params"]}
    assert ArtifactMeta.from_json(meta.to_json()) == meta


def _damage_record(path: Path, fault: str) -> None:
    """Damage a sealed record file as a disk, a cut-short copy or a careless edit would."""
    text = path.read_bytes()
    raw = json.loads(text)
    unsealed = json.dumps({k: v for k, v in raw.items() if k != "checksum"} | {"schema_version": 2}).encode()
    damaged = {
        "truncated": text[:len(text) // 2], "zero_bytes": b"", "empty_object": b"{}", "list": b"[]",
        "not_utf8": unsealed.replace(b'"digits"', b'"d\xffgits"'),
        "accuracy_string": text.replace(b'"accuracy": 1.5', b'"accuracy": "1.5"'),
        "accuracy_string_unsealed": unsealed.replace(b'"accuracy": 1.5', b'"accuracy": "1.5"'),
        "checksum_cut": json.dumps({k: v for k, v in raw.items() if k != "checksum"}).encode(),
        "other_key": text.replace(b'"key": "abc1"', b'"key": "abc2"'),
    }[fault]
    path.write_bytes(damaged)


@pytest.mark.parametrize("fault, reason", [
    ("truncated", "not valid JSON, or it was cut short"), ("zero_bytes", "empty (zero bytes)"),
    ("empty_object", "lacks the Record field(s) accuracy, created"), ("list", "holds a list, not a JSON object"),
    ("not_utf8", "not UTF-8 text"), ("accuracy_string", "checksum does not match"),
    ("accuracy_string_unsealed", "field 'accuracy' is a string"), ("checksum_cut", "no checksum at its end"),
    ("other_key", "checksum does not match"),
])
def test_a_damaged_record_is_quarantined_with_its_reason_and_counts_as_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture, fault: str, reason: str) -> None:
    store = Store(tmp_path)
    store.write_record(record("abc1", 1.5))
    store.write_record(record("abc0", 2.5))
    path = tmp_path / "records" / "ab" / "abc1.json"
    _damage_record(path, fault)
    assert store.read_fields(["abc0", "abc1"], ("key", "accuracy")) == [("abc0", 2.5)]
    moved = tmp_path / "quarantine" / "records" / "ab" / "abc1.json"
    assert not path.exists() and moved.exists()
    note = (tmp_path / "quarantine" / "records" / "ab" / "abc1.json.reason.txt").read_text()
    assert note.startswith("records/ab/abc1.json: it") and reason in note and "Quarantined 20" in note
    err = capsys.readouterr().err
    assert f"warning: {path} is damaged: " in err and reason in err and str(moved) in err and "bench run" in err
    assert [q.path for q in store.quarantined] == [path] and not store.has_record("abc1")
    assert store.has_record("abc0") and store.read_record("abc1") is None


def test_a_record_that_is_not_in_its_own_file_is_refused(tmp_path: Path) -> None:
    """Whether it is checked without parsing (has_record) or parsed (read_fields)."""
    store = Store(tmp_path)
    store.write_record(record("abc1", 1.5))
    folder = tmp_path / "records" / "ab"
    for copy in ("abc2", "abc3"):
        (folder / f"{copy}.json").write_bytes((folder / "abc1.json").read_bytes())
    assert not store.has_record("abc2") and store.read_fields(["abc3"], ("key",)) == [] and store.has_record("abc1")
    assert [q.reason for q in store.quarantined] == [
        f"it holds the record of another key than '{k}', the key in its file name" for k in ("abc2", "abc3")]


def test_a_written_record_ends_with_the_checksum_of_the_text_before_it(tmp_path: Path) -> None:
    text = record("abc", 1.0).to_json()
    body, tail = text.rsplit(',\n "checksum": "', 1)
    assert tail == hashlib.sha256((body + "\n}").encode()).hexdigest() + '"\n}'
    with pytest.raises(DamagedFile, match="field 'accuracy' is a string"):
        record("abc", "1.0").to_json()  # refused at write time: it would not read back


def _artifact_file(store: Store, key: str) -> Path:
    meta = ArtifactMeta(key, {"kind": "distill"}, 1.0, PROVENANCE, format="images", bytes=40)
    store.save_artifact({"images": torch.arange(600.0).view(20, 30), "labels": torch.arange(20)}, meta)
    return store.root / "artifacts" / key[:2] / f"{key}.pt"


@pytest.mark.parametrize("fault, reason", [
    ("zero_bytes", "empty (zero bytes)"), ("truncated", "torch cannot load it"),
    ("a_tensor", "is not an artifact"), ("flipped", "checksum does not match its tensors"),
])
def test_a_damaged_artifact_is_quarantined_and_counts_as_missing(tmp_path: Path, fault: str, reason: str) -> None:
    path = _artifact_file(Store(tmp_path), "k1")
    data = path.read_bytes()
    if fault == "flipped":  # one bit of the images, whose bytes are stored raw in the zip
        at = data.index(torch.arange(600.0).view(20, 30).numpy().tobytes()[400:416]) + 3
        data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]
    elif fault == "a_tensor":
        torch.save(torch.ones(3), path)
        data = path.read_bytes()
    path.write_bytes({"zero_bytes": b"", "truncated": data[:len(data) // 2]}.get(fault, data))
    store = Store(tmp_path)
    message = f"{re.escape(str(path))} is damaged: .*{re.escape(reason)}.*moved to .*quarantine.*`bench run`"
    with pytest.raises(DamagedFile, match=message):
        store.load_artifact("k1")
    assert (tmp_path / "quarantine" / "artifacts" / "k1" / "k1.pt.reason.txt").exists() and not path.exists()
    assert not Store(tmp_path).has_artifact("k1")
    _artifact_file(store, "k1")  # a rerun writes it again
    assert Store(tmp_path).has_artifact("k1")


def test_an_artifact_written_before_checksums_still_loads(tmp_path: Path) -> None:
    """tests/fixtures/whole_v1.pt has no checksum: it is verified by its layout and metadata alone."""
    store = Store(tmp_path)
    key = json.loads(torch.load(FIXTURES / "whole_v1.pt", weights_only=True)["meta"])["key"]
    path = tmp_path / "artifacts" / key[:2] / f"{key}.pt"
    path.parent.mkdir(parents=True)
    path.write_bytes((FIXTURES / "whole_v1.pt").read_bytes())
    tensors, meta = store.load_artifact(key)
    assert meta.schema_version == 1 and float(tensors["accuracy"]) > 0 and store.has_artifact(key)


def test_a_damaged_checkpoint_is_discarded_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    store = Store(tmp_path)
    path = store.checkpoint_path("k1")
    atomic_write(path, lambda f: torch.save({"format": 2, "iteration": 5, "state": {}}, f))
    assert store.checkpoint_path("k1") == path and path.exists()  # a sound one is kept
    path.write_bytes(path.read_bytes()[:100])
    assert store.checkpoint_path("k1") == path and not path.exists()
    err = capsys.readouterr().err
    assert f"warning: {path} is damaged: torch cannot load it" in err and "starts from scratch" in err
    assert (tmp_path / "quarantine" / "checkpoints" / "k1" / "k1.pt.reason.txt").exists()


def test_verify_checks_every_file_of_the_store_or_of_some_keys(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for i in range(3):
        store.write_record(record(f"r{i}", 1.0))
    _artifact_file(store, "a0")
    _artifact_file(store, "a1").write_bytes(b"")
    (tmp_path / "records" / "r2" / "r2.json").write_bytes(b"{")
    assert Store(tmp_path).verify(["r0", "a0", "absent"]) == 2
    fresh = Store(tmp_path)
    assert fresh.verify() == 5 and sorted(q.path.name for q in fresh.quarantined) == ["a1.pt", "r2.json"]
    assert Store(tmp_path).verify() == 3 and not Store(tmp_path).quarantined


def test_a_damaged_file_in_a_store_read_only_here_is_skipped_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    store.write_record(record("abc1", 1.5))
    (tmp_path / "records" / "ab" / "abc1.json").write_bytes(b"")

    def read_only(*args) -> None:
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr("bench.store.os.replace", read_only)
    assert store.read_fields(["abc1"], ("accuracy",)) == [] and not store.has_record("abc1")
    assert "could not be moved to quarantine (the store is read-only here), so it is skipped" in capsys.readouterr().err


def test_a_claim_is_exclusive_until_released(tmp_path: Path) -> None:
    from bench.store import Claim, Holder
    store = Store(tmp_path)
    claim = store.claim("ab12")
    assert isinstance(claim, Claim)
    held = store.claim("ab12")
    assert isinstance(held, Holder) and held.pid == os.getpid() and store.holder("ab12") == held
    claim.release()
    assert store.holder("ab12") is None
    with store.claim("ab12"):
        assert store.holder("ab12") is not None
    assert not claim.path.exists()


@pytest.mark.parametrize("host, age_s, taken", [
    ("elsewhere", 2 * 600.0, True),  # another host's heartbeat older than the stale timeout: its holder is dead
    ("elsewhere", 10.0, False),  # a recent heartbeat on another host: alive, whatever its pid
    ("here", 10.0, True),  # this host, and no process with that pid: dead at once (kill -9)
])
def test_the_claim_of_a_dead_holder_is_taken_over(tmp_path: Path, capfd, host: str, age_s: float,
                                                  taken: bool) -> None:
    import socket
    import time

    from bench.store import STALE_AFTER_S, Claim
    assert STALE_AFTER_S == 600.0
    store = Store(tmp_path)
    path = tmp_path / "claims" / "ab" / "ab12.claim"
    path.parent.mkdir(parents=True)
    dead_pid = max(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()) + 10_000
    path.write_text(json.dumps({"host": socket.gethostname() if host == "here" else "elsewhere", "pid": dead_pid,
                                "token": "t", "since": "2026-01-01T00:00:00+00:00"}))
    os.utime(path, (time.time() - age_s,) * 2)
    claim = store.claim("ab12")
    assert isinstance(claim, Claim) == taken
    assert ("taking over task ab12 from a holder that is gone" in capfd.readouterr().err) == taken
    if taken:
        claim.release()


@pytest.mark.parametrize("age_s, taken", [(1.0, False), (2 * 600.0, True)])
def test_an_unreadable_claim_is_judged_by_its_age(tmp_path: Path, age_s: float, taken: bool) -> None:
    """A claim file being written this instant is not broken; one cut short long ago is."""
    import time

    from bench.store import Claim
    path = tmp_path / "claims" / "ab" / "ab12.claim"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"host": "x", "pi')
    os.utime(path, (time.time() - age_s,) * 2)
    assert isinstance(Store(tmp_path).claim("ab12"), Claim) == taken


def _stage(store: Store, key: str = "t1") -> dict[str, torch.Tensor]:
    """A trajectory-shaped stage (3 experts x 4 snapshots x 10 parameters), saved with its trajectories stored
    one file per expert, as `run_expert` saves MTT's."""
    tensors = {"trajectories": torch.randn(3, 4, 10, generator=torch.Generator().manual_seed(0)),
               "test_accuracy": torch.tensor([90.0, 91.0, 92.0])}
    store.save_artifact(tensors, ArtifactMeta(key, {"kind": "expert"}, 1.0, PROVENANCE), parts=("trajectories",))
    return tensors


def test_rows_stored_apart_read_back_one_file_each_equal_to_the_tensor(tmp_path: Path) -> None:
    from bench.store import Parts
    store = Store(tmp_path)
    written = _stage(store)
    rows = sorted(p.name for p in (tmp_path / "artifacts" / "t1" / "t1.parts").iterdir())
    assert rows == ["trajectories.0.pt", "trajectories.1.pt", "trajectories.2.pt"]
    main = torch.load(tmp_path / "artifacts" / "t1" / "t1.pt", weights_only=True)
    assert set(main["tensors"]) == {"test_accuracy"} and main["parts"]["trajectories"]["shape"] == [3, 4, 10]
    tensors, meta = Store(tmp_path).load_artifact("t1")
    trajectories = tensors["trajectories"]
    assert isinstance(trajectories, Parts) and len(trajectories) == 3 and trajectories.shape == (3, 4, 10)
    assert torch.equal(torch.stack([trajectories[e] for e in range(3)]), written["trajectories"])
    assert torch.equal(trajectories[1][2], written["trajectories"][1, 2])  # a verified row, read again
    assert torch.equal(tensors["test_accuracy"], written["test_accuracy"]) and meta.key == "t1"
    assert Store(tmp_path).has_artifact("t1") and Store(tmp_path).verify() == 1 + 3


@pytest.mark.parametrize("fault, reason", [
    ("flipped", "checksum does not match its tensor"), ("moved", "checksum does not match its tensor"),
    ("truncated", "torch cannot load it"), ("zero_bytes", "empty (zero bytes)"),
])
def test_a_damaged_row_is_quarantined_with_its_reason_and_the_artifact_counts_as_not_done(
        tmp_path: Path, capsys: pytest.CaptureFixture, fault: str, reason: str) -> None:
    written = _stage(Store(tmp_path))
    folder = tmp_path / "artifacts" / "t1" / "t1.parts"
    path = folder / "trajectories.1.pt"
    data = path.read_bytes()
    if fault == "flipped":  # one bit of expert 1's parameters, stored raw in the zip
        at = data.index(written["trajectories"][1].numpy().tobytes()[40:56]) + 3
        data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]
    path.write_bytes({"truncated": data[:len(data) // 2], "zero_bytes": b"",
                      "moved": (folder / "trajectories.2.pt").read_bytes()}.get(fault, data))
    store = Store(tmp_path)
    trajectories = store.load_artifact("t1")[0]["trajectories"]  # only the main file is read here
    assert torch.equal(trajectories[0], written["trajectories"][0])
    with pytest.raises(DamagedFile, match=f"{re.escape(str(path))} is damaged: .*{re.escape(reason)}.*quarantine"):
        trajectories[1]
    moved = tmp_path / "quarantine" / "artifacts" / "t1" / "t1.parts" / "trajectories.1.pt"
    assert moved.exists() and not path.exists()
    assert reason in moved.with_name("trajectories.1.pt.reason.txt").read_text()
    assert f"warning: {path} is damaged" in capsys.readouterr().err
    assert not store.has_artifact("t1") and not Store(tmp_path).has_artifact("t1")
    with pytest.raises(FileNotFoundError, match="a row of it stored apart is missing"):
        store.load_artifact("t1")
    _stage(store)  # `bench run` builds the stage again
    assert torch.equal(Store(tmp_path).load_artifact("t1")[0]["trajectories"][1], written["trajectories"][1])


def test_rows_of_different_shapes_are_stored_apart_from_a_list(tmp_path: Path) -> None:
    """The coresets' features: one row per class, the classes of different sizes."""
    g = torch.Generator().manual_seed(2)
    classes = [torch.randn(n, 4, generator=g) for n in (3, 5, 2)]
    Store(tmp_path).save_artifact({"class_features": classes, "forgetting": torch.zeros(10)},
                                  ArtifactMeta("f1", {"kind": "expert"}, 1.0, PROVENANCE), parts=("class_features",))
    rows = Store(tmp_path).load_artifact("f1")[0]["class_features"]
    assert len(rows) == 3 and rows.shape == (3,)
    assert all(torch.equal(rows[c], classes[c]) for c in range(3)) and Store(tmp_path).verify() == 1 + 3


def test_verify_checks_each_row_stored_apart(tmp_path: Path) -> None:
    _stage(Store(tmp_path))
    (tmp_path / "artifacts" / "t1" / "t1.parts" / "trajectories.2.pt").write_bytes(b"")
    store = Store(tmp_path)
    assert store.verify() == 1 + 3 and [q.path.name for q in store.quarantined] == ["trajectories.2.pt"]
    again = Store(tmp_path)
    assert not again.has_artifact("t1") and again.verify() == 1 and not again.quarantined  # the main file is sound


def test_a_stage_stored_whole_by_a_bench_before_parts_still_loads(tmp_path: Path) -> None:
    """The file an earlier bench wrote for MTT's stage: one tensor, the checksum over metadata and tensors."""
    trajectories = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(1))
    text = ArtifactMeta("t0", {"kind": "expert"}, 1.0, PROVENANCE).to_json()
    digest = hashlib.sha256(text.encode())
    for name, t in (("test_accuracy", torch.ones(2)), ("trajectories", trajectories)):
        digest.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode() + t.numpy().tobytes())
    path = tmp_path / "artifacts" / "t0" / "t0.pt"
    path.parent.mkdir(parents=True)
    torch.save({"tensors": {"trajectories": trajectories, "test_accuracy": torch.ones(2)}, "meta": text,
                "checksum": digest.hexdigest()}, path)
    tensors, meta = Store(tmp_path).load_artifact("t0")
    assert type(tensors["trajectories"]) is torch.Tensor and torch.equal(tensors["trajectories"], trajectories)
    assert meta.key == "t0" and Store(tmp_path).verify() == 1 and not (tmp_path / "quarantine").exists()


@pytest.mark.parametrize("settled", [True, False])
def test_a_rollup_parses_only_the_records_new_since_and_follows_every_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settled: bool) -> None:
    """`read_fields(..., rollup=suite)` gives what reading every record gives, after each kind of change to the
    store, and parses only the records written since the last call: with folders untouched since (settled: not
    listed again) and with folders changed just before the roll-up was written (listed again)."""
    from bench import store as store_module
    parsed: list[str] = []
    real = store_module.load_record
    monkeypatch.setattr(store_module, "load_record", lambda data, key: parsed.append(key) or real(data, key))
    if settled:  # this test's folders all change within the racy window, so none would ever be settled
        monkeypatch.setattr(store_module, "RACY_NS", 0)
    store = Store(tmp_path)
    for i in range(30):
        store.write_record(record(f"k{i:03d}", float(i)))
    keys, fields = [f"k{i:03d}" for i in range(31)], ("key", "accuracy")

    def read() -> list[tuple]:
        parsed.clear()
        rolled = store.read_fields(keys, fields, rollup="suite")
        n = len(parsed)
        assert rolled == store.read_fields(keys, fields)  # the same as reading every record
        del parsed[n:]
        return rolled

    assert len(read()) == 30 and len(parsed) == 30
    assert read()[-1] == ("k029", 29.0) and parsed == []  # nothing changed: nothing parsed
    store.write_record(record("k030", 30.0))  # a new record
    assert read()[-1] == ("k030", 30.0) and parsed == ["k030"]
    store.write_record(record("k005", 55.0))  # a record rewritten (a new file renamed over the old one)
    assert ("k005", 55.0) in read() and parsed == ["k005"]
    (tmp_path / "records" / "k0" / "k007.json").unlink()  # a record deleted
    assert ("k007", 7.0) not in read() and parsed == []
    # Damaged in place: the roll-up keeps what it read while the folder is unchanged, until a read that verifies
    # (`bench run`, `bench verify`, any read without a roll-up) quarantines the file, which the roll-up follows.
    (tmp_path / "records" / "k0" / "k008.json").write_text("{}")
    assert store.read_fields(["k008"], fields) == [] and ("k008", 8.0) not in read() and parsed == []
    rollup = tmp_path / "rollups" / "suite.json"
    rollup.write_bytes(rollup.read_bytes()[:-20])  # a damaged roll-up is rebuilt from the records
    assert len(read()) == 29 and len(parsed) == 29
    assert store.read_fields(keys, ("key",), rollup="suite") == [(k,) for k, _ in read()]  # other fields: rebuilt
    assert len(parsed) == 29


def test_a_rollup_of_a_read_only_store_is_not_written_and_the_result_is_right(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    store.write_record(record("k000", 1.0))
    monkeypatch.setattr("bench.atomic.os.fsync", lambda fd: (_ for _ in ()).throw(OSError(30, "Read-only")))
    assert store.read_fields(["k000"], ("accuracy",), rollup="suite") == [(1.0,)]
    assert not (tmp_path / "rollups" / "suite.json").exists()


def test_a_record_written_within_the_tick_the_rollup_saw_its_folder_is_not_missed(tmp_path: Path) -> None:
    """A folder's time does not change when a record lands in it within the same timestamp tick as the roll-up
    looked: such a folder (changed within RACY_NS of that look, by the file system's clock) is listed again."""
    store = Store(tmp_path)
    store.write_record(record("k000", 0.0))
    keys = ["k000", "k001"]
    assert store.read_fields(keys, ("accuracy",), rollup="suite") == [(0.0,)]
    folder = tmp_path / "records" / "k0"
    seen = folder.stat().st_mtime_ns
    store.write_record(record("k001", 1.0))
    os.utime(folder, ns=(seen, seen))  # the folder's time as the roll-up saw it: as if written in the same tick
    assert store.read_fields(keys, ("accuracy",), rollup="suite") == [(0.0,), (1.0,)]
    assert not [p for p in (tmp_path / "rollups").iterdir() if p.name.startswith(".clock")]
