"""DC/DSA gradient matching: the distance against hand computations, the loop structure, BatchNorm
handling, seeding, and a lower matching loss after a few iterations on digits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from pydantic import ValidationError

from bench import data, nets
from bench.methods import gradmatch
from bench.methods.base import DistillContext
from bench.methods.gradmatch import DC, DSA, freeze_batchnorm, layer_distance, loops, match_distance, matching_loss
from bench.methods.presets import preset_params
from bench.methods.registry import get_method
from bench.methods.specs import DCParams, DSAMethodParams
from bench.train import seeded

FAST_ARCH = "ConvNetW32"  # same algorithm, a quarter of the width: keeps the CPU tests short




def context(ds: data.Dataset, ipc: int, seed: int = 0, arch: str = FAST_ARCH) -> DistillContext:
    spec = ds.spec
    return DistillContext(ds, ipc, seed, torch.device("cpu"),
                          lambda: nets.get_network(arch, spec.channels, spec.num_classes, spec.image_size),
                          spec.dsa_strategy)


def test_layer_distance_by_hand() -> None:
    eps = 1e-6
    # conv weight (2 out, 1 in, 1x2 kernel): rows [1,0] vs [1,0] (cos 1) and [0,1] vs [1,0] (cos 0).
    gr_conv = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(2, 1, 1, 2)
    gs_conv = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).view(2, 1, 1, 2)
    conv = (1 - 1 / (1 + eps)) + 1.0
    assert layer_distance(gs_conv, gr_conv).item() == pytest.approx(conv, abs=1e-7)
    # linear weight: rows [1,1] vs [2,2] (cos 1, norms sqrt2*sqrt8 = 4) and [1,-1] vs [-1,1] (cos -1).
    gr_fc = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    gs_fc = torch.tensor([[2.0, 2.0], [-1.0, 1.0]])
    fc = (1 - 4 / (4 + eps)) + (1 + 2 / (2 + eps))
    assert layer_distance(gs_fc, gr_fc).item() == pytest.approx(fc, abs=1e-6)
    # biases and norm parameters contribute nothing, whatever their values.
    assert layer_distance(torch.tensor([5.0, -3.0]), torch.tensor([1.0, 2.0])).item() == 0.0
    # a zero row has cosine 0 thanks to the +1e-6 (no NaN): distance 1 per row.
    assert layer_distance(torch.zeros(3, 4), torch.ones(3, 4)).item() == pytest.approx(3.0)
    # 'ours' sums the layers; the result carries gradients to the synthetic side.
    gs = [gs_conv.clone().requires_grad_(True), gs_fc, torch.tensor([5.0, -3.0])]
    total = match_distance(gs, [gr_conv, gr_fc, torch.tensor([1.0, 2.0])], "ours")
    assert total.item() == pytest.approx(conv + fc, abs=1e-6)
    total.backward()
    assert gs[0].grad is not None and torch.isfinite(gs[0].grad).all()


def test_mse_and_cos_use_all_parameters_as_one_vector() -> None:
    gs = [torch.tensor([[1.0, 2.0]]), torch.tensor([3.0])]
    gr = [torch.tensor([[0.0, 2.0]]), torch.tensor([1.0])]
    assert match_distance(gs, gr, "mse").item() == pytest.approx(1.0 + 0.0 + 4.0)
    cos = (0 + 4 + 3) / (math.sqrt(14) * math.sqrt(5) + 1e-6)
    assert match_distance(gs, gr, "cos").item() == pytest.approx(1 - cos, abs=1e-6)


def test_loops_follow_the_reference_table_and_the_preset() -> None:
    assert [loops(ipc) for ipc in (1, 10, 20, 30, 40, 50)] == [(1, 1), (10, 50), (20, 25), (30, 20), (40, 15),
                                                                (50, 10)]
    # IPCs outside the reference table take the entry of the largest table IPC below them.
    assert [loops(ipc) for ipc in (2, 9, 15, 100)] == [(1, 1), (1, 1), (10, 50), (50, 10)]
    assert preset_params("dc", "cifar10", 10) == {"outer_loop": 10, "inner_loop": 50}
    assert get_method("dc").implementation() is DC and get_method("dsa").implementation() is DSA
    assert DC.presets == DSA.presets == "dc"
    assert DCParams().init == "noise" and DSAMethodParams().init == "real"
    with pytest.raises(ValidationError):
        DCParams(outer_loop=0)


def test_loop_structure_and_augmentation(digits: data.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """outer_loop matching steps per iteration, with inner_loop epochs between consecutive ones;
    the inner loop augments per sample for dsa only."""
    calls: list[str] = []
    real_train_epoch = gradmatch.train_epoch

    def spy(*args, **kwargs):
        calls.append(kwargs["dsa_strategy"])
        return real_train_epoch(*args, **kwargs)

    monkeypatch.setattr(gradmatch, "train_epoch", spy)
    steps: list[int] = []
    for method, params, strategy in ((DC, DCParams, "none"), (DSA, DSAMethodParams, digits.spec.dsa_strategy)):
        calls.clear()
        ctx = context(digits, 1)
        ctx.progress = lambda step, total, detail: steps.append(step)
        method(params(iterations=2, outer_loop=3, inner_loop=2, batch_real=16)).distill(ctx)
        assert calls == [strategy] * (2 * (3 - 1) * 2)
    assert steps == [1, 2, 1, 2]


def fixed_net_loss(ds: data.Dataset, images: torch.Tensor, ipc: int, seeds=range(2)) -> float:
    """The matching objective without augmentation, on fixed random networks and 64 real images per class."""
    real = [ds.x_train[idx[:64]] for idx in ds.class_indices()]
    spec = ds.spec
    total = 0.0
    for s in seeds:
        net = seeded(1000 + s, lambda: nets.get_network(FAST_ARCH, spec.channels, spec.num_classes,
                                                         spec.image_size))
        total += matching_loss(net, real, list(images.split(ipc)), "ours", create_graph=False).item()
    return total / len(seeds)


@pytest.mark.parametrize("method,params", [(DC, DCParams), (DSA, DSAMethodParams)])
@pytest.mark.parametrize("ipc", [1, 2])
def test_matching_loss_decreases(digits: data.Dataset, method, params, ipc: int) -> None:
    init = method(params(iterations=0)).distill(context(digits, ipc)).images
    synset = method(params(iterations=6, batch_real=64)).distill(context(digits, ipc))
    assert synset.images.shape == (10 * ipc, 1, 8, 8) == init.shape
    assert synset.labels.tolist() == [c for c in range(10) for _ in range(ipc)]
    before, after = fixed_net_loss(digits, init, ipc), fixed_net_loss(digits, synset.images, ipc)
    assert after < 0.9 * before, (before, after)


def test_same_seed_same_artifact(digits: data.Dataset) -> None:
    def run(seed: int) -> torch.Tensor:
        return DSA(DSAMethodParams(iterations=2, outer_loop=2, inner_loop=1, batch_real=16)).distill(
            context(digits, 1, seed)).images

    first = run(3)
    assert torch.equal(first, run(3)) and not torch.equal(first, run(4))


def test_batchnorm_is_frozen_on_real_data_and_a_convnetbn_run_works(digits: data.Dataset) -> None:
    net = nets.get_network("ConvNetBN", 1, 10, 8)
    freeze_batchnorm(net, [digits.x_train[idx] for idx in digits.class_indices()], torch.Generator().manual_seed(0))
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not m.training for m in norms) and all(m.running_mean.abs().sum() > 0 for m in norms)
    assert net.training  # only BatchNorm is frozen
    synset = DC(DCParams(iterations=1, outer_loop=2, inner_loop=1, batch_real=16)).distill(
        context(digits, 2, arch="ConvNetBN"))
    assert synset.images.shape == (20, 1, 8, 8) and torch.isfinite(synset.images).all()
