"""Readers for the on-disk layouts that torchvision's downloaders (and the reference code) leave.

Each data set has a `Reader`: an ordered tuple of `Layout`s, i.e. places under data_root where
its files may live, plus a hint on how to obtain them. The places are plain data so that the
not-found error can list exactly what was looked for. Readers return `RawData` (un-normalised
uint8 or [0, 1] float arrays); normalisation is done once, in `bench.data`.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpeg", ".jpg", ".png"})

MNIST_CLASSES = [
    "0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
    "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine",
]  # fmt: skip
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
SVHN_CLASSES = [str(d) for d in range(10)]

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, H, W)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)


class IdxFormatError(ValueError):
    """An MNIST-style idx file whose header does not match what it should hold."""


@dataclass
class RawData:
    """Decoded splits before normalisation: images (N, C, H, W), uint8 or float in [0, 1]."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]


@dataclass(frozen=True)
class Layout:
    """One place under data_root where a data set may live, and the function that reads it."""

    directory: str  # relative to data_root; "" is data_root itself
    files: tuple[str, ...]  # entries of `directory` that must all exist
    read: Callable[[Path], RawData]  # called with data_root / directory
    gzip_ok: bool = False  # each file may instead exist as `<file>.gz`

    def location(self, root: Path) -> Path:
        return root / self.directory if self.directory else root

    def missing(self, root: Path) -> list[str]:
        """Names from `files` that are absent, so the error can say what exactly is wrong."""
        where = self.location(root)
        return [f for f in self.files if _find(where, f, self.gzip_ok) is None]

    def describe(self, root: Path) -> str:
        """Where this layout was looked for and what, if anything, is there, for the error."""
        where = self.location(root)
        missing = self.missing(root)
        if len(self.files) <= 2:
            looked = " and ".join(str(where / f) for f in self.files)
        else:
            gz = " (each optionally .gz)" if self.gzip_ok else ""
            looked = f"{where}/ holding {', '.join(self.files)}{gz}"
        if not where.is_dir():
            return f"{looked} [folder {where} does not exist]"
        if len(missing) == len(self.files):
            return f"{looked} [none present]"
        return f"{looked} [missing: {', '.join(missing)}]"


@dataclass(frozen=True)
class Reader:
    """Every layout a data set is accepted in (tried in order) and how to get the files."""

    layouts: tuple[Layout, ...]
    hint: str


def _find(directory: Path, name: str, gzip_ok: bool) -> Path | None:
    """The file itself, else its .gz twin (torchvision keeps both; the plain one is faster)."""
    for candidate in (directory / name, directory / f"{name}.gz") if gzip_ok else (directory / name,):
        if candidate.exists():
            return candidate
    return None


# --- MNIST / FashionMNIST: idx files ---------------------------------------------------------


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an idx file (big-endian header: magic, then one uint32 per dimension; uint8 data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        shown = "nothing (file shorter than 4 bytes)" if found is None else f"0x{found:08X}"
        raise IdxFormatError(
            f"{path}: idx magic number is {shown}, expected 0x{magic:08X}. The file is not the "
            "expected MNIST-style idx file (wrong file, truncated download, or a gzip file "
            "without the .gz suffix); download it again."
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header])
    pixels = np.frombuffer(data, dtype=np.uint8, offset=header)
    if pixels.size != int(np.prod(dims)):
        raise IdxFormatError(
            f"{path}: header promises shape {dims} ({int(np.prod(dims))} bytes) but the file "
            f"holds {pixels.size} bytes of data; the file is truncated, download it again."
        )
    return pixels.reshape(dims)


def _read_mnist(directory: Path, class_names: list[str]) -> RawData:
    def file(name: str) -> Path:
        return _find(directory, name, gzip_ok=True) or directory / name

    def split(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        images = read_idx(file(f"{prefix}-images-idx3-ubyte"), IDX_IMAGES_MAGIC)
        labels = read_idx(file(f"{prefix}-labels-idx1-ubyte"), IDX_LABELS_MAGIC)
        return images[:, None], labels.astype(np.int64)

    x_train, y_train = split("train")
    x_test, y_test = split("t10k")
    return RawData(x_train, y_train, x_test, y_test, list(class_names))


MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


# --- CIFAR-10 / CIFAR-100: python pickles ----------------------------------------------------


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _cifar_batches(paths: list[Path], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Stack batches; `data` rows are 3072 bytes in C, H, W order, so a reshape gives NCHW."""
    batches = [_unpickle(p) for p in paths]
    x = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
    y = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
    return x.reshape(-1, 3, 32, 32), y


CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")


def _read_cifar10(directory: Path) -> RawData:
    x_train, y_train = _cifar_batches([directory / f"data_batch_{i}" for i in range(1, 6)], "labels")
    x_test, y_test = _cifar_batches([directory / "test_batch"], "labels")
    names = list(_unpickle(directory / "batches.meta")["label_names"])
    return RawData(x_train, y_train, x_test, y_test, names)


def _read_cifar100(directory: Path) -> RawData:
    x_train, y_train = _cifar_batches([directory / "train"], "fine_labels")
    x_test, y_test = _cifar_batches([directory / "test"], "fine_labels")
    names = list(_unpickle(directory / "meta")["fine_label_names"])
    return RawData(x_train, y_train, x_test, y_test, names)


# --- SVHN: MATLAB files ----------------------------------------------------------------------


def _read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`X` is (H, W, C, N); `y` is (N, 1) with 10 standing for digit 0 (mapped as torchvision)."""
    from scipy.io import loadmat

    mat = loadmat(path)
    x = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1)), dtype=np.uint8)
    y = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    y[y == 10] = 0
    return x, y


def _read_svhn(directory: Path) -> RawData:
    x_train, y_train = _read_svhn_mat(directory / "train_32x32.mat")
    x_test, y_test = _read_svhn_mat(directory / "test_32x32.mat")
    return RawData(x_train, y_train, x_test, y_test, list(SVHN_CLASSES))


# --- TinyImageNet: image folders, or the reference's tensor file -----------------------------


def _read_images(paths: list[Path], size: int) -> np.ndarray:
    """Decode to (N, 3, size, size) uint8; some TinyImageNet JPEGs are greyscale, hence RGB."""
    from PIL import Image

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        if pixels.shape != (size, size, 3):
            raise ValueError(
                f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]}, expected {size}x{size}"
            )
        out[i] = pixels
    return out.transpose(0, 3, 1, 2)


def _image_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: expected a folder of images (incomplete extraction?)")
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _read_tinyimagenet_folder(directory: Path) -> RawData:
    lines = (directory / "wnids.txt").read_text().splitlines()
    wnids = sorted({line.strip() for line in lines if line.strip()})
    index = {wnid: i for i, wnid in enumerate(wnids)}

    train_paths: list[Path] = []
    train_labels: list[int] = []
    for wnid in wnids:
        files = _image_files(directory / "train" / wnid / "images")
        train_paths += files
        train_labels += [index[wnid]] * len(files)

    val_paths: list[Path] = []
    val_labels: list[int] = []
    annotations = directory / "val" / "val_annotations.txt"
    for n, line in enumerate(annotations.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        filename, wnid = line.split("\t")[:2]
        if wnid not in index:
            raise ValueError(f"{annotations}, line {n}: class {wnid!r} is not in wnids.txt")
        val_paths.append(directory / "val" / "images" / filename)
        val_labels.append(index[wnid])

    return RawData(
        _read_images(train_paths, 64),
        np.asarray(train_labels, dtype=np.int64),
        _read_images(val_paths, 64),
        np.asarray(val_labels, dtype=np.int64),
        wnids,
    )


def _nchw(images: np.ndarray, channels: int, path: Path) -> np.ndarray:
    """Accept NCHW or NHWC, so either way of saving the reference's tensors reads correctly."""
    if images.ndim == 4 and images.shape[1] == channels:
        return images
    if images.ndim == 4 and images.shape[3] == channels:
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    raise ValueError(
        f"{path}: images have shape {images.shape}, "
        f"expected (N, {channels}, H, W) or (N, H, W, {channels})"
    )


def _read_tinyimagenet_pt(directory: Path) -> RawData:
    import torch

    path = directory / "tinyimagenet.pt"
    data = torch.load(path, map_location="cpu", weights_only=True)
    keys = ("images_train", "labels_train", "images_val", "labels_val")
    arrays = {k: data[k].detach().cpu().numpy() for k in keys}
    return RawData(
        _nchw(arrays["images_train"], 3, path),
        arrays["labels_train"].astype(np.int64).reshape(-1),
        _nchw(arrays["images_val"], 3, path),
        arrays["labels_val"].astype(np.int64).reshape(-1),
        [str(c) for c in data["classes"]],
    )


# --- Registry of readers ---------------------------------------------------------------------

_FIX = "or set data_root in bench.yaml to the folder that already holds it."


def _torchvision_hint(folder: str, how: str, cls: str) -> str:
    return (
        f"put the torchvision layout `{folder}/` under data_root ({how}; or run "
        f"torchvision.datasets.{cls}(data_root, download=True)), {_FIX}"
    )


_read_mnist_digits = partial(_read_mnist, class_names=MNIST_CLASSES)
_read_fashion_mnist = partial(_read_mnist, class_names=FASHION_MNIST_CLASSES)
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
TINYIMAGENET_FILES = ("wnids.txt", "train", "val/images", "val/val_annotations.txt")

READERS: dict[str, Reader] = {
    "mnist": Reader(
        (Layout("MNIST/raw", MNIST_FILES, _read_mnist_digits, gzip_ok=True),),
        _torchvision_hint("MNIST/raw", "the four idx files, gzipped or not", "MNIST"),
    ),
    "fashionmnist": Reader(
        (Layout("FashionMNIST/raw", MNIST_FILES, _read_fashion_mnist, gzip_ok=True),),
        _torchvision_hint("FashionMNIST/raw", "the four idx files, gzipped or not", "FashionMNIST"),
    ),
    "cifar10": Reader(
        (Layout("cifar-10-batches-py", CIFAR10_FILES, _read_cifar10),),
        _torchvision_hint("cifar-10-batches-py", "extract cifar-10-python.tar.gz there", "CIFAR10"),
    ),
    "cifar100": Reader(
        (Layout("cifar-100-python", ("train", "test", "meta"), _read_cifar100),),
        _torchvision_hint("cifar-100-python", "extract cifar-100-python.tar.gz there", "CIFAR100"),
    ),
    "svhn": Reader(
        (Layout("", SVHN_FILES, _read_svhn), Layout("svhn", SVHN_FILES, _read_svhn)),
        "put `train_32x32.mat` and `test_32x32.mat` directly under data_root or under "
        "data_root/svhn/ (torchvision.datasets.SVHN(data_root, split='train'/'test', download=True) "
        f"fetches them), {_FIX}",
    ),
    "tinyimagenet": Reader(
        (
            # The tensor file first: it is what the reference trained on, and it loads in seconds
            # where the folder layout means decoding 110,000 JPEGs.
            Layout("", ("tinyimagenet.pt",), _read_tinyimagenet_pt),
            Layout("tiny-imagenet-200", TINYIMAGENET_FILES, _read_tinyimagenet_folder),
        ),
        "extract tiny-imagenet-200.zip (http://cs231n.stanford.edu/tiny-imagenet-200.zip) so that "
        "`tiny-imagenet-200/` is under data_root, or put DatasetCondensation's `tinyimagenet.pt` "
        f"there, {_FIX}",
    ),
}
