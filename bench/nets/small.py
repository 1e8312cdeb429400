"""Small baselines: LeNet-5 and a two-hidden-layer MLP (DatasetCondensation `networks.py`)."""

from __future__ import annotations

import torch
from torch import nn

from bench.nets.shapes import lenet_side


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
            nn.Linear(16 * lenet_side(image_size, channels) ** 2, 120),
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
