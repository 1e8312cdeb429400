"""Tests for bench.nets: reference parameter counts, the registry, and image-size handling."""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch
from torch import nn

from bench.nets import NETWORKS, IncompatibleInput, UnknownNetwork, get_network, min_image_size
from bench.nets.convnet import ConvNet

CIFAR10 = (3, 10, 32)


@lru_cache(maxsize=None)
def built(name: str, channels: int, num_classes: int, image_size: int) -> nn.Module:
    """Build each (name, shape) once per session: the large nets dominate test time."""
    torch.manual_seed(0)
    return get_network(name, channels, num_classes, image_size)


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# Counts computed from the DatasetCondensation reference definitions.
@pytest.mark.parametrize(
    ("name", "shape", "expected"),
    [
        ("ConvNet", CIFAR10, 320_010),
        ("AlexNet", CIFAR10, 1_872_202),
        ("VGG11", CIFAR10, 9_231_114),
        ("ResNet18", CIFAR10, 11_173_962),
        ("ResNet18BN", CIFAR10, 11_173_962),
        ("ResNet18_AP", CIFAR10, 11_250_762),
        ("LeNet", CIFAR10, 62_006),
        ("MLP", CIFAR10, 411_146),
        ("ConvNet", (1, 10, 28), 317_706),
        ("ConvNet", (3, 100, 32), 504_420),
        ("ConvNet", (3, 200, 64), 1_938_120),
        ("ConvNetD4", (3, 200, 64), 857_160),
        ("ConvNetD5", (3, 10, 128), 615_690),
        ("ConvNetD4", CIFAR10, 452_490),
        ("LeNet", (1, 10, 28), 61_706),
        ("MLP", (1, 10, 28), 118_282),
    ],
)
def test_parameter_counts_match_reference(name: str, shape: tuple[int, int, int], expected: int) -> None:
    assert n_params(built(name, *shape)) == expected


@pytest.mark.parametrize("name", list(NETWORKS))
def test_every_network_builds_and_embeds(name: str) -> None:
    # At CIFAR-10 shape, or at the smallest size for the nets too deep for 32 px (ConvNetD6-D8).
    size = max(32, min_image_size(name, 3))
    net = built(name, 3, 10, size)
    x = torch.randn(2, 3, size, size)
    assert isinstance(net.classifier, nn.Linear)
    assert net.classifier.out_features == 10
    with torch.no_grad():
        assert net(x).shape == (2, 10)
        assert net.embed(x).shape == (2, net.classifier.in_features)


def test_only_the_deepest_convnets_reject_cifar10() -> None:
    too_small = [name for name in NETWORKS if min_image_size(name, 3) > 32]
    assert too_small == ["ConvNetD6", "ConvNetD7", "ConvNetD8"]
    with pytest.raises(IncompatibleInput, match="64x64"):
        get_network("ConvNetD6", *CIFAR10)


@pytest.mark.parametrize(
    ("name", "image_size", "in_features"),
    [
        ("ResNet18", 64, 512 * 2 * 2),  # the reference's F.avg_pool2d(out, 4) leaves 2x2 at 64 px
        ("ResNet18_AP", 32, 512 * 4 * 4),
        ("VGG11", 32, 512),
        ("AlexNet", 32, 192 * 4 * 4),
        ("LeNet", 32, 84),
        ("MLP", 32, 128),
    ],
)
def test_classifier_input_sizes(name: str, image_size: int, in_features: int) -> None:
    assert built(name, 3, 10, image_size).classifier.in_features == in_features


# Smallest image side per family as (3 channels, 1 channel); 1-channel nets pad their first conv more.
MIN_SIZES = {
    "ConvNet": (8, 4),
    "ConvNetD5": (32, 28),
    "AlexNet": (8, 4),
    "VGG11": (32, 28),
    "ResNet18": (25, 25),
    "ResNet18_AP": (8, 8),
    "LeNet": (16, 12),
    "MLP": (1, 1),
}


@pytest.mark.parametrize("name", list(MIN_SIZES))
@pytest.mark.parametrize("channels", [3, 1])
def test_min_image_size_is_tight(name: str, channels: int) -> None:
    smallest = MIN_SIZES[name][0 if channels == 3 else 1]
    assert min_image_size(name, channels) == smallest
    assert f"min image {MIN_SIZES[name][0]} px; {MIN_SIZES[name][1]} px with 1 channel" in NETWORKS[name]
    net = get_network(name, channels, 10, smallest)
    assert net(torch.randn(2, channels, smallest, smallest)).shape == (2, 10)
    if smallest > 1:
        with pytest.raises(IncompatibleInput, match=rf"{name} .*{smallest}x{smallest}"):
            get_network(name, channels, 10, smallest - 1)
        if name != "MLP":
            # The bound is real: the feature extractor itself fails one pixel below it.
            with pytest.raises(RuntimeError):
                net.embed(torch.randn(2, channels, smallest - 1, smallest - 1))


@pytest.mark.parametrize("name", ["ConvNet", "ConvNetLN", "ConvNetNP", "AlexNet", "ResNet18", "ResNet18_AP", "LeNet"])
@pytest.mark.parametrize("image_size", [29, 37])
def test_classifier_size_follows_odd_image_sizes(name: str, image_size: int) -> None:
    net = get_network(name, 3, 10, image_size)
    assert net(torch.randn(2, 3, image_size, image_size)).shape == (2, 10)


@pytest.mark.parametrize("name", ["ConvNet", "MLP"])
def test_digits_shape_is_supported(name: str) -> None:
    net = get_network(name, 1, 10, 8)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_convnet_on_digits_reaches_1x1() -> None:
    # 8 px + padding 3 -> 12 -> 6 -> 3 -> 1, so 128 features.
    assert get_network("ConvNet", 1, 10, 8).classifier.in_features == 128


@pytest.mark.parametrize(("name", "smallest"), [("VGG11", 28), ("LeNet", 12)])
def test_too_small_images_raise_helpful_error(name: str, smallest: int) -> None:
    with pytest.raises(IncompatibleInput) as info:
        get_network(name, 1, 10, 8)
    message = str(info.value)
    assert name in message and "8x8" in message and f"{smallest}x{smallest}" in message
    assert isinstance(info.value, ValueError)
    assert info.value.min_size == smallest


def test_nonpositive_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="image_size"):
        get_network("ConvNet", 1, 10, 0)


@pytest.mark.parametrize("name", ["ConvNet", "VGG11", "ResNet18"])
def test_instancenorm_is_affine_groupnorm_per_channel(name: str) -> None:
    net = built(name, *CIFAR10)
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert norms
    assert not any(isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d)) for m in net.modules())
    for m in norms:
        assert m.num_groups == m.num_channels
        assert m.affine and m.weight.requires_grad and m.bias.requires_grad


@pytest.mark.parametrize(
    ("name", "present", "absent"),
    [
        ("ConvNetBN", nn.BatchNorm2d, nn.GroupNorm),
        ("ConvNetLN", nn.LayerNorm, nn.GroupNorm),
        ("ConvNetNN", nn.ReLU, nn.GroupNorm),
        ("ConvNetAS", nn.Sigmoid, nn.ReLU),
        ("ConvNetAL", nn.LeakyReLU, nn.ReLU),
        ("ConvNetASwish", nn.SiLU, nn.ReLU),
        ("ConvNetASwishBN", nn.SiLU, nn.GroupNorm),
        ("ConvNetMP", nn.MaxPool2d, nn.AvgPool2d),
        ("ConvNetNP", nn.Conv2d, nn.AvgPool2d),
        ("AlexNetBN", nn.BatchNorm2d, nn.GroupNorm),
        ("VGG11BN", nn.BatchNorm2d, nn.GroupNorm),
        ("ResNet18BN", nn.BatchNorm2d, nn.GroupNorm),
        ("ResNet18BN_AP", nn.BatchNorm2d, nn.GroupNorm),
    ],
)
def test_variants_use_their_layers(name: str, present: type[nn.Module], absent: type[nn.Module]) -> None:
    modules = list(built(name, *CIFAR10).modules())
    assert any(isinstance(m, present) for m in modules)
    assert not any(isinstance(m, absent) for m in modules)


def test_convnet_groupnorm_variant_uses_four_groups() -> None:
    norms = [m for m in built("ConvNetGN", *CIFAR10).modules() if isinstance(m, nn.GroupNorm)]
    assert [m.num_groups for m in norms] == [4, 4, 4]


def test_convnet_layernorm_tracks_spatial_size() -> None:
    norms = [m for m in built("ConvNetLN", *CIFAR10).modules() if isinstance(m, nn.LayerNorm)]
    assert [tuple(m.normalized_shape) for m in norms] == [(128, 32, 32), (128, 16, 16), (128, 8, 8)]


@pytest.mark.parametrize(("name", "depth", "width"), [("ConvNetD1", 1, 128), ("ConvNetD8", 8, 128), ("ConvNetW32", 3, 32)])
def test_convnet_depth_and_width(name: str, depth: int, width: int) -> None:
    net = get_network(name, 3, 10, 256)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == depth
    assert all(c.out_channels == width for c in convs)


def test_same_seed_gives_identical_parameters() -> None:
    for name in ("ConvNet", "LeNet", "ResNet18_AP"):
        torch.manual_seed(123)
        first = get_network(name, 3, 10, 32).state_dict()
        torch.manual_seed(123)
        second = get_network(name, 3, 10, 32).state_dict()
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first)


def test_get_network_does_not_seed() -> None:
    torch.manual_seed(0)
    first = get_network("ConvNet", 3, 10, 32)
    second = get_network("ConvNet", 3, 10, 32)
    assert not torch.equal(first.classifier.weight, second.classifier.weight)


@pytest.mark.parametrize("typo", ["ConvNte", "convnte", "ConvNett"])
def test_unknown_network_suggests_close_matches(typo: str) -> None:
    with pytest.raises(UnknownNetwork) as info:
        get_network(typo, 3, 10, 32)
    assert isinstance(info.value, KeyError)
    assert info.value.suggestions[0] == "ConvNet"
    message = str(info.value)
    assert "Did you mean: ConvNet" in message
    assert "NETWORKS" in message and not message.startswith("'")


def test_unknown_network_without_close_match_points_at_registry() -> None:
    with pytest.raises(UnknownNetwork, match="NETWORKS"):
        get_network("transformer", 3, 10, 32)


@pytest.mark.parametrize(("alias", "canonical"), [("convnet", "ConvNet"), ("RESNET18_ap", "ResNet18_AP")])
def test_lookup_is_case_insensitive(alias: str, canonical: str) -> None:
    torch.manual_seed(0)
    net = get_network(alias, 3, 10, 32)
    assert n_params(net) == n_params(built(canonical, *CIFAR10))
    assert canonical in NETWORKS and alias not in NETWORKS


def test_convnet_alias_returns_convnet() -> None:
    assert isinstance(get_network("convnet", 3, 10, 32), ConvNet)


def test_names_are_unique_ignoring_case() -> None:
    assert len({name.lower() for name in NETWORKS}) == len(NETWORKS)


def test_registry_lists_all_reference_variants() -> None:
    expected = (
        ["ConvNet"]
        + [f"ConvNetD{d}" for d in range(1, 9)]
        + [f"ConvNetW{w}" for w in (32, 64, 128, 256, 512, 1024)]
        + ["ConvNetBN", "ConvNetLN", "ConvNetIN", "ConvNetGN", "ConvNetNN"]
        + ["ConvNetAS", "ConvNetAR", "ConvNetAL", "ConvNetASwish", "ConvNetASwishBN"]
        + ["ConvNetNP", "ConvNetMP", "ConvNetAP"]
        + ["AlexNet", "AlexNetBN", "VGG11", "VGG11BN", "ResNet18", "ResNet18BN", "ResNet18_AP", "ResNet18BN_AP"]
        + ["ResNetAP-10"]
        + ["LeNet", "MLP"]
    )
    assert sorted(NETWORKS) == sorted(expected)
    assert all(isinstance(desc, str) and desc for desc in NETWORKS.values())
