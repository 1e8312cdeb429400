"""CIFAR-style ResNet18 and its average-pooling variant (DatasetCondensation `networks.py`), and IDC's
ResNetAP-10 (snu-mllab/Efficient-Dataset-Condensation `models/resnet_ap.py`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bench.nets.shapes import RESNET_WIDTHS, resnet_ap_stem_pool, resnet_side

Norm = Callable[[int], nn.Module]

BLOCKS_PER_LAYER = 2


def _norm_factory(batchnorm: bool) -> Norm:
    if batchnorm:
        return nn.BatchNorm2d
    # Instance norm with learnable affine, written as GroupNorm(C, C) as in the reference.
    return lambda c: nn.GroupNorm(c, c, affine=True)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; downsampling by stride, or by 2x2 average pooling."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: Norm, avg_pool: bool) -> None:
        super().__init__()
        downsample = stride != 1
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=1 if avg_pool else stride, padding=1, bias=False)
        self.norm1 = norm(out_ch)
        self.pool = nn.AvgPool2d(2, 2) if (avg_pool and downsample) else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.norm2 = norm(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if downsample or in_ch != out_ch:
            if avg_pool:
                pool: nn.Module = nn.AvgPool2d(2, 2) if downsample else nn.Identity()
                self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=1, bias=False), pool, norm(out_ch))
            else:
                self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), norm(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The reference pools after the first norm + ReLU in the average-pooling variant.
        out = self.pool(F.relu(self.norm1(self.conv1(x))))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet18 for small images: 3x3 stem without max-pool, four stages of two BasicBlocks."""

    def __init__(
        self, channels: int, num_classes: int, image_size: int, batchnorm: bool = False, avg_pool: bool = False
    ) -> None:
        super().__init__()
        norm = _norm_factory(batchnorm)
        self.avg_pool = avg_pool
        self.conv1 = nn.Conv2d(channels, RESNET_WIDTHS[0], 3, stride=1, padding=1, bias=False)
        self.norm1 = norm(RESNET_WIDTHS[0])
        stages: list[nn.Module] = []
        in_ch = RESNET_WIDTHS[0]
        for i, width in enumerate(RESNET_WIDTHS):
            blocks = []
            for b in range(BLOCKS_PER_LAYER):
                stride = 2 if (i > 0 and b == 0) else 1
                blocks.append(BasicBlock(in_ch, width, stride, norm, avg_pool))
                in_ch = width
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.classifier = nn.Linear(in_ch * resnet_side(image_size, avg_pool) ** 2, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened final features: the classifier input that Distribution Matching compares."""
        out = self.layers(F.relu(self.norm1(self.conv1(x))))
        if not self.avg_pool:
            out = F.avg_pool2d(out, 4)
        return out.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class ResNetAP10(nn.Module):
    """IDC's ResNetAP-10, the network of its ImageNet experiments (and of UDD's Table 8).

    IDC's ImageNet branch at depth 10 and width 1: a stem chosen by image size (`resnet_ap_stem_pool`;
    224 px: 7x7 conv, 4x4 average pool), one BasicBlock per stage (64/128/256/512) whose downsampling
    is a stride-1 conv then 2x2 average pooling (shortcut: 1x1 conv, pool, norm), instance norm
    (IDC's default `--norm_type instance`, GroupNorm(C, C)), global average pooling, Linear(512).
    Conv weights start as IDC's: N(0, 2 / (k * k * out_channels)). IDC's CIFAR branch (widths 32-256)
    is another network.
    """

    def __init__(self, channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        norm = _norm_factory(False)
        pool = resnet_ap_stem_pool(image_size)
        kernel = 7 if pool == 4 else 3
        self.conv1 = nn.Conv2d(channels, RESNET_WIDTHS[0], kernel, padding=kernel // 2, bias=False)
        self.norm1 = norm(RESNET_WIDTHS[0])
        self.pool = nn.AvgPool2d(pool, pool) if pool > 1 else nn.Identity()
        blocks, in_ch = [], RESNET_WIDTHS[0]
        for i, width in enumerate(RESNET_WIDTHS):
            blocks.append(BasicBlock(in_ch, width, 2 if i else 1, norm, avg_pool=True))
            in_ch = width
        self.layers = nn.Sequential(*blocks)
        self.classifier = nn.Linear(in_ch, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The globally average-pooled last stage: the classifier input that Distribution Matching compares."""
        out = self.layers(self.pool(F.relu(self.norm1(self.conv1(x)))))
        return out.mean((-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
