"""Network registry: build any benchmark architecture by name for a given data shape.

Every network has `forward(x) -> logits` and `embed(x) -> (N, D)`, the flattened input of
its final `classifier` (nn.Linear), which Distribution Matching uses as the feature space.
Nothing here seeds the RNG: seed torch before `get_network` for reproducible weights.

The registry itself is plain data (names, descriptions, size arithmetic from `bench.nets.shapes`),
so suites are checked against it without importing torch; a network's module is imported when
one is built.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.nets import shapes

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "NETWORKS",
    "IncompatibleInput",
    "UnknownNetwork",
    "check_input",
    "get_network",
    "min_image_size",
]

# Larger than any image a benchmark would use; bounds the search for the smallest size.
_MAX_SEARCH_SIZE = 4096


class UnknownNetwork(KeyError):
    """Raised for a name not in NETWORKS; the message suggests close matches."""

    def __init__(self, name: str, suggestions: list[str]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"unknown network {name!r}.{hint} Known networks are the keys of bench.nets.NETWORKS "
            "(see `bench list archs`)."
        )

    def __str__(self) -> str:
        # KeyError would show repr(message), quotes and escapes included.
        return str(self.args[0])


class IncompatibleInput(ValueError):
    """Raised when a network's feature maps would shrink below 1x1 for the requested image size."""

    def __init__(self, network: str, image_size: int, channels: int, min_size: int) -> None:
        self.network = network
        self.image_size = image_size
        self.channels = channels
        self.min_size = min_size
        plural = "" if channels == 1 else "s"
        super().__init__(
            f"{network} cannot take {image_size}x{image_size} images with {channels} channel{plural}: "
            f"its feature maps would shrink below 1x1. The smallest image size {network} takes with "
            f"{channels} channel{plural} is {min_size}x{min_size}; pick a larger data set or another "
            "network (ConvNet and MLP take small images)."
        )


@dataclass(frozen=True)
class _Spec:
    description: str
    cls: str  # "module:Class" under bench.nets, built as Class(channels, num_classes, image_size, **config)
    feature_side: Callable[[int, int], int]  # (image_size, channels) -> side of the final map, < 1 if invalid
    config: dict[str, Any] = field(default_factory=dict)

    def build(self, channels: int, num_classes: int, image_size: int) -> nn.Module:
        module, _, name = self.cls.partition(":")
        cls = getattr(importlib.import_module(f"bench.nets.{module}"), name)
        return cls(channels, num_classes, image_size, **self.config)


def _convnet_spec(description: str, **config: Any) -> _Spec:
    depth = config.get("depth", 3)
    pooling = config.get("pooling", "avgpooling")
    return _Spec(description, "convnet:ConvNet",
                 lambda size, channels: shapes.convnet_side(size, channels, depth, pooling), config)


_SPECS: dict[str, _Spec] = {
    "ConvNet": _convnet_spec("ConvNet: depth 3, width 128, instance norm, ReLU, average pooling"),
    **{f"ConvNetD{d}": _convnet_spec(f"ConvNet with depth {d}", depth=d) for d in range(1, 9)},
    **{f"ConvNetW{w}": _convnet_spec(f"ConvNet with width {w}", width=w) for w in (32, 64, 128, 256, 512, 1024)},
    "ConvNetBN": _convnet_spec("ConvNet with batch norm", norm="batchnorm"),
    "ConvNetLN": _convnet_spec("ConvNet with layer norm", norm="layernorm"),
    "ConvNetIN": _convnet_spec("ConvNet with instance norm (GroupNorm(C, C))", norm="instancenorm"),
    "ConvNetGN": _convnet_spec("ConvNet with group norm (4 groups)", norm="groupnorm"),
    "ConvNetNN": _convnet_spec("ConvNet without normalization", norm="none"),
    "ConvNetAS": _convnet_spec("ConvNet with sigmoid activation", act="sigmoid"),
    "ConvNetAR": _convnet_spec("ConvNet with ReLU activation", act="relu"),
    "ConvNetAL": _convnet_spec("ConvNet with leaky ReLU (0.01) activation", act="leakyrelu"),
    "ConvNetASwish": _convnet_spec("ConvNet with swish activation", act="swish"),
    "ConvNetASwishBN": _convnet_spec("ConvNet with swish activation and batch norm", act="swish", norm="batchnorm"),
    "ConvNetNP": _convnet_spec("ConvNet without pooling", pooling="none"),
    "ConvNetMP": _convnet_spec("ConvNet with max pooling", pooling="maxpooling"),
    "ConvNetAP": _convnet_spec("ConvNet with average pooling", pooling="avgpooling"),
    "AlexNet": _Spec("AlexNet for small images", "alexnet:AlexNet", shapes.alexnet_side),
    "AlexNetBN": _Spec("AlexNet with batch norm", "alexnet:AlexNet", shapes.alexnet_side, {"batchnorm": True}),
    "VGG11": _Spec("VGG11 with instance norm", "vgg:VGG11", shapes.vgg_side),
    "VGG11BN": _Spec("VGG11 with batch norm", "vgg:VGG11", shapes.vgg_side, {"batchnorm": True}),
    "ResNet18": _Spec("CIFAR-style ResNet18 with instance norm", "resnet:ResNet18",
                      lambda size, _channels: shapes.resnet_side(size, avg_pool=False)),
    "ResNet18BN": _Spec("CIFAR-style ResNet18 with batch norm", "resnet:ResNet18",
                        lambda size, _channels: shapes.resnet_side(size, avg_pool=False), {"batchnorm": True}),
    "ResNet18_AP": _Spec("ResNet18 downsampling by average pooling, instance norm", "resnet:ResNet18",
                         lambda size, _channels: shapes.resnet_side(size, avg_pool=True), {"avg_pool": True}),
    "ResNet18BN_AP": _Spec("ResNet18 downsampling by average pooling, batch norm", "resnet:ResNet18",
                           lambda size, _channels: shapes.resnet_side(size, avg_pool=True),
                           {"batchnorm": True, "avg_pool": True}),
    "ResNetAP-10": _Spec("IDC's ResNetAP-10: one block per stage, average-pool downsampling, instance norm, "
                         "stem by image size (224 px: 7x7 conv, 4x4 pool)", "resnet:ResNetAP10",
                         lambda size, _channels: shapes.resnet_ap_side(size)),
    "LeNet": _Spec("LeNet-5", "small:LeNet", shapes.lenet_side),
    "MLP": _Spec("MLP with two hidden layers of 128", "small:MLP", lambda size, _channels: size),
}

_BY_LOWER: dict[str, str] = {name.lower(): name for name in _SPECS}


def _min_side(spec: _Spec, channels: int) -> int:
    return next(s for s in range(1, _MAX_SEARCH_SIZE + 1) if spec.feature_side(s, channels) >= 1)


def _canonical(name: str) -> str:
    """Case-insensitive lookup, so configs may write `convnet` or `resnet18_ap`."""
    canonical = _BY_LOWER.get(name.lower())
    if canonical is None:
        close = difflib.get_close_matches(name.lower(), list(_BY_LOWER), n=3, cutoff=0.6)
        raise UnknownNetwork(name, [_BY_LOWER[c] for c in close])
    return canonical


def min_image_size(name: str, channels: int) -> int:
    """Smallest square image side the network takes (1-channel inputs get extra padding in some nets)."""
    return _min_side(_SPECS[_canonical(name)], channels)


NETWORKS: dict[str, str] = {
    name: f"{spec.description} (min image {_min_side(spec, 3)} px; {_min_side(spec, 1)} px with 1 channel)"
    for name, spec in _SPECS.items()
}


def check_input(name: str, channels: int, num_classes: int, image_size: int) -> str:
    """The canonical name of network `name` if it takes this data shape; raises UnknownNetwork,
    IncompatibleInput or ValueError otherwise. Builds nothing (config and plan call it)."""
    canonical = _canonical(name)
    for label, value in (("channels", channels), ("num_classes", num_classes), ("image_size", image_size)):
        if value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value}")
    spec = _SPECS[canonical]
    if spec.feature_side(image_size, channels) < 1:
        raise IncompatibleInput(canonical, image_size, channels, _min_side(spec, channels))
    return canonical


def get_network(name: str, channels: int, num_classes: int, image_size: int) -> nn.Module:
    """Build network `name` (case-insensitive) for square images of `image_size` px with `channels` channels."""
    return _SPECS[check_input(name, channels, num_classes, image_size)].build(channels, num_classes, image_size)


def has_batchnorm(net: nn.Module) -> bool:
    """BatchNorm nets need all classes in one batch (DM) or statistics frozen from real data (DC)."""
    from torch import nn
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
