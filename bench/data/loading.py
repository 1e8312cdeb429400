"""Reading a data set from disk into normalised tensors.

Normalisation follows DatasetCondensation's `get_dataset`: pixels scaled to [0, 1] (uint8 / 255),
then (x - mean) / std per channel, with the reference's constants.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data import DATASETS, DatasetNotFound, DatasetSpec, UnknownDataset, digits
from bench.data.readers import READERS, DataFileError, RawData


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
    """Read with the first complete layout; otherwise say every place that was looked at. A file that is
    there but unreadable (`DataFileError`) is named with how to get the data set again."""
    reader = READERS[name]
    hint = reader.hint.format(root=root)
    for layout in reader.layouts:
        if not layout.missing(root):
            try:
                return layout.read(layout.location(root))
            except DataFileError as exc:
                raise DataFileError(f"{exc} To fix, download {name!r} again: {hint}") from exc.__cause__
    looked = [layout.describe(root) for layout in reader.layouts]
    raise DatasetNotFound(
        f"Dataset {name!r} was not found under data_root {str(root)!r}. Looked for: "
        f"{'; or '.join(looked)}. To fix, {hint}"
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
