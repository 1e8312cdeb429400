"""UDD: candidate regions, the three scores and the vote against hand computations, the bilinear region
upsampling, the CFC loss and its class centres, a tiny distillation through the public API, and a
resumed run equal to an uninterrupted one."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from pydantic import ValidationError

from bench import data, nets
from bench.methods.base import Checkpoint, DistillContext, SyntheticSet
from bench.methods.idm import QuadrantSet
from bench.methods.presets import preset_params, resolve_params
from bench.methods.registry import get_method
from bench.methods.specs import UDDParams
from bench.methods.udd import (UDD, ClassCentres, candidate_boxes, cfc_loss, jitter_images, jitter_scores, lowest,
                               region_means, response_maps, upsample_regions, vote)

FAST_ARCH = "ConvNetW32"  # same algorithm, a quarter of the width: keeps the CPU tests short
TINY = dict(iterations=2, inner_loop=1, batch_real=8, batch_syn_max=12, n_data=16, net_batch=16)
RAMP = (6 * torch.arange(6.0).view(6, 1) + torch.arange(6.0).view(1, 6))  # value 6r + c




def context(ds: data.Dataset, ipc: int, seed: int = 0, checkpoint: Checkpoint | None = None) -> DistillContext:
    spec = ds.spec
    return DistillContext(ds, ipc, seed, torch.device("cpu"),
                          lambda: nets.get_network(FAST_ARCH, spec.channels, spec.num_classes, spec.image_size),
                          spec.dsa_strategy, checkpoint=checkpoint or Checkpoint())


def box_mean(top: float, left: float, side: int) -> float:
    """Mean of 6r + c over a box: 6 * mean row + mean column."""
    return 6 * (top + (side - 1) / 2) + left + (side - 1) / 2


# The 12 candidate regions of a 6x6 image (sides 2, 3, 4) in the order TL, TR, BL, BR per size, and the
# mean of RAMP in each.
HAND_BOXES = [(0, 0, 2, 2), (0, 4, 2, 2), (4, 0, 2, 2), (4, 4, 2, 2), (0, 0, 3, 3), (0, 3, 3, 3), (3, 0, 3, 3),
              (3, 3, 3, 3), (0, 0, 4, 4), (0, 2, 4, 4), (2, 0, 4, 4), (2, 2, 4, 4)]
HAND_MEANS = [box_mean(t, l, h) for t, l, h, _ in HAND_BOXES]


def test_candidate_regions_are_three_sizes_at_four_corners() -> None:
    assert candidate_boxes(6, 6, [1 / 3, 1 / 2, 2 / 3]) == HAND_BOXES
    assert HAND_MEANS[:4] == [3.5, 7.5, 27.5, 31.5]
    assert [b[2] for b in candidate_boxes(32, 32, UDDParams().region_scales)] == [11] * 4 + [16] * 4 + [21] * 4
    assert [b[2] for b in candidate_boxes(8, 8, UDDParams().region_scales)] == [3] * 4 + [4] * 4 + [5] * 4


def tiny_net(head: torch.Tensor) -> nn.Module:
    """conv(1x1, identity) -> ReLU -> conv(1x1, identity) -> linear with class-0 row `head`, class-1 row 0.
    The response map (input of conv 1) is then the ReLU of the image itself."""
    net = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU(), nn.Conv2d(1, 1, 1), nn.Flatten(), nn.Linear(36, 2))
    with torch.no_grad():
        for conv in (net[0], net[2]):
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        net[4].weight.zero_()
        net[4].weight[0] = head.flatten()
        net[4].bias.zero_()
    return net


def test_activation_and_gradient_responses_of_the_candidate_regions() -> None:
    image = (RAMP / 35).view(1, 1, 6, 6)
    head = 0.1 * (1 - RAMP / 35)  # d logit_0 / d activation
    net = tiny_net(head)
    activation = region_means(response_maps(net, image, layer=1), HAND_BOXES, (6, 6))
    assert torch.allclose(activation[0], torch.tensor(HAND_MEANS) / 35, atol=1e-6)
    # CE with label 1: d loss / d activation = p0 * head, p0 = softmax([sum(head * x), 0])[0].
    p0 = 1 / (1 + math.exp(-float((head * RAMP / 35).sum())))
    gradient = region_means(response_maps(net, image, layer=1, labels=torch.tensor([1])), HAND_BOXES, (6, 6))
    expected = [p0 * 0.1 * (1 - m / 35) for m in HAND_MEANS]
    assert torch.allclose(gradient[0], torch.tensor(expected), atol=1e-6)
    # The lowest activation is the small top-left box; the lowest gradient the small bottom-right one.
    assert lowest(activation, 1).item() == 0 and lowest(gradient, 1).item() == 3
    with pytest.raises(ValueError, match="only 2 convolutions"):
        response_maps(net, image, layer=2)


def test_a_feature_map_smaller_than_the_image_is_resized_before_the_windows() -> None:
    maps = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # 2x2 map of a 4x4 image
    means = region_means(maps, candidate_boxes(4, 4, [0.5]), (4, 4))
    up = F.interpolate(maps.unsqueeze(1), size=(4, 4), mode="bilinear", align_corners=False)[0, 0]
    assert torch.allclose(means[0], torch.stack([up[:2, :2].mean(), up[:2, 2:].mean(), up[2:, :2].mean(),
                                                 up[2:, 2:].mean()]))
    assert means[0].tolist() == pytest.approx([1.375, 2.125, 2.875, 3.625])  # 1 + .25*.5 ..., by symmetry


def test_jitter_score_is_the_change_of_the_mean_jittered_response() -> None:
    clean = torch.tensor([[1.0, 2.0, 3.0]])
    jittered = torch.tensor([[[1.5, 2.0, 2.0]], [[0.5, 2.0, 5.0]]])  # M = 2 jitters of one image
    assert jitter_scores(clean, jittered).tolist() == [[0.0, 0.0, 0.5]]
    # On the tiny net the activation is linear in the pixels: the response of a jittered image is the
    # clean one plus the window mean of the noise, so sigma = |window mean of the mean noise|.
    image = (RAMP / 35).view(1, 1, 6, 6) + 1  # positive, so the ReLU is the identity
    g = torch.Generator().manual_seed(0)
    noisy = jitter_images(image, "gaussian", 0.1, 2, g)
    net = tiny_net(torch.zeros(6, 6))
    means = region_means(response_maps(net, torch.cat([image, noisy]), 1), HAND_BOXES, (6, 6)).view(3, 1, 12)
    noise = (noisy - image).view(2, 6, 6).mean(0)
    expected = torch.stack([noise[t:t + h, l:l + w].mean().abs() for t, l, h, w in HAND_BOXES])
    assert torch.allclose(jitter_scores(means[0], means[1:])[0], expected, atol=1e-6)


@pytest.mark.parametrize("kind", ["gaussian", "uniform", "salt_pepper"])
def test_jitter_functions(kind: str) -> None:
    x = torch.full((50, 3, 16, 16), 0.5)
    out = jitter_images(x, kind, 0.1, 2, torch.Generator().manual_seed(1))
    assert out.shape == (100, 3, 16, 16)
    delta = out - 0.5
    if kind == "salt_pepper":
        hit = delta.abs() > 0
        assert set(out[hit].unique().tolist()) == {0.0, 1.0}
        assert (hit == hit[:, :1]).all()  # a hit pixel position is hit in every channel
        assert hit[:, 0].float().mean().item() == pytest.approx(0.1, abs=0.01)
    else:
        assert delta.std().item() == pytest.approx(0.1, rel=0.03)
        if kind == "uniform":
            assert delta.abs().max().item() <= math.sqrt(3) * 0.1 + 1e-6


def test_lowest_p_selection_and_voting() -> None:
    assert lowest(torch.tensor([[3.0, 1.0, 2.0, 1.0]]), 2).tolist() == [[1, 3]]  # tie: the earlier region
    a = torch.tensor([[0.0, 1.0, 2.0, 3.0]])  # lowest 2: {0, 1}
    b = torch.tensor([[3.0, 0.0, 1.0, 2.0]])  # {1, 2}
    c = torch.tensor([[1.0, 3.0, 0.0, 2.0]])  # {2, 0}
    # Votes: region 0 -> 2, 1 -> 2, 2 -> 2, 3 -> 0; summed ranks 0+3+1=4, 1+0+3=4, 2+1+0=3: region 2, then 0.
    assert vote([a, b, c], 2).tolist() == [[2, 0]]
    assert vote([a, a, b], 1).tolist() == [[0]]


def test_regions_are_upsampled_bilinearly_image_major_and_carry_gradients() -> None:
    image = torch.tensor([[0., 1., 6., 6.],
                          [2., 3., 6., 6.],
                          [5., 5., 7., 7.],
                          [5., 5., 7., 7.]]).view(1, 1, 4, 4)
    images = torch.cat([image, image + 10]).requires_grad_(True)
    boxes = candidate_boxes(4, 4, [0.5])  # the quadrants TL, TR, BL, BR
    out = upsample_regions(images, boxes, torch.tensor([[0, 3], [1, 0]]))
    ramp = torch.tensor([0., .25, .75, 1.])  # bilinear x2 (align_corners=False) of [a0, a1]
    top_left = 2 * ramp.view(4, 1) + ramp.view(1, 4)
    assert out.shape == (4, 1, 4, 4)
    assert torch.allclose(out[0, 0], top_left) and torch.equal(out[1, 0], torch.full((4, 4), 7.))
    assert torch.equal(out[2, 0], torch.full((4, 4), 16.)) and torch.allclose(out[3, 0], top_left + 10)
    out.sum().backward()
    grad = images.grad[:, 0]
    assert grad[0, :2, :2].sum() == pytest.approx(16) and grad[0, 2:, :2].abs().sum() == 0  # BL never chosen
    assert grad[1, :2, 2:].sum() == pytest.approx(16) and grad[1, 2:].abs().sum() == 0


def test_cfc_loss_by_hand_and_the_moving_class_centres() -> None:
    f = torch.tensor([1.0, 0.0], requires_grad=True)
    centres = torch.tensor([[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    known = torch.ones(3, dtype=torch.bool)
    # sims 1/sqrt2, 0, -1; tau 0.5: -(1/sqrt2)/0.5 + log(exp(0) + exp(-2)).
    expected = -math.sqrt(2) + math.log(1 + math.exp(-2))
    assert cfc_loss(f, centres, 0, 0.5, known).item() == pytest.approx(expected, abs=1e-6)
    assert cfc_loss(f, centres, 0, 0.5, torch.tensor([True, False, False])).item() == 0.0  # no negatives yet
    state = ClassCentres(3, momentum=0.5)
    assert state.loss(f, 0, 0.5).item() == 0.0  # class 0 alone: its centre starts at its first mean
    g = torch.tensor([0.0, 2.0], requires_grad=True)
    loss = state.loss(g, 1, 0.5)  # sim(g, F1 = g) = 1, sim(g, F0 = f) = 0
    assert loss.item() == pytest.approx(0.0 - 1 / 0.5, abs=1e-6)
    loss.backward()  # the centre update must not break the graph
    state.loss(torch.tensor([3.0, 0.0]), 0, 0.5)
    assert state.centres.tolist() == [[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]]  # 0.5 * 1 + 0.5 * 3
    assert state.known.tolist() == [True, True, False]


def test_params_and_presets() -> None:
    assert get_method("udd").implementation() is UDD and UDD.eval_preset == "idc" and UDD.presets == "udd"
    p = UDDParams()
    assert (p.num_regions, p.num_jitters, p.tau, p.centre_momentum, len(p.region_scales) * 4) == (8, 2, 0.7, 0.5, 12)
    with pytest.raises(ValidationError):
        UDDParams(num_regions=5, region_scales=[0.5])
    with pytest.raises(ValidationError):
        UDDParams(match_augment="color_blur")
    with pytest.raises(ValidationError):
        UDDParams(region_scales=[0.5, 1.5])
    for dataset in data.DATASETS:
        for ipc in (1, 10, 50):
            UDDParams(**preset_params("udd", dataset, ipc))
    assert preset_params("udd", "cifar10", 10)["n_data"] == 2000


@pytest.mark.parametrize("policy", ["activation", "gradient", "jitter", "voting"])
def test_tiny_distillation_through_the_public_api(digits: data.Dataset, policy: str) -> None:
    method = get_method("udd").implementation()
    params = resolve_params(method, "digits", 2, {**TINY, "policy": policy, "factor": 2})
    assert resolve_params(method, "digits", 2, {}).factor == 1  # the digits preset; factor 2 is IDC's
    seen = []
    ctx = context(digits, 2)
    ctx.progress = lambda step, total, detail: seen.append((step, total))
    synset = method(params).distill(ctx)
    init = method(params.model_copy(update={"iterations": 0})).distill(context(digits, 2))
    assert isinstance(synset, QuadrantSet) and synset.images.shape == (20, 1, 8, 8)
    assert synset.labels.tolist() == [c for c in range(10) for _ in range(2)] and seen == [(1, 2), (2, 2)]
    assert torch.isfinite(synset.images).all() and not torch.equal(synset.images, init.images)
    x, y = synset.training_data()
    assert x.shape == (80, 1, 8, 8) and torch.bincount(y).tolist() == [8] * 10


def test_factor_one_stores_plain_images_initialised_from_real_ones(digits: data.Dataset) -> None:
    synset = UDD(UDDParams(**{**TINY, "iterations": 0, "factor": 1})).distill(context(digits, 1))
    assert type(synset) is SyntheticSet and synset.images.shape == (10, 1, 8, 8)
    for image, label in zip(synset.images, synset.labels):
        match = (digits.x_train - image).abs().flatten(1).amax(1) < 1e-5
        assert match.any() and digits.y_train[match.nonzero()[0]] == label


def test_resume_from_checkpoint_equals_an_uninterrupted_run(digits: data.Dataset, tmp_path: Path) -> None:
    params = UDDParams(**{**TINY, "iterations": 3})
    uninterrupted = UDD(params).distill(context(digits, 1, seed=5)).images

    class Preempted(Exception):
        pass

    def preempt(step: int, total: int, detail: str) -> None:
        if step == 2:
            raise Preempted

    checkpoint = Checkpoint(tmp_path / "udd.ckpt", every=1)
    ctx = context(digits, 1, seed=5, checkpoint=checkpoint)
    ctx.progress = preempt
    with pytest.raises(Preempted):
        UDD(params).distill(ctx)
    assert checkpoint.load()[0] == 1
    resumed = UDD(params).distill(context(digits, 1, seed=5, checkpoint=checkpoint))
    assert torch.equal(resumed.images, uninterrupted)
    assert not torch.equal(uninterrupted, UDD(params).distill(context(digits, 1, seed=6)).images)
