"""IID: both terms against hand computations, the IPC-1 refusal, reduction to DM/IDM with the terms
off, the pretrained bank, runs on digits, and resuming from a checkpoint."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench import data, nets
from bench.experts import ExpertContext, ExpertSpec
from bench.methods.base import Checkpoint, DistillContext
from bench.methods.dm import DM, distribution_matching_loss
from bench.methods.idm import IDM, QuadrantSet, class_loss
from bench.methods import iid
from bench.methods.iid import (IIDDM, IIDIDM, FeatureTap, PretrainedBank, build_bank, centralization_loss,
                               covariance_matching_loss, flat_state, load_flat_state, local_covariance)
from bench.methods.presets import preset_params
from bench.methods.specs import BANK, DMParams, IDMParams, IIDDMParams, IIDIDMParams
from bench.train import seeded
from conftest import write

TINY_BANK = dict(bank_arch="ConvNet", bank_size=2, bank_epochs=1, bank_batch_size=128)
TINY_DM = dict(batch_real=16, **TINY_BANK)
IDM_BASE = dict(batch_real=12, net_num=4, net_generate_interval=3, model_train_steps=1, trained_bs=16)
TINY_IDM = dict(**IDM_BASE, **TINY_BANK)


def make(arch: str, ds: data.Dataset):
    return lambda: nets.get_network(arch, ds.spec.channels, ds.spec.num_classes, ds.spec.image_size)


@pytest.fixture(scope="module")
def bank(digits: data.Dataset) -> dict[str, torch.Tensor]:
    """Two ConvNets trained one epoch each on 300 digits: the `pretrained_bank` expert at its smallest."""
    params = {"size": 2, "epochs": 1, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 32, "seed": 0}
    spec = ExpertSpec(BANK, "digits", "ConvNet", params)
    few = replace(digits, x_train=digits.x_train[:300], y_train=digits.y_train[:300], x_test=digits.x_test[:100],
                  y_test=digits.y_test[:100])
    return build_bank(ExpertContext(spec, few, torch.device("cpu"), make("ConvNet", digits), digits.spec.dsa_strategy))


def context(ds: data.Dataset, ipc: int, bank: dict | None = None, seed: int = 0) -> DistillContext:
    return DistillContext(ds, ipc, seed, torch.device("cpu"), make("ConvNet", ds), ds.spec.dsa_strategy,
                          experts={BANK: bank} if bank is not None else {})


def test_centralization_matches_a_hand_computation() -> None:
    features = torch.tensor([[0., 0.], [2., 0.], [1., 3.]])  # mean (1, 1): squared distances 2, 2, 4
    assert centralization_loss(features, 1.0, 0.0, exp_form=False).item() == pytest.approx(8.0)
    # beta is a threshold on each sample's term: max(0, 0.5 * d - 1.5) = 0, 0, 0.5.
    assert centralization_loss(features, 0.5, 1.5, exp_form=False).item() == pytest.approx(0.5)
    expected = 2 * (math.exp(0.2) - 1) + (math.exp(0.4) - 1)
    assert centralization_loss(features, 0.1, 1.0, exp_form=True).item() == pytest.approx(expected)
    assert centralization_loss(features, 0.1, 2.0, exp_form=True).item() == 0.0  # exp(0.4) < 2: all clamped
    assert IIDDMParams().alpha == 1.0 and IIDDMParams(cc_exp=True).alpha == 0.02
    assert IIDDMParams(cc_exp=True, cc_alpha=0.5).alpha == 0.5


def test_covariance_matching_matches_a_hand_computation() -> None:
    # Two samples, d = 2 channels, h x w = 1 x 2: X_1 = [[1, 2], [0, 0]], X_2 = [[3, 0], [0, 2]].
    real = torch.tensor([[[[1., 2.]], [[0., 0.]]], [[[3., 0.]], [[0., 2.]]]])
    # X_i - mean = +-[[-1, 1], [0, -1]], so both outer products are [[2, -1], [-1, 1]].
    sigma = torch.tensor([[2., -1.], [-1., 1.]])
    assert torch.allclose(local_covariance(real), sigma)
    same = real[:1].expand(3, -1, -1, -1)  # identical samples: zero covariance
    assert covariance_matching_loss(real, same).item() == pytest.approx(4 + 1 + 1 + 1)
    assert covariance_matching_loss(real, real).item() == 0.0


def test_bank_expert_builds_loadable_distinct_networks(digits: data.Dataset, bank: dict) -> None:
    net = make("ConvNet", digits)()
    assert set(bank) == {"members", "accuracy"}
    assert bank["members"].shape == (2, sum(v.numel() for v in net.state_dict().values()))
    assert not torch.equal(bank["members"][0], bank["members"][1])
    assert bank["accuracy"].shape == (2,) and (bank["accuracy"] > 10).all()  # 1 epoch beats chance on digits
    members = PretrainedBank(bank, make("ConvNet", digits), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        drawn = members.draw(g)
        assert torch.equal(flat_state(drawn), bank["members"][members.current])
        assert not drawn.training and not any(p.requires_grad for p in drawn.parameters())


def draws(bank: PretrainedBank, n: int = 8) -> list[tuple[int | None, torch.Tensor]]:
    """(member, the drawn network's state) for each of `n` draws."""
    g, out = torch.Generator().manual_seed(4), []
    for _ in range(n):
        net = bank.draw(g)
        out.append((bank.current, flat_state(net)))
    return out


def test_a_bank_stored_whole_by_an_older_bench_draws_the_same_networks(digits: data.Dataset, bank: dict) -> None:
    """The stage before `members`: each state-dict entry stacked over the bank as `state.<key>`."""
    states = []
    for flat in bank["members"]:
        net = make("ConvNet", digits)()
        load_flat_state(net, flat)
        states.append(net.state_dict())
    older = {"accuracy": bank["accuracy"]} | {f"state.{k}": torch.stack([s[k] for s in states]) for k in states[0]}
    new = draws(PretrainedBank(bank, make("ConvNet", digits), torch.device("cpu")))
    old = draws(PretrainedBank(older, make("ConvNet", digits), torch.device("cpu")))
    assert [m for m, _ in new] == [m for m, _ in old] and len({m for m, _ in new}) == 2
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(new, old))


def test_a_bank_larger_than_the_budget_reads_members_as_drawn(digits: data.Dataset, bank: dict,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Over `RESIDENT_BYTES`, only the members that fit stay on the device; the others are read at each draw,
    and the networks drawn are the same."""
    kept = draws(PretrainedBank(bank, make("ConvNet", digits), torch.device("cpu")))
    monkeypatch.setattr(iid, "RESIDENT_BYTES", bank["members"][0].numel() * 4)  # room for one member
    small = PretrainedBank(bank, make("ConvNet", digits), torch.device("cpu"))
    assert [m for m, _ in draws(small)] == [m for m, _ in kept] and len(small.resident) == 1
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(draws(small), kept))


def test_experts_follow_the_switch() -> None:
    (spec,) = IIDDM(IIDDMParams(bank_size=3, bank_epochs=7)).experts("cifar10", "ConvNet")
    assert (spec.kind, spec.dataset, spec.arch) == (BANK, "cifar10", "ResNet18")
    assert spec.params["size"] == 3 and spec.params["epochs"] == 7 and spec.params["lr"] == 0.01
    assert IIDDM(IIDDMParams(cc=False)).experts("cifar10", "ConvNet") == []


def test_ipc_1_is_refused_for_iid_dm_only(digits: data.Dataset, bank: dict) -> None:
    reason = IIDDM.check_cell("cifar10", 1, IIDDMParams())
    assert reason is not None and "more than one" in reason and "iid-idm" in reason
    assert IIDDM.check_cell("cifar10", 10, IIDDMParams()) is None
    assert IIDIDM.check_cell("cifar10", 1, IIDIDMParams()) is None  # 4 decoded samples per class
    assert IIDIDM.check_cell("cifar10", 1, IIDIDMParams(aug=False)) is not None
    with pytest.raises(ValueError, match="more than one"):
        IIDDM(IIDDMParams(iterations=1, **TINY_DM)).distill(context(digits, 1, bank))


def test_dm_loss_plus_the_two_terms(digits: data.Dataset, bank: dict) -> None:
    net = seeded(0, make("ConvNet", digits)).requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    xr = [torch.randn(6, 1, 8, 8, generator=g) for _ in range(2)]
    xs = [torch.randn(3, 1, 8, 8, generator=g).requires_grad_(True) for _ in range(2)]
    (term,) = IIDDM(IIDDMParams(lambda_cc=0.5, lambda_cm=2.0, **TINY_DM)).extra_losses(context(digits, 3, bank))
    watched = term.watch(net)
    loss = distribution_matching_loss(watched, xr, xs) + term(watched, xr, xs)
    bank_net = term.bank_net
    expected = distribution_matching_loss(net, xr, xs)
    for r, s in zip(xr, xs):
        expected = expected + 2.0 * covariance_matching_loss(net.features(r), net.features(s))
        expected = expected + 0.5 * centralization_loss(bank_net.embed(s), 1.0, 0.0, False)
    assert torch.allclose(loss, expected, rtol=1e-5)
    loss.backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in xs)
    (off,) = IIDDM(IIDDMParams(cc=False, cm=False)).extra_losses(context(digits, 3))
    watched = off.watch(net)
    assert torch.equal(distribution_matching_loss(watched, xr, xs) + off(watched, xr, xs),
                       distribution_matching_loss(net, xr, xs))


def test_feature_tap_keeps_real_and_synthetic_maps_apart(digits: data.Dataset) -> None:
    net = seeded(0, make("ConvNetBN", digits)).requires_grad_(False)  # BN: DM embeds all classes at once
    xr = [torch.randn(5, 1, 8, 8), torch.randn(4, 1, 8, 8)]
    xs = [torch.randn(2, 1, 8, 8, requires_grad=True), torch.randn(3, 1, 8, 8, requires_grad=True)]
    tap = FeatureTap(net)
    assert torch.equal(distribution_matching_loss(tap, xr, xs), distribution_matching_loss(net, xr, xs))
    real, syn = tap.take([5, 4], [2, 3])
    assert [len(m) for m in real] == [5, 4] and [len(m) for m in syn] == [2, 3]
    assert torch.equal(torch.cat(real), net.features(torch.cat(xr)))
    assert tap.maps == []  # taken: the next loss records afresh
    with pytest.raises(ValueError, match="cm: false"):
        FeatureTap(seeded(0, make("MLP", digits)))


def test_switches_off_is_plain_dm(digits: data.Dataset) -> None:
    dm = DM(DMParams(iterations=3, batch_real=16)).distill(context(digits, 2, seed=5))
    iid = IIDDM(IIDDMParams(iterations=3, cc=False, cm=False, **TINY_DM)).distill(context(digits, 2, seed=5))
    assert torch.equal(dm.images, iid.images) and torch.equal(dm.labels, iid.labels)


def test_iid_dm_on_digits_is_seeded_and_moves_the_images(digits: data.Dataset, bank: dict) -> None:
    seen = []
    ctx = context(digits, 2, bank, seed=3)
    ctx.progress = lambda step, total, detail: seen.append((step, total))
    params = IIDDMParams(iterations=3, **TINY_DM)
    synset = IIDDM(params).distill(ctx)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert synset.images.shape == (20, 1, 8, 8) and synset.labels.tolist() == [c for c in range(10) for _ in "ab"]
    assert torch.isfinite(synset.images).all()
    again = IIDDM(params).distill(context(digits, 2, bank, seed=3))
    plain = DM(DMParams(iterations=3, batch_real=16)).distill(context(digits, 2, seed=3))
    assert torch.equal(again.images, synset.images) and not torch.equal(plain.images, synset.images)


class Preempted(Exception):
    pass


def preempted_then_resumed(method, ctx: DistillContext, path: Path) -> torch.Tensor:
    """Run with a checkpoint every 2 iterations, killed during iteration 3, then rerun: the resumed images."""
    def preempt_at_3(step: int, total: int, detail: str) -> None:
        if step == 3:
            raise Preempted

    ctx.checkpoint = Checkpoint(path, every=2)
    ctx.progress = preempt_at_3
    with pytest.raises(Preempted):
        method.distill(ctx)
    assert torch.load(path, weights_only=True)["iteration"] == 2
    ctx.progress = lambda step, total, detail: None
    return method.distill(ctx).images


def test_resume_from_checkpoint_gives_the_uninterrupted_result(digits: data.Dataset, bank: dict,
                                                               tmp_path: Path) -> None:
    params = IIDDMParams(iterations=4, **TINY_DM)  # a 2-network bank: the resumed draws must be the same
    whole = IIDDM(params).distill(context(digits, 2, bank, seed=1))
    resumed = preempted_then_resumed(IIDDM(params), context(digits, 2, bank, seed=1), tmp_path / "ckpt.pt")
    assert torch.equal(resumed, whole.images)


def test_iid_dm_runs_through_bench_run(bench, workdir: Path) -> None:
    write(workdir / "iid.yaml", """\
        name: iid
        datasets: [digits]
        ipc: [2]
        eval_archs: [ConvNet]
        methods:
          - name: iid-dm
            params: {iterations: 2, batch_real: 16, bank_size: 1, bank_epochs: 1}
        seeds: [0]
        eval: {epochs: 2}
        """)
    code, out, err = bench("run", "iid.yaml")
    assert code == 0, err
    assert "(1 expert, 0 whole, 1 distill, 1 evaluate)" in out and "expert pretrained_bank digits" in err
    assert len(list((workdir / "results" / "artifacts").rglob("members.*.pt"))) == 1  # one file per member


def test_idm_class_loss_plus_the_two_terms(digits: data.Dataset, bank: dict) -> None:
    net = seeded(0, make("ConvNet", digits)).requires_grad_(False)
    xr, xs = torch.randn(6, 1, 8, 8), torch.randn(4, 1, 8, 8, requires_grad=True)
    (term,) = IIDIDM(IIDIDMParams(lambda_cc=0.5, lambda_cm=2.0, **TINY_IDM)).extra_losses(context(digits, 1, bank))
    watched = term.watch(net)
    loss = class_loss(watched, xr, xs, 0, 30.0) + term(watched, [xr], [xs])
    expected = (class_loss(net, xr, xs, 0, 30.0)
                + 2.0 * covariance_matching_loss(net.features(xr), net.features(xs))
                + 0.5 * centralization_loss(term.bank_net.embed(xs), 1.0, 0.0, False))
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_iid_idm_runs_at_ipc_1_and_reduces_to_idm(digits: data.Dataset, bank: dict) -> None:
    synset = IIDIDM(IIDIDMParams(iterations=2, **TINY_IDM)).distill(context(digits, 1, bank))
    assert isinstance(synset, QuadrantSet) and synset.images.shape == (10, 1, 8, 8)
    assert torch.isfinite(synset.images).all()
    plain = IDM(IDMParams(iterations=2, **IDM_BASE)).distill(context(digits, 1))
    off = IIDIDM(IIDIDMParams(iterations=2, cc=False, cm=False, **TINY_IDM)).distill(context(digits, 1))
    assert torch.equal(off.images, plain.images) and not torch.equal(synset.images, plain.images)


def test_iid_idm_resumes_from_a_checkpoint(digits: data.Dataset, bank: dict, tmp_path: Path) -> None:
    params = IIDIDMParams(iterations=4, **TINY_IDM)
    whole = IIDIDM(params).distill(context(digits, 1, bank, seed=2))
    resumed = preempted_then_resumed(IIDIDM(params), context(digits, 1, bank, seed=2), tmp_path / "ckpt.pt")
    assert torch.equal(resumed, whole.images)


def test_presets_are_valid_params() -> None:
    for dataset in data.DATASETS:
        for ipc in (1, 10, 50):
            iid = preset_params("iid", dataset, ipc)
            IIDDMParams(**iid)
            IIDIDMParams(**{**iid, **preset_params("idm", dataset, ipc)})  # iid-idm: idm.yaml over iid.yaml
    assert preset_params("iid", "cifar10", 50)["lambda_cc"] == 0.003
    assert IIDDMParams(**preset_params("iid", "cifar100", 10)).lambda_cc == 0.05
    assert IIDIDM.presets == ("iid", "idm")
