"""VGG11 as adapted to small images in DatasetCondensation `networks.py`."""

from __future__ import annotations

import torch
from torch import nn

VGG11_CFG: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def feature_side(image_size: int, channels: int) -> int:
    """Spatial side of the map fed to the classifier (< 1 if the image is too small).

    3x3 convs keep the size (the first grows it by 4 for 1-channel inputs); each "M" halves it.
    """
    side = image_size + (4 if channels == 1 else 0)
    for item in VGG11_CFG:
        if item == "M":
            side //= 2
    return side


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
        self.classifier = nn.Linear(in_ch * feature_side(image_size, channels) ** 2, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened conv features: the classifier input that Distribution Matching compares."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
