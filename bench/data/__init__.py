"""Data sets: the registry of their facts and `load_dataset`, which returns normalised tensors.

Normalisation follows DatasetCondensation's `get_dataset`: pixels scaled to [0, 1] (uint8 / 255),
then (x - mean) / std per channel, with the reference's constants.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data import digits
from bench.data.readers import READERS, RawData

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


@dataclass
class Dataset:
    """A loaded data set: (N, C, H, W) float32 images, already normalised, and int64 labels."""

    spec: DatasetSpec
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]

    def class_indices(self) -> list[torch.Tensor]:
        """Indices into x_train for each class, in class order (for per-class sampling)."""
        return [torch.nonzero(self.y_train == c).flatten() for c in range(self.spec.num_classes)]

    def smallest_class(self) -> int:
        """Number of training images in the smallest class."""
        return int(torch.bincount(self.y_train, minlength=self.spec.num_classes).min())


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
    )
}  # fmt: skip


def load_dataset(name: str, root: str | os.PathLike) -> Dataset:
    """Read a data set from data_root (any accepted layout) and normalise it; digits ignores root."""
    key = name.lower()
    if key not in DATASETS:
        raise UnknownDataset(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    spec = DATASETS[key]
    raw = digits.read_digits() if key == "digits" else _read(key, Path(root).expanduser().absolute())
    _check(spec, raw)
    return Dataset(
        spec=spec,
        x_train=_normalise(raw.x_train, spec),
        y_train=torch.from_numpy(np.array(raw.y_train, dtype=np.int64)),
        x_test=_normalise(raw.x_test, spec),
        y_test=torch.from_numpy(np.array(raw.y_test, dtype=np.int64)),
        class_names=list(raw.class_names),
    )


def _read(name: str, root: Path) -> RawData:
    """Read with the first complete layout; otherwise say every place that was looked at."""
    reader = READERS[name]
    for layout in reader.layouts:
        if not layout.missing(root):
            return layout.read(layout.location(root))
    looked = [layout.describe(root) for layout in reader.layouts]
    raise DatasetNotFound(
        f"Dataset {name!r} was not found under data_root {str(root)!r}. Looked for: "
        f"{'; or '.join(looked)}. To fix, {reader.hint}"
    )


def _check(spec: DatasetSpec, raw: RawData) -> None:
    """Catch a reader or file that disagrees with the spec before it silently trains on garbage."""
    shape = (spec.channels, spec.image_size, spec.image_size)
    for split, x, y in (("train", raw.x_train, raw.y_train), ("test", raw.x_test, raw.y_test)):
        where = f"{spec.name}: {split}"
        if x.ndim != 4 or tuple(x.shape[1:]) != shape:
            raise ValueError(f"{where} images have shape {tuple(x.shape)}, expected (N, *{shape})")
        if y.shape != (len(x),):
            raise ValueError(f"{where} labels have shape {y.shape}, expected ({len(x)},)")
        if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
            raise ValueError(
                f"{where} labels span {y.min()}..{y.max()}, expected 0..{spec.num_classes - 1}"
            )
        if x.dtype != np.uint8 and x.size and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"{where} images are {x.dtype} in {x.min()}..{x.max()}, expected uint8 or [0, 1]"
            )
    if len(raw.class_names) != spec.num_classes:
        raise ValueError(
            f"{spec.name}: {len(raw.class_names)} class names, expected {spec.num_classes}"
        )


def _normalise(x: np.ndarray, spec: DatasetSpec) -> torch.Tensor:
    """uint8 -> /255 (ToTensor), then (x - mean) / std per channel, as float32."""
    # A fresh, writable, C-contiguous copy (readers may hand over read-only or transposed views).
    t = torch.from_numpy(np.array(x, dtype=np.float32, order="C"))
    if x.dtype == np.uint8:
        t.div_(255.0)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, -1, 1, 1)
    return t.sub_(mean).div_(std)
