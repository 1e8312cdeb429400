"""MTT: expert trajectories, the normalised trajectory-matching loss, and distillation on digits.

Tests use ConvNetW32 (a width-32 ConvNet) so the experts and the unrolled steps run in seconds.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench import data, nets
from bench.experts import EXPERT_BUILDERS, ExpertContext
from bench.methods.base import DistillContext
from bench.methods.mtt import MTT, build_trajectories, flat_forward, flatten_params, trajectory_matching_loss
from bench.methods.presets import load_preset, preset_params
from bench.methods.specs import MTTParams, trajectory_spec
from bench.train import seeded

ARCH = "ConvNetW32"
EXPERTS = MTTParams(num_experts=2, expert_train_epochs=4, expert_batch=32, expert_seed=5)  # 40 steps/epoch


def make_net() -> nn.Module:
    return nets.get_network(ARCH, 1, 10, 8)


def expert_context(ds: data.Dataset, p: MTTParams = EXPERTS) -> ExpertContext:
    return ExpertContext(trajectory_spec(p, "digits", ARCH), ds, torch.device("cpu"), make_net, ds.spec.dsa_strategy)


@pytest.fixture(scope="module")
def experts(digits: data.Dataset) -> dict[str, torch.Tensor]:
    return build_trajectories(expert_context(digits))


def context(ds: data.Dataset, experts: dict[str, torch.Tensor], ipc: int, seed: int = 0) -> DistillContext:
    return DistillContext(ds, ipc, seed, torch.device("cpu"), make_net, ds.spec.dsa_strategy,
                          experts={"trajectories": experts})


def test_experts_record_every_epoch_from_a_seeded_init(digits: data.Dataset, experts: dict) -> None:
    trajectories = experts["trajectories"]
    num_params = sum(p.numel() for p in make_net().parameters())
    assert trajectories.shape == (2, 5, num_params) and trajectories.dtype == torch.float32
    for e in range(2):  # expert e starts from seed expert_seed + e
        assert torch.equal(trajectories[e, 0], flatten_params(seeded(5 + e, make_net)))
    steps = (trajectories[:, 1:] - trajectories[:, :-1]).norm(dim=2)
    assert (steps > 0).all()
    assert experts["test_accuracy"].shape == (2,) and (experts["test_accuracy"] > 50).all()


def test_flat_forward_is_the_network_at_its_own_parameters(digits: data.Dataset) -> None:
    net = seeded(0, make_net)
    x = digits.x_train[:5]
    torch.testing.assert_close(flat_forward(net)(x, flatten_params(net)), net(x))


def test_experts_are_deterministic(digits: data.Dataset, experts: dict) -> None:
    one_expert = MTTParams(num_experts=1, expert_train_epochs=1, expert_batch=32, expert_seed=5)
    again = build_trajectories(expert_context(digits, one_expert))["trajectories"]
    assert torch.equal(again[0], experts["trajectories"][0, :2])
    other = build_trajectories(expert_context(digits, one_expert.model_copy(update={"expert_seed": 6})))
    assert torch.equal(other["trajectories"][0], experts["trajectories"][1, :2])


def test_experts_spec_is_shared_across_distillation_settings() -> None:
    assert "trajectories" in EXPERT_BUILDERS
    a = MTT(MTTParams(syn_steps=5, lr_img=10.0)).experts("cifar10", "ConvNet")
    b = MTT(MTTParams(syn_steps=30, lr_teacher=0.001)).experts("cifar10", "ConvNet")
    assert a == b and a[0].identity() == b[0].identity()
    assert a[0].params == {"num_experts": 100, "train_epochs": 50, "lr_teacher": 0.01, "batch_train": 256,
                           "dsa": True, "seed": 0}
    assert MTT(MTTParams(zca=True)).experts("cifar10", "ConvNet")[0].zca


def _loss(images: torch.Tensor, labels: torch.Tensor, lr: torch.Tensor, net: nn.Module, start: torch.Tensor,
          target: torch.Tensor, syn_steps: int) -> torch.Tensor:
    return trajectory_matching_loss(flat_forward(net), start, target, images, labels, lr, syn_steps=syn_steps,
                                    batch_syn=len(images), dsa_strategy="none", generator=torch.Generator())


def test_loss_is_one_when_the_student_does_not_move() -> None:
    net = seeded(0, lambda: nn.Linear(4, 3))
    start, target = flatten_params(net), flatten_params(net) + 0.1
    x, y = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0, 1, 2])
    assert _loss(x, y, torch.tensor(0.01), net, start, target, syn_steps=0).item() == pytest.approx(1.0)
    assert _loss(x, y, torch.tensor(0.0), net, start, target, syn_steps=3).item() == pytest.approx(1.0)


def test_one_unrolled_step_matches_a_hand_computation() -> None:
    """Linear model z = Wx + b, CE gradient (softmax(z) - onehot(y)) x^T / n, theta = [W, b] flattened."""
    torch.set_default_dtype(torch.float64)
    try:
        g = torch.Generator().manual_seed(1)
        net = nn.Linear(3, 2)
        w, b = torch.randn(2, 3, generator=g), torch.randn(2, generator=g)
        with torch.no_grad():
            net.weight.copy_(w)
            net.bias.copy_(b)
        start = torch.cat([w.flatten(), b])
        target = start + torch.randn(8, generator=g)
        x = torch.randn(4, 3, generator=g).requires_grad_(True)
        y = torch.tensor([0, 1, 1, 0])
        lr = torch.tensor(0.5, requires_grad=True)

        loss = _loss(x, y, lr, net, start, target, syn_steps=1)
        loss.backward()

        err = torch.softmax(x.detach() @ w.T + b, 1) - F.one_hot(y, 2)
        grad = torch.cat([(err.T @ x.detach() / 4).flatten(), err.mean(0)])
        theta = start - 0.5 * grad
        expected = ((theta - target) ** 2).sum() / ((start - target) ** 2).sum()
        assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
        d_lr = (2 * (theta - target) @ -grad) / ((start - target) ** 2).sum()
        assert lr.grad.item() == pytest.approx(d_lr.item(), rel=1e-10)

        eps = 1e-6  # the image gradient flows through the unrolled step (second order)
        bumped = x.detach().clone()
        bumped[2, 1] += eps
        numeric = (_loss(bumped, y, lr.detach(), net, start, target, 1) - expected) / eps
        assert x.grad[2, 1].item() == pytest.approx(numeric.item(), rel=1e-4)
    finally:
        torch.set_default_dtype(torch.float32)


def matching_loss(images: torch.Tensor, lr: torch.Tensor, trajectories: torch.Tensor, ipc: int) -> float:
    """The objective on every (expert, t0) pair, without augmentation: a fixed yardstick."""
    net = make_net()
    labels = torch.arange(10).repeat_interleave(ipc)
    with torch.enable_grad():
        losses = [_loss(images, labels, lr, net, traj[t0], traj[t0 + 2], syn_steps=4).item()
                  for traj in trajectories for t0 in range(2)]
    return sum(losses) / len(losses)


def test_distill_lowers_the_matching_loss_and_stores_a_positive_lr(digits: data.Dataset, experts: dict) -> None:
    ipc = 2
    p = MTTParams(iterations=40, syn_steps=4, expert_epochs=2, max_start_epoch=2, lr_img=100.0, lr_lr=1e-5)
    init = MTT(p.model_copy(update={"iterations": 0})).distill(context(digits, experts, ipc))
    synset = MTT(p).distill(context(digits, experts, ipc))
    assert synset.images.shape == (20, 1, 8, 8)
    assert synset.labels.tolist() == [c for c in range(10) for _ in range(ipc)]
    assert synset.lr.shape == () and synset.lr.item() > 0.01  # the student lags the expert: alpha grows
    assert synset.tensors()["lr"].shape == ()
    trajectories = experts["trajectories"]
    before = matching_loss(init.images, torch.tensor(0.01), trajectories, ipc)
    after = matching_loss(synset.images, synset.lr, trajectories, ipc)
    assert after < 0.9 * before, (before, after)
    assert not torch.equal(synset.images, init.images)


def test_same_seed_same_artifact_and_progress(digits: data.Dataset, experts: dict) -> None:
    p = MTTParams(iterations=3, syn_steps=2, expert_epochs=1, max_start_epoch=3, lr_img=100.0, batch_syn=7)
    seen = []
    ctx = context(digits, experts, 1, seed=3)
    ctx.progress = lambda step, total, detail: seen.append((step, total))
    first = MTT(p).distill(ctx)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    again = MTT(p).distill(context(digits, experts, 1, seed=3))
    other = MTT(p).distill(context(digits, experts, 1, seed=4))
    assert torch.equal(first.images, again.images) and torch.equal(first.lr, again.lr)
    assert not torch.equal(first.images, other.images)


def test_start_epochs_must_fit_the_trajectories(digits: data.Dataset, experts: dict) -> None:
    with pytest.raises(ValueError, match="recorded expert epochs"):
        MTT(MTTParams(iterations=1, expert_epochs=2, max_start_epoch=4)).distill(context(digits, experts, 1))


def test_presets_hold_the_published_table_and_validate() -> None:
    assert preset_params("mtt", "cifar10", 10) == {
        "iterations": 5000, "init": "real", "syn_steps": 30, "expert_epochs": 2, "max_start_epoch": 20,
        "lr_img": 100, "lr_lr": 1e-5, "lr_teacher": 0.001, "zca": True}
    assert preset_params("mtt", "cifar100", 50)["batch_syn"] == 125
    assert preset_params("mtt", "tinyimagenet", 1)["lr_img"] == 10000
    table = load_preset("mtt")
    for dataset in ("digits", "mnist", "cifar10", "cifar100", "tinyimagenet"):
        for ipc in (1, 10, 50):
            MTTParams(**preset_params("mtt", dataset, ipc))
    assert "dc_benchmark" in table["source"]


def test_resumed_from_a_checkpoint_equals_uninterrupted(digits: data.Dataset, experts: dict, tmp_path) -> None:
    """The round-robin expert order and the learned lr are part of the checkpoint, not just the images."""
    from bench.methods.base import Checkpoint
    p = MTTParams(iterations=5, syn_steps=2, expert_epochs=1, max_start_epoch=3, lr_img=100.0)

    def distill(iterations: int, checkpoint: Checkpoint):
        ctx = context(digits, experts, 1, seed=2)
        ctx.checkpoint = checkpoint
        return MTT(p.model_copy(update={"iterations": iterations})).distill(ctx)

    uninterrupted = distill(5, Checkpoint())
    saved = Checkpoint(tmp_path / "ckpt.pt", every=3)
    distill(4, saved)
    resumed = distill(5, saved)
    assert torch.equal(resumed.images, uninterrupted.images) and torch.equal(resumed.lr, uninterrupted.lr)


def test_distilling_from_the_stage_stored_per_expert_equals_the_stage_stored_whole(
        digits: data.Dataset, experts: dict, tmp_path) -> None:
    """Bit for bit: the stage as `run_expert` stores it now (one file per expert, read an expert at a time), as a
    bench before that stored it (one tensor), and in memory."""
    from bench.executors.tasks import _load_input
    from bench.experts import EXPERT_PARTS
    from bench.plan import ExpertTask
    from bench.records import ArtifactMeta
    from bench.store import Parts, Store
    task = ExpertTask.make(trajectory_spec(EXPERTS, "digits", ARCH))
    meta = ArtifactMeta(task.key, task.identity, 1.0, {})
    Store(tmp_path / "new").save_artifact(experts, meta, parts=EXPERT_PARTS[task.spec.kind])
    Store(tmp_path / "old").save_artifact(experts, meta)
    new, old = (_load_input(Store(tmp_path / s), task.key, "the stage")[0] for s in ("new", "old"))
    assert isinstance(new["trajectories"], Parts) and type(old["trajectories"]) is torch.Tensor
    p = MTTParams(iterations=6, syn_steps=2, expert_epochs=2, max_start_epoch=3, lr_img=100.0, batch_syn=7)
    in_memory, *stored = (MTT(p).distill(context(digits, stage, 2, seed=1)) for stage in (experts, new, old))
    for synset in stored:
        assert torch.equal(synset.images, in_memory.images) and torch.equal(synset.lr, in_memory.lr)
