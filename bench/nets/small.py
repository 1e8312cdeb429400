"""Small baselines: LeNet-5 and a two-hidden-layer MLP (DatasetCondensation `networks.py`)."""

from __future__ import annotations

import torch
from torch import nn


def lenet_feature_side(image_size: int, channels: int) -> int:
    """Side of LeNet's last conv map (< 1 if the image is too small).

    Each 5x5 conv trims 4 (the first keeps the size for 1-channel inputs, padding 2);
    each 2x2 max-pool halves, rounding down.
    """
    side = image_size if channels == 1 else image_size - 4
    if side < 2:  # a 2x2 pool needs at least 2x2
        return 0
    side = side // 2 - 4
    if side < 2:
        return 0
    return side // 2


class LeNet(nn.Module):
    """LeNet-5: two conv/max-pool stages, then a 120-84-classes MLP head."""

    def __init__(self, channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, kernel_size=5, padding=2 if channels == 1 else 0),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        self.hidden = nn.Sequential(
            nn.Linear(16 * lenet_feature_side(image_size, channels) ** 2, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(84, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 84-d hidden vector: the input of the final classifier."""
        return self.hidden(self.features(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class MLP(nn.Module):
    """Flattened pixels -> 128 -> 128 -> classes, with ReLU."""

    def __init__(self, channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Linear(channels * image_size * image_size, 128),
            nn.ReLU(),
            nn.Linear(128, 128),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(128, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d hidden vector: the input of the final classifier."""
        return self.hidden(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
