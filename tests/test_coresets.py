"""Coreset baselines: the selection rules against hand computations, the feature net on digits, end to end."""

from __future__ import annotations

import pytest
import torch

from bench import data, nets
from bench.experts import EXPERT_BUILDERS, ExpertContext
from bench.methods.base import DistillContext
from bench.methods.coresets import (Forgetting, ForgettingCounter, Herding, KCenter, herding, k_center_greedy,
                                    most_forgotten)
from bench.methods.specs import FEATURE_NET, CoresetParams

TINY = CoresetParams(feature_epochs=2)


def test_herding_matches_hand_computation() -> None:
    points = torch.tensor([[0., 0.], [5., 0.], [0., 5.], [4., 4.], [1., 1.]])
    # mu = (10, 10) / 5 = (2, 2). Squared distances ||k*mu - sum(selected) - x||^2:
    # k=1: target (2,2):             a 8, b 9+4=13, c 13, d 4+4=8, e 1+1=2   -> e (4)
    # k=2: target (4,4)-(1,1)=(3,3): a 18, b 4+9=13, c 13, d 1+1=2           -> d (3)
    # k=3: target (6,6)-(5,5)=(1,1): a 2, b 16+1=17, c 17                    -> a (0)
    assert herding(points, 3).tolist() == [4, 3, 0]
    # The argmax (DeepCore's bug) would start from b or c, the farthest points.
    # Two equal points: both are closest at k=2 too, but a selected point is never picked again.
    assert herding(torch.tensor([[1., 1.], [1., 1.]]), 2).tolist() == [0, 1]


def test_k_center_matches_hand_computation() -> None:
    points = torch.tensor([[0., 0.], [1., 0.], [5., 0.], [0., 3.], [10., 10.]])
    # Start at a=(0,0): nearest-centre distances b 1, c 5, d 3, e sqrt(200)=14.1      -> e (4)
    # to e: b sqrt(181)=13.5, c sqrt(125)=11.2, d sqrt(149)=12.2; min -> b 1, c 5, d 3 -> c (2)
    # to c: b 4, d sqrt(34)=5.8; min -> b 1, d 3                                        -> d (3)
    # then only b is left                                                               -> b (1)
    assert k_center_greedy(points, 5, first=0).tolist() == [0, 4, 2, 3, 1]
    # From e=(10,10): a sqrt(200)=14.1 is farthest; then to a: b 1, c 5, d 3 (all below their e-distances) -> c
    assert k_center_greedy(points, 3, first=4).tolist() == [4, 0, 2]


def test_most_forgotten_sorts_descending_with_ties_by_index() -> None:
    assert most_forgotten(torch.tensor([2, 0, 5, 2, 1]), 3).tolist() == [2, 0, 3]


def test_forgetting_counter_on_a_hand_made_sequence() -> None:
    labels = torch.tensor([0, 1, 0, 1])
    # Each batch: (indices, C/I = correct/incorrect at that presentation). Per sample:
    #   0: C I C I -> 2 events (C->I twice)
    #   1: I I C   -> 0 (a first presentation is never an event)
    #   2: C C I I -> 1
    #   3: I C I   -> 1
    batches = [([0, 1, 2, 3], "CICI"), ([0, 1, 2, 3], "IICC"), ([2, 0], "IC"), ([3, 0, 1, 2], "IICI")]
    counter = ForgettingCounter(labels)
    for indices, marks in batches:
        idx = torch.tensor(indices)
        predicted = torch.where(torch.tensor([m == "C" for m in marks]), labels[idx], 1 - labels[idx])
        counter(idx, torch.nn.functional.one_hot(predicted, 2).float())
    assert counter.events.tolist() == [2, 0, 1, 1]


def make_net(ds: data.Dataset):
    spec = ds.spec
    return lambda: nets.get_network("ConvNet", spec.channels, spec.num_classes, spec.image_size)


def build(ds: data.Dataset, params: CoresetParams) -> dict[str, torch.Tensor]:
    spec, = Herding(params).experts("digits", "ConvNet")
    ctx = ExpertContext(spec, ds, torch.device("cpu"), make_net(ds), ds.spec.dsa_strategy)
    return EXPERT_BUILDERS[spec.kind](ctx)


@pytest.fixture(scope="module")
def expert(digits: data.Dataset) -> dict[str, torch.Tensor]:
    return build(digits, TINY)


def test_the_three_methods_share_one_expert_spec() -> None:
    specs = [cls(TINY).experts("digits", "ConvNet") for cls in (Herding, KCenter, Forgetting)]
    assert specs[0] == specs[1] == specs[2] and len(specs[0]) == 1 and specs[0][0].kind == FEATURE_NET
    assert specs[0][0].params == {"epochs": 2, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4,
                                  "batch_size": 256, "seed": 0}


def test_feature_net_builder_is_deterministic(digits: data.Dataset, expert: dict[str, torch.Tensor]) -> None:
    per_class = digits.class_indices()
    assert [f.shape for f in expert["class_features"]] == [(len(idx), 128) for idx in per_class]
    assert all(f.dtype == torch.float32 for f in expert["class_features"])
    assert expert["forgetting"].shape == (1257,) and expert["forgetting"].dtype == torch.int64
    assert expert["forgetting"].min() >= 0 and expert["forgetting"].max() <= 1  # 2 epochs: at most one event
    assert expert["accuracy"].shape == () and 50 < expert["accuracy"] <= 100
    again = build(digits, TINY)
    assert all(torch.equal(expert[k], again[k]) for k in ("forgetting", "accuracy"))
    assert all(torch.equal(a, b) for a, b in zip(expert["class_features"], again["class_features"], strict=True))


@pytest.mark.parametrize("cls", [Herding, KCenter, Forgetting])
def test_a_stage_storing_the_features_whole_selects_the_same_images(cls, digits: data.Dataset,
                                                                    expert: dict[str, torch.Tensor]) -> None:
    """A feature stage of a bench before per-class files (one (N, D) tensor in training order) still serves."""
    whole = torch.empty(len(digits.y_train), 128)
    for idx, features in zip(digits.class_indices(), expert["class_features"], strict=True):
        whole[idx] = features
    old = {"features": whole, "forgetting": expert["forgetting"], "accuracy": expert["accuracy"]}
    assert torch.equal(distill(cls(TINY), digits, old, 3, seed=4).images,
                       distill(cls(TINY), digits, expert, 3, seed=4).images)


def distill(method, ds: data.Dataset, expert: dict[str, torch.Tensor], ipc: int, seed: int = 0):
    ctx = DistillContext(ds, ipc, seed, torch.device("cpu"), make_net(ds), ds.spec.dsa_strategy,
                         experts={FEATURE_NET: expert})
    return method.distill(ctx)


@pytest.mark.parametrize("cls", [Herding, KCenter, Forgetting])
def test_methods_select_real_images_of_each_class(cls, digits: data.Dataset, expert: dict[str, torch.Tensor]) -> None:
    ipc = 3
    synset = distill(cls(TINY), digits, expert, ipc)
    assert synset.images.shape == (30, 1, 8, 8) and synset.labels.tolist() == [c for c in range(10) for _ in range(ipc)]
    positions = []
    for img, label in zip(synset.images, synset.labels):
        match = (digits.x_train == img).flatten(1).all(1).nonzero().flatten()
        assert len(match) >= 1 and (digits.y_train[match] == label).all()
        positions.append(int(match[0]))
    assert len(set(positions)) == 30
    assert torch.equal(distill(cls(TINY), digits, expert, ipc).images, synset.images)


def test_methods_apply_their_rule_to_the_expert(digits: data.Dataset, expert: dict[str, torch.Tensor]) -> None:
    idx = digits.class_indices()[0]
    feats, events = expert["class_features"][0], expert["forgetting"][idx]
    assert torch.equal(distill(Herding(TINY), digits, expert, 4).images[:4], digits.x_train[idx[herding(feats, 4)]])
    assert torch.equal(distill(Forgetting(TINY), digits, expert, 4).images[:4],
                       digits.x_train[idx[most_forgotten(events, 4)]])
    first = int(torch.randint(len(idx), (1,), generator=torch.Generator().manual_seed(5)))
    assert torch.equal(distill(KCenter(TINY), digits, expert, 4, seed=5).images[:4],
                       digits.x_train[idx[k_center_greedy(feats, 4, first)]])
    # k-center's start depends on the seed; herding and forgetting do not.
    assert not torch.equal(distill(KCenter(TINY), digits, expert, 4, seed=6).images,
                           distill(KCenter(TINY), digits, expert, 4, seed=5).images)
