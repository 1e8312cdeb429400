"""Methods on real (small) data: random picks real images; DM lowers its matching loss; both are seeded."""

from __future__ import annotations

import pytest
import torch

from bench import data, nets
from bench.methods import METHODS, DistillContext, get_method
from bench.methods.dm import DM, distribution_matching_loss
from bench.methods.random import Random
from bench.methods.specs import DMParams
from bench.train import seeded


def context(ds: data.Dataset, ipc: int, seed: int = 0, arch: str = "ConvNet") -> DistillContext:
    spec = ds.spec
    return DistillContext(ds, ipc, seed, torch.device("cpu"),
                          lambda: nets.get_network(arch, spec.channels, spec.num_classes, spec.image_size),
                          spec.dsa_strategy)


def test_registry() -> None:
    assert {"random", "dm"} <= set(METHODS)
    with pytest.raises(KeyError, match="Did you mean 'dm'"):
        get_method("dn")


def test_random_picks_distinct_real_images_of_each_class(digits: data.Dataset) -> None:
    synset = Random(Random.Params()).distill(context(digits, ipc=3, seed=7))
    assert synset.images.shape == (30, 1, 8, 8) and synset.labels.tolist() == [c for c in range(10) for _ in range(3)]
    for img, label in zip(synset.images, synset.labels):
        matches = (digits.x_train == img).flatten(1).all(1).nonzero().flatten()
        assert len(matches) >= 1 and (digits.y_train[matches] == label).all()
    assert len({tuple(i.flatten().tolist()) for i in synset.images}) == 30
    again = Random(Random.Params()).distill(context(digits, ipc=3, seed=7)).images
    other = Random(Random.Params()).distill(context(digits, ipc=3, seed=8)).images
    assert torch.equal(again, synset.images) and not torch.equal(other, synset.images)


def dm_loss(ds: data.Dataset, images: torch.Tensor, ipc: int, nets_seeds=range(8)) -> float:
    """The DM objective without augmentation, averaged over fixed random networks and all real images."""
    real = [ds.x_train[idx] for idx in ds.class_indices()]
    total = 0.0
    with torch.no_grad():
        for s in nets_seeds:
            net = seeded(1000 + s, lambda: nets.get_network("ConvNet", 1, 10, 8))
            total += distribution_matching_loss(net, real, list(images.split(ipc))).item()
    return total / len(nets_seeds)


@pytest.mark.slow
def test_dm_decreases_its_matching_loss(digits: data.Dataset) -> None:
    ipc = 2
    init = Random(Random.Params()).distill(context(digits, ipc, seed=0)).images  # DM's real init, same seed
    synset = DM(DMParams(iterations=30)).distill(context(digits, ipc, seed=0))
    assert synset.images.shape == init.shape
    assert synset.labels.tolist() == [c for c in range(10) for _ in range(ipc)]
    before, after = dm_loss(digits, init, ipc), dm_loss(digits, synset.images, ipc)
    assert after < 0.5 * before, (before, after)


def test_dm_progress_reports_every_iteration_and_is_seeded(digits: data.Dataset) -> None:
    seen = []
    ctx = context(digits, 1, seed=3)
    ctx.progress = lambda step, total, detail: seen.append((step, total))
    first = DM(DMParams(iterations=4)).distill(ctx).images
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert torch.equal(first, DM(DMParams(iterations=4)).distill(context(digits, 1, seed=3)).images)
    assert not torch.equal(first, DM(DMParams(iterations=4)).distill(context(digits, 1, seed=4)).images)


def test_dm_with_batchnorm_embeds_all_classes_together(digits: data.Dataset) -> None:
    synset = DM(DMParams(iterations=2)).distill(context(digits, 1, arch="ConvNetBN"))
    assert torch.isfinite(synset.images).all() and synset.images.shape == (10, 1, 8, 8)
