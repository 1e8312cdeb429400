"""Label regimes (hard / soft / teacher) and DD-Ranking's fairness scores: the losses and formulas against numbers
worked by hand, the recipe's hashed identity, soft labels stored with a set, and a digits suite under a teacher
with its fairness table, run as a user runs it."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import write

from bench.methods.base import SyntheticSet
from bench.plan import content_key
from bench.recipes import PRESETS, EvalRecipe
from bench.report.fairness import (augmentation_robust_score, hard_label_recovery, improvement_over_random,
                                   label_robust_score)
from bench.train import kd_divergence, soft_cross_entropy


def test_soft_cross_entropy_by_hand() -> None:
    # student logits (0, ln 3) at T 1: log-probabilities ln(1/4), ln(3/4); target logits (0, 0): (1/2, 1/2).
    loss = soft_cross_entropy(torch.tensor([[0.0, math.log(3)]]), torch.tensor([[0.0, 0.0]]), 1.0)
    assert float(loss) == pytest.approx(-(0.5 * math.log(0.25) + 0.5 * math.log(0.75)), abs=1e-6)  # 0.837
    # T 2 halves both, and the loss is scaled by T^2 = 4: student (0, ln 3 / 2) -> p = (1/(1+sqrt 3), sqrt 3/(1+sqrt 3)); target one-hot-ish (0, 4) ->
    # softmax(0, 2) = (1/(1+e^2), e^2/(1+e^2)). Mean over a batch of two equal rows is the row's loss.
    s, t = torch.tensor([[0.0, math.log(3)]] * 2), torch.tensor([[0.0, 4.0]] * 2)
    p = [1 / (1 + math.sqrt(3)), math.sqrt(3) / (1 + math.sqrt(3))]
    q = [1 / (1 + math.e ** 2), math.e ** 2 / (1 + math.e ** 2)]
    assert float(soft_cross_entropy(s, t, 2.0)) == pytest.approx(
        -4 * sum(qi * math.log(pi) for pi, qi in zip(p, q)), abs=1e-6)


def test_kd_divergence_by_hand() -> None:
    # T^2 KL(q || p) with q = softmax(teacher / T), p = softmax(student / T), batchmean; zero when they agree.
    s, t = torch.tensor([[0.0, math.log(3)]]), torch.tensor([[0.0, 0.0]])
    want = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # 0.1438
    assert float(kd_divergence(s, t, 1.0)) == pytest.approx(want, abs=1e-6)
    assert float(kd_divergence(t * 3, t * 3, 20.0)) == pytest.approx(0.0, abs=1e-7)
    # Logits 20x larger at T 20 give the same softmaxes; the T^2 scaling multiplies the divergence by 400.
    assert float(kd_divergence(s * 20, t, 20.0)) == pytest.approx(400 * want, abs=1e-4)


def test_score_formulas_by_hand() -> None:
    assert improvement_over_random(52.0, 47.0) == 5.0
    assert hard_label_recovery(97.0, 77.0) == 20.0
    # alpha = 0.5 * 0.05 - 0.5 * 0.20 = -0.075; LRS = (e^-0.075 - e^-1) / (e - e^-1) = 0.559864 / 2.350402
    assert label_robust_score(5.0, 20.0) == pytest.approx(0.238199, abs=1e-6)
    # w = 1: alpha = IOR only; IOR 100 points gives alpha 1, the top of the scale; HLR 100 with w 0 the bottom.
    assert label_robust_score(100.0, 50.0, weight=1.0) == pytest.approx(1.0)
    assert label_robust_score(0.0, 100.0, weight=0.0) == pytest.approx(0.0, abs=1e-12)
    # beta = 0.5 * 0.10 + 0.5 * (-0.02) = 0.04; ARS = (e^0.04 - e^-1) / (e - e^-1) = 0.672931 / 2.350402
    assert augmentation_robust_score(10.0, -2.0) == pytest.approx(0.286305, abs=1e-6)


def test_hard_labels_keep_every_existing_recipe_key() -> None:
    """A recipe under hard labels hashes as before the regimes existed; unused regime fields are dropped."""
    assert content_key(PRESETS["standard"].as_dict()) == "d626e2b298a3f96cc4dc"
    assert content_key(PRESETS["mtt"].as_dict()) == "f8f98a8f7796f828ed3e"
    assert EvalRecipe(temperature=4.0, teacher_epochs=3).as_dict() == EvalRecipe().as_dict()
    teacher = EvalRecipe(labels="teacher")
    assert (teacher.temperature, teacher.teacher_epochs, teacher.teacher_arch) == (20.0, 200, None)
    assert EvalRecipe(labels="soft", teacher_arch="MLP").as_dict() == {**EvalRecipe().as_dict(), "labels": "soft",
                                                                       "temperature": 1.0}
    # A change of regime starts from its defaults, not from the preset's regime's.
    assert PRESETS["teacher"].with_overrides({"labels": "soft"}).temperature == 1.0
    assert EvalRecipe(labels="soft", temperature=2).as_dict() == EvalRecipe(labels="soft", temperature=2.0).as_dict()
    with pytest.raises(ValueError, match="batch_seeds trains a cell's seeds together with hard labels only"):
        EvalRecipe(labels="teacher", batch_seeds=True)


def test_soft_labels_are_stored_bytes_and_checked() -> None:
    images, labels = torch.zeros(20, 1, 8, 8), torch.arange(10).repeat_interleave(2)
    plain = SyntheticSet(images, labels)
    soft = SyntheticSet(images, labels, soft_labels=torch.randn(20, 10))
    assert soft.nbytes == plain.nbytes + 20 * 10 * 4 and soft.image_nbytes == plain.image_nbytes
    again = SyntheticSet.from_tensors(soft.tensors())
    assert torch.equal(again.soft_labels, soft.soft_labels)
    from bench.data import DATASETS
    wrong = SyntheticSet(images, labels, soft_labels=torch.randn(20, 9))
    assert any("soft labels must be float logits of shape (20, 10)" in p for p in wrong.problems(2, DATASETS["digits"]))


TEACHER_SUITE = """\
name: regimes
datasets: [digits]
ipc: [2]
eval_archs: [ConvNet]
methods:
  - name: random
    label: Random
  - name: random
    label: Random (teacher)
    eval: {labels: teacher, teacher_epochs: 2, temperature: 4}
seeds: [0]
eval: {epochs: 3}
whole_dataset: {epochs: 2}
report: {views: [paper_table, fairness], fairness: {lrs_weight: 0.5, columns: [ior, lrs]}}
"""


@pytest.mark.slow
def test_teacher_regime_runs_and_the_fairness_view_scores_it(bench, workdir) -> None:
    """`labels: teacher` plans one teacher stage (an expert), relabels every batch with it, records the regime;
    the fairness view pairs the cell with random under the same regime and the hard-label run, and the paper table
    shows the IOR and LRS the suite names under `fairness: {columns}` beside each cell."""
    write(workdir / "regimes.yaml", TEACHER_SUITE.replace("  - name: random\n    label: Random (teacher)",
                                                          "  - name: dm\n    label: DM (teacher)\n    params: "
                                                          "{iterations: 2}"))
    code, out, _ = bench("run", "regimes.yaml", "--dry-run")
    # DM (teacher), Random, and what fairness adds: random under teacher labels and DM under hard labels.
    assert code == 0 and "4 cells -> 8 tasks" in out and "expert teacher digits ConvNet" in out, out
    assert "random (teacher)" in out and "DM (teacher) (hard)" in out
    code, out, err = bench("run", "regimes.yaml")
    assert code == 0 and "expert teacher digits ConvNet" in err
    import json
    records = [json.loads(p.read_text()) for p in (workdir / "results" / "records").rglob("*.json")]
    regimes = sorted(r["recipe"].get("labels", "hard") for r in records if r.get("kind") != "whole")
    assert regimes == ["hard", "hard", "teacher", "teacher"]
    teacher = next(r for r in records if r["recipe"].get("labels") == "teacher")
    assert teacher["recipe"]["temperature"] == 4.0 and teacher["recipe"]["teacher_epochs"] == 2

    code, out, _ = bench("report", "regimes.yaml")
    table = (workdir / "reports" / "regimes" / "table.md").read_text()
    assert code == 0 and "Label regimes side by side: digits, IPC 2, ConvNet" in table
    assert "| Set | labels: hard Accuracy | labels: hard IOR | labels: hard LRS (%) | labels: teacher Accuracy" in table
    acc = {(r["method_label"], r["recipe"].get("labels", "hard")): r["accuracy"] for r in records
           if r.get("kind") != "whole"}
    whole = next(r["accuracy"] for r in records if r.get("kind") == "whole")
    ior = acc["DM (teacher)", "teacher"] - acc["random (teacher)", "teacher"]
    hlr = whole - acc["DM (teacher) (hard)", "hard"]
    row = next(line for line in table.splitlines() if line.startswith("| DM (teacher) |") and "| teacher |" in line)
    assert f"| {ior:+.1f} | {hlr:+.1f} | {100 * label_robust_score(ior, hlr):.1f} |" in row
    assert "w = 0.5" in table and "– in ARS" in table
    assert "| Method | digits IPC 2 Accuracy | digits IPC 2 IOR | digits IPC 2 LRS (%) |" in table
    row = next(line for line in table.splitlines() if line.startswith("| DM (teacher) | "))  # the paper table's
    assert row.endswith(f"| {ior:+.1f} | {100 * label_robust_score(ior, hlr):.1f} |"), row


def test_fairness_scores_pair_cells_by_recipe_regime_and_set() -> None:
    """IOR against random under the same recipe and regime, HLR against the same set's hard-label cell and the
    Whole Dataset row, ARS only where the set also ran without augmentation: numbers worked by hand."""
    import pandas as pd

    from bench.report.fairness import scores
    from bench.report.inputs import MethodOptions, ReportOptions

    def entry(label: str, name: str, regime: str, key: str, bare: str) -> MethodOptions:
        return MethodOptions(label, name, "standard", {}, {"labels": regime}, recipe_key=key, hard_key="H" + key[1:],
                             bare_key=bare, whole="Whole Dataset")
    methods = (entry("random", "random", "hard", "H1", "H2"), entry("random (teacher)", "random", "teacher", "T1", "T2"),
               entry("DM", "dm", "hard", "H1", "H2"), entry("DM (teacher)", "dm", "teacher", "T1", "T2"),
               entry("DM bare", "dm", "hard", "H2", "H2"), entry("random bare", "random", "hard", "H2", "H2"))
    accs = {"random": 90.0, "random (teacher)": 95.0, "DM": 93.0, "DM (teacher)": 96.0, "DM bare": 80.0,
            "random bare": 84.0}
    frame = pd.DataFrame([{"method": m, "group": "x", "dataset": "digits", "ipc": 10, "arch": "ConvNet", "mean": a}
                          for m, a in accs.items()] + [{"method": "Whole Dataset", "group": "whole",
                                                        "dataset": "digits", "ipc": None, "arch": "ConvNet",
                                                        "mean": 98.0}])
    options = ReportOptions(name="s", description="", datasets=("digits",), ipcs=(10,), eval_archs=("ConvNet",),
                            distill_arch="ConvNet", seeds=(0,), distill_seeds=(0,), methods=methods, lrs_weight=0.25)
    got = {r.method: r for r in scores(frame, options).itertuples(index=False)}
    assert set(got) == {"DM", "DM (teacher)", "DM bare"}
    teacher = got["DM (teacher)"]
    assert (teacher.regime, teacher.random, teacher.ior, teacher.hlr) == ("teacher", 95.0, 1.0, 5.0)
    # alpha = 0.25 * 0.01 - 0.75 * 0.05 = -0.035: LRS = (e^-0.035 - e^-1) / (e - e^-1) = 0.597726 / 2.350402
    assert teacher.lrs == pytest.approx(0.254308, abs=1e-6)
    assert math.isnan(teacher.ars) and "bare" in teacher.missing  # no DM (teacher) without augmentation
    hard = got["DM"]  # IOR 3 with augmentation, -4 without: beta = -0.005, ARS = 0.627133 / 2.350402
    assert (hard.ior, hard.hlr) == (3.0, 5.0) and hard.ars == pytest.approx(0.266819, abs=1e-6)
    assert math.isnan(got["DM bare"].ars) and got["DM bare"].missing == ["bare"]


def test_soft_labels_without_any_are_refused_when_planned(bench, workdir) -> None:
    write(workdir / "soft.yaml", TEACHER_SUITE.replace("eval: {labels: teacher, teacher_epochs: 2, temperature: 4}",
                                                       "eval: {labels: soft}"))
    code, _, err = bench("run", "soft.yaml", "--dry-run")
    assert code == 2 and "'random' stores no soft labels with its sets, so `labels: soft` has nothing to train on" in err
