"""The store: atomic files, many concurrent writers lose nothing, artifacts written once; records and artifact
metadata read back through their types, including files written before schema versions existed."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from bench.records import ArtifactMeta, Record, RecordError
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
        p.join(60)
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
    with pytest.raises(RecordError, match="schema version 99; this bench reads up to 2. Update bench"):
        Record.from_json(json.dumps(newer))
    path = tmp_path / "records" / "k" / "k.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(newer))
    with pytest.raises(RecordError, match="Update bench"):
        Store(tmp_path).read_fields(["k"], ("accuracy",))
    with pytest.raises(RecordError, match="fields no schema version has: acc"):
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
