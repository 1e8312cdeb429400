"""The store: atomic files, many concurrent writers lose nothing, artifacts written once."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from bench.store import Store, atomic_write


def _writer(root: str, worker: int, n: int) -> None:
    store = Store(Path(root))
    for i in range(n):
        # Every worker also writes the shared keys: same key -> same file, never a duplicate.
        store.write_record({"key": f"w{worker:02d}r{i:03d}", "accuracy": float(i), "worker": worker})
        store.write_record({"key": f"shared{i:03d}", "accuracy": float(i), "worker": worker})


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
            assert store.read_record(f"w{w:02d}r{i:03d}") == {"key": f"w{w:02d}r{i:03d}", "accuracy": float(i),
                                                              "worker": w}
    assert all(store.read_record(f"shared{i:03d}")["accuracy"] == i for i in range(n))


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
    store.write_record({"key": "abc", "accuracy": 1.0})
    path = next((tmp_path / "records").rglob("abc.json"))
    with pytest.raises(RuntimeError):
        atomic_write(path, lambda f: (f.write(b"{"), (_ for _ in ()).throw(RuntimeError("killed"))))
    assert json.loads(path.read_text())["accuracy"] == 1.0


def test_artifacts_round_trip_and_are_written_once(tmp_path: Path) -> None:
    store = Store(tmp_path)
    images = torch.arange(6.0).view(2, 3)
    store.save_artifact("k1", {"images": images, "labels": torch.tensor([0, 1])}, {"bytes": 40, "note": "first"})
    store.save_artifact("k1", {"images": images * 0, "labels": torch.tensor([0, 1])}, {"note": "second"})
    tensors, meta = store.load_artifact("k1")
    assert torch.equal(tensors["images"], images) and meta == {"bytes": 40, "note": "first"}
    assert store.has_artifact("k1") and not store.has_artifact("k2")
