"""ConvNet: the default backbone of dataset-distillation papers (DatasetCondensation `networks.py`)."""

from __future__ import annotations

import torch
from torch import nn

from bench.nets.shapes import block_sides, first_conv_padding

ACTIVATIONS = ("relu", "sigmoid", "leakyrelu", "swish")
NORMS = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")
POOLINGS = ("avgpooling", "maxpooling", "none")


def _activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "leakyrelu":
        return nn.LeakyReLU(0.01)
    if kind == "swish":
        return nn.SiLU()  # x * sigmoid(x)
    raise ValueError(f"unknown activation {kind!r}; choose from {ACTIVATIONS}")


def _norm(kind: str, width: int, side: int) -> nn.Module | None:
    if kind == "instancenorm":
        # GroupNorm with one channel per group: instance norm with learnable affine, as in the reference.
        return nn.GroupNorm(width, width, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(width)
    if kind == "layernorm":
        return nn.LayerNorm([width, side, side])
    if kind == "groupnorm":
        return nn.GroupNorm(4, width, affine=True)
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}; choose from {NORMS}")


def _pool(kind: str) -> nn.Module | None:
    if kind == "avgpooling":
        return nn.AvgPool2d(2, 2)
    if kind == "maxpooling":
        return nn.MaxPool2d(2, 2)
    if kind == "none":
        return None
    raise ValueError(f"unknown pooling {kind!r}; choose from {POOLINGS}")


class ConvNet(nn.Module):
    """`depth` blocks of conv3x3 -> norm -> act -> pool, then one linear classifier."""

    def __init__(
        self,
        channels: int,
        num_classes: int,
        image_size: int,
        width: int = 128,
        depth: int = 3,
        act: str = "relu",
        norm: str = "instancenorm",
        pooling: str = "avgpooling",
    ) -> None:
        super().__init__()
        sides = block_sides(image_size, channels, depth, pooling)
        layers: list[nn.Module] = []
        in_ch = channels
        for d in range(depth):
            padding = first_conv_padding(channels) if d == 0 else 1
            layers.append(nn.Conv2d(in_ch, width, kernel_size=3, padding=padding))
            norm_layer = _norm(norm, width, sides[d])
            if norm_layer is not None:
                layers.append(norm_layer)
            layers.append(_activation(act))
            pool_layer = _pool(pooling)
            if pool_layer is not None:
                layers.append(pool_layer)
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * sides[-1] ** 2, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened conv features: the classifier input that Distribution Matching compares."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
