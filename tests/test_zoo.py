"""Every built-in method end to end through `bench run` on digits, with tiny settings; stages are shared."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.methods.presets import preset_params
from bench.methods.specs import MTTParams
from conftest import write

TINY = {
    "random": "{}",
    "dm": "{iterations: 2}",
    "dc": "{iterations: 2}",
    "dsa": "{iterations: 2}",
    "idm": "{iterations: 2}",
    "mtt": "{iterations: 2, num_experts: 2, expert_train_epochs: 3, expert_epochs: 1, max_start_epoch: 2, "
           "syn_steps: 2}",
    "herding": "{feature_epochs: 2}",
    "kcenter": "{feature_epochs: 2}",
    "forgetting": "{feature_epochs: 2}",
}


def suite(methods: dict[str, str], ipc: str = "[1, 2]") -> str:
    entries = "".join(f"  - name: {name}\n    params: {params}\n" for name, params in methods.items())
    return (f"name: zoo\ndatasets: [digits]\nipc: {ipc}\neval_archs: [ConvNet]\nmethods:\n{entries}"
            f"seeds: [0]\neval: {{epochs: 2}}\n")


def records(workdir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (workdir / "results" / "records").rglob("*.json")]


@pytest.mark.slow
def test_every_method_runs_through_bench_run(bench, workdir: Path) -> None:
    write(workdir / "zoo.yaml", suite(TINY))
    code, out, err = bench("run", "zoo.yaml")
    assert code == 0, err
    # Experts: one MTT trajectory stage and ONE feature network shared by the three coresets.
    assert "(2 expert, 0 whole, 18 distill, 18 evaluate)" in out
    assert err.count("] expert trajectories digits") == 1 and err.count("] expert feature_net digits") == 1
    recs = {(r["method"], r["ipc"]): r for r in records(workdir)}
    assert set(recs) == {(m, i) for m in TINY for i in (1, 2)}
    # The coresets' features are stored one file per class, so a selection reads one class at a time.
    assert len(list((workdir / "results" / "artifacts").rglob("class_features.*.pt"))) == 10

    # Every record stores the settings actually used: the digits preset merged under the suite's params.
    digits_mtt = preset_params("mtt", "digits", 1)
    assert recs["mtt", 1]["params"]["num_experts"] == 2 != digits_mtt["num_experts"]
    assert recs["mtt", 1]["params"]["lr_img"] == digits_mtt["lr_img"] != MTTParams().lr_img
    assert recs["idm", 1]["params"]["iterations"] == 2 and recs["idm", 1]["params"]["batch_real"] == 64
    # MTT trains its evaluation networks with the lr it learned; the others with 0.01.
    assert recs["mtt", 1]["recipe"]["lr"] == "learned" and recs["mtt", 1]["lr_used"] > 0
    assert recs["dm", 1]["lr_used"] == 0.01
    # IDM stores IPC compact images per class (4 sub-images each): bytes count what is stored.
    image_bytes = 64 * 4
    assert recs["idm", 2]["artifact_bytes"] == 2 * 10 * image_bytes + 20 * 8
    assert recs["idm", 2]["artifact_format"] == "idm-quadrants"
    assert recs["idm", 2]["train_bytes"] == 1257 * image_bytes + 1257 * 8
    code, out, _ = bench("report", "zoo.yaml")
    rows = {(r["method"], r["ipc"]): r for r in pd.read_csv(workdir / "reports" / "zoo" / "results.csv").to_dict("records")}
    # The ratio uses stored bytes: IDM's 2 x 10 packed images count as 20 images, not the 80 it decodes to.
    assert rows["idm", 2]["ratio_pct"] == pytest.approx(rows["dm", 2]["ratio_pct"], abs=1e-4)
    assert rows["dm", 2]["ratio_pct"] == pytest.approx(100 * (20 * image_bytes + 20 * 8) / (1257 * (image_bytes + 8)),
                                                       abs=1e-4)
    assert "% of the training set" in (workdir / "reports" / "zoo" / "table.md").read_text()
    # MTT stores its learned lr with the images: 4 more bytes (a float32 scalar).
    assert recs["mtt", 2]["artifact_bytes"] == 2 * 10 * image_bytes + 20 * 8 + 4


@pytest.mark.slow
def test_mtt_experts_are_reused_by_a_second_cell(bench, workdir: Path) -> None:
    mtt = {"mtt": TINY["mtt"]}
    write(workdir / "a.yaml", suite(mtt, ipc="[1]"))
    code, out, err = bench("run", "a.yaml")
    assert code == 0 and "(1 expert, 0 whole, 1 distill, 1 evaluate)" in out
    # A new cell (IPC 2) and a new distillation setting: the same trajectories serve both.
    changed = TINY["mtt"].replace("iterations: 2", "iterations: 3")
    write(workdir / "b.yaml", suite({"mtt": changed}, ipc="[1, 2]"))
    code, out, err = bench("run", "b.yaml")
    assert code == 0 and "(0 expert, 0 whole, 2 distill, 2 evaluate)" in out and "] expert" not in err
    # Changing how experts are trained makes a new stage.
    write(workdir / "c.yaml", suite({"mtt": changed.replace("num_experts: 2", "num_experts: 3")}, ipc="[1]"))
    assert "(1 expert, 0 whole, 1 distill, 1 evaluate)" in bench("run", "c.yaml", "--dry-run")[1]


def test_failed_expert_stage_skips_its_cells_and_keeps_the_rest(bench, workdir: Path, monkeypatch) -> None:
    from bench.experts import EXPERT_BUILDERS

    def broken(ctx):
        raise RuntimeError("no space left for trajectories")

    monkeypatch.setitem(EXPERT_BUILDERS, "trajectories", broken)
    write(workdir / "z.yaml", suite({"random": "{}", "mtt": TINY["mtt"]}))
    code, _, err = bench("run", "z.yaml")
    assert code == 1 and "no space left for trajectories" in err and "skipping 4 task(s)" in err
    assert {(r["method"], r["ipc"]) for r in records(workdir)} == {("random", 1), ("random", 2)}
