"""Data sets: the registry of their facts (what a suite can name and validate, with no data and no
torch loaded) and `load_dataset` (in `bench.data.loading`), which returns normalised tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.data import digits, imagenet

__all__ = ["DATASETS", "Dataset", "DatasetNotFound", "DatasetSpec", "UnknownDataset", "load_dataset"]

FLIP = "color_crop_cutout_flip_scale_rotate"
NO_FLIP = "color_crop_cutout_scale_rotate"  # for digits, which are not mirror-symmetric


@dataclass(frozen=True)
class DatasetSpec:
    """What is known about a data set without reading it (used to validate configs)."""

    name: str
    channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dsa_strategy: str
    min_class_train: int  # IPC must not exceed this
    description: str


class DatasetNotFound(FileNotFoundError):
    """The data set's files are not under data_root in any accepted layout."""


class UnknownDataset(KeyError):
    """A name that is not in DATASETS."""

    def __str__(self) -> str:  # KeyError would show the message quoted, as a repr
        return str(self.args[0])


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "digits", 1, 8, 10, (digits.MEAN,), (digits.STD,), NO_FLIP, digits.MIN_CLASS_TRAIN,
            "scikit-learn 8x8 handwritten digits, built in, no download "
            f"({digits.TRAIN_SIZE:,} train / {digits.TEST_SIZE} test)",
        ),
        DatasetSpec(
            "mnist", 1, 28, 10, (0.1307,), (0.3081,), NO_FLIP, 5421,
            "MNIST handwritten digits, 28x28 grey (60,000 train / 10,000 test)",
        ),
        DatasetSpec(
            "fashionmnist", 1, 28, 10, (0.2861,), (0.3530,), FLIP, 6000,
            "Fashion-MNIST clothing, 28x28 grey (60,000 train / 10,000 test)",
        ),
        DatasetSpec(
            "svhn", 3, 32, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), NO_FLIP, 4659,
            "SVHN house-number digits, 32x32 colour (73,257 train / 26,032 test)",
        ),
        DatasetSpec(
            "cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), FLIP, 5000,
            "CIFAR-10 objects, 32x32 colour (50,000 train / 10,000 test)",
        ),
        DatasetSpec(
            "cifar100", 3, 32, 100, (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762), FLIP, 500,
            "CIFAR-100 objects (fine labels), 32x32 colour (50,000 train / 10,000 test)",
        ),
        DatasetSpec(
            "tinyimagenet", 3, 64, 200, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), FLIP, 500,
            "Tiny ImageNet, 200 classes, 64x64 colour (100,000 train / 10,000 val as test)",
        ),
        *(
            DatasetSpec(s.name, 3, s.size, len(s.wnids), imagenet.MEAN, imagenet.STD, FLIP,
                        imagenet.MIN_CLASS_TRAIN, s.description)
            for s in imagenet.SUBSETS.values()
        ),
    )
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """`Dataset` and `load_dataset` come from `bench.data.loading`, imported (with torch) on first use."""
    if name in ("Dataset", "load_dataset"):
        from bench.data import loading
        return getattr(loading, name)
    raise AttributeError(f"module 'bench.data' has no attribute {name!r}")
