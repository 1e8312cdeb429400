"""AlexNet as adapted to small images in DatasetCondensation `networks.py`."""

from __future__ import annotations

import torch
from torch import nn

from bench.nets.shapes import alexnet_side


class AlexNet(nn.Module):
    """Five convs (128-192-256-192-192) with three max-pools, then one linear classifier."""

    def __init__(self, channels: int, num_classes: int, image_size: int, batchnorm: bool = False) -> None:
        super().__init__()

        def conv(cin: int, cout: int, kernel: int, padding: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel_size=kernel, padding=padding)]
            if batchnorm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU())
            return layers

        self.features = nn.Sequential(
            *conv(channels, 128, 5, 4 if channels == 1 else 2),
            nn.MaxPool2d(2, 2),
            *conv(128, 192, 5, 2),
            nn.MaxPool2d(2, 2),
            *conv(192, 256, 3, 1),
            *conv(256, 192, 3, 1),
            *conv(192, 192, 3, 1),
            nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Linear(192 * alexnet_side(image_size, channels) ** 2, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened conv features: the classifier input that Distribution Matching compares."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
