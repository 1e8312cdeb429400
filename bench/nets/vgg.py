"""VGG11 as adapted to small images in DatasetCondensation `networks.py`."""

from __future__ import annotations

import torch
from torch import nn

from bench.nets.shapes import VGG11_CFG, vgg_side


class VGG11(nn.Module):
    """VGG11 with instance norm (GroupNorm(C, C)) or batch norm after every conv."""

    def __init__(self, channels: int, num_classes: int, image_size: int, batchnorm: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = channels
        for i, item in enumerate(VGG11_CFG):
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            out_ch = int(item)
            padding = 3 if (channels == 1 and i == 0) else 1
            layers.append(nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=padding))
            layers.append(nn.BatchNorm2d(out_ch) if batchnorm else nn.GroupNorm(out_ch, out_ch, affine=True))
            layers.append(nn.ReLU())
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_ch * vgg_side(image_size, channels) ** 2, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened conv features: the classifier input that Distribution Matching compares."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
