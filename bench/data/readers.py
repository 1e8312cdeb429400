"""Readers for the on-disk layouts that torchvision's downloaders (and the reference code) leave.

Each data set has a `Reader`: an ordered tuple of `Layout`s, i.e. places under data_root where
its files may live, plus a hint on how to obtain them. The places are plain data so that the
not-found error can list exactly what was looked for. Readers return `RawData` (un-normalised
uint8 or [0, 1] float arrays); normalisation is done once, in `bench.data`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from bench.atomic import atomic_write
from bench.data import imagenet
from bench.logs import LOG

log = LOG.getChild("data")

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


class DataFileError(ValueError):
    """A data file that is there but does not hold what its layout promises: damaged, cut short, or another
    file under its name. The message is one paragraph naming the file and what is wrong; `load_dataset`
    appends how to get the data set again."""


@contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """Name the file in whatever a parser raises on bad bytes: it may be nearly anything (EOFError,
    zlib.error, gzip.BadGzipFile, UnpicklingError, IndexError, OSError...)."""
    try:
        yield
    except DataFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised as one error naming the file
        raise DataFileError(
            f"{path}: cannot be read as {what} ({type(exc).__name__}: {exc}); the file is damaged or cut short."
        ) from exc


def _described(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of {value.dtype} with shape {value.shape}"
    return f"a {type(value).__name__}"


def _labels(labels: Any, path: Path, count: int, num_classes: int, images: Path | None = None) -> np.ndarray:
    """Labels as int64, after checking that the file gives one class index (0..num_classes-1) per image
    (`images`: the file holding the images, where it is another one)."""
    try:
        y = np.asarray(labels)
    except ValueError:  # a ragged list
        y = np.asarray(labels, dtype=object)
    whole = y.dtype.kind in "iu" or (y.dtype.kind == "f" and bool(np.all(np.mod(y, 1) == 0)))  # MATLAB: doubles
    if y.ndim != 1 or (y.size and not whole):
        raise DataFileError(f"{path}: the labels are {_described(y)}, expected {count} integer class indices.")
    if len(y) != count:
        of = f" of {images}" if images else ""
        raise DataFileError(f"{path}: holds {len(y)} labels for the {count} images{of}; the file is cut short "
                            "or the two do not belong together.")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataFileError(f"{path}: labels span {int(y.min())}..{int(y.max())}, expected class indices "
                            f"0..{num_classes - 1}.")
    return y.astype(np.int64)


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
    gz = path.suffix == ".gz"
    with _reading(path, "a gzip file" if gz else "an idx file"), (gzip.open if gz else open)(path, "rb") as f:
        data = f.read()
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        shown = "nothing (file shorter than 4 bytes)" if found is None else f"0x{found:08X}"
        raise DataFileError(
            f"{path}: idx magic number is {shown}, expected 0x{magic:08X}. The file is not the "
            "expected MNIST-style idx file (wrong file, truncated download, or a gzip file "
            "without the .gz suffix)."
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"{path}: the file ends inside its {header}-byte idx header; it is truncated.")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    pixels = np.frombuffer(data, dtype=np.uint8, offset=header)
    if pixels.size != int(np.prod(dims)):
        raise DataFileError(
            f"{path}: header promises shape {dims} ({int(np.prod(dims))} bytes) but the file "
            f"holds {pixels.size} bytes of data; the file is truncated."
        )
    return pixels.reshape(dims)


def _read_mnist(directory: Path, class_names: list[str]) -> RawData:
    def file(name: str) -> Path:
        return _find(directory, name, gzip_ok=True) or directory / name

    def split(prefix: str) -> tuple[np.ndarray, np.ndarray]:
        images_file, labels_file = file(f"{prefix}-images-idx3-ubyte"), file(f"{prefix}-labels-idx1-ubyte")
        images = read_idx(images_file, IDX_IMAGES_MAGIC)
        if images.shape[1:] != (28, 28):
            raise DataFileError(f"{images_file}: images are {images.shape[2]}x{images.shape[1]}, expected 28x28.")
        labels = read_idx(labels_file, IDX_LABELS_MAGIC)
        return images[:, None], _labels(labels, labels_file, len(images), len(class_names), images_file)

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

# The globals a CIFAR pickle may name: numpy's array rebuilding (the Python 2 originals name
# numpy.core.multiarray._reconstruct, numpy.ndarray and numpy.dtype; files re-saved under numpy 2
# name numpy._core.*, and _frombuffer at protocol 5) and `_codecs.encode`, which Python 3 writes
# for bytes at protocol 2. Any other global could run code on load.
PICKLE_GLOBALS = frozenset({
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
})  # fmt: skip


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only `PICKLE_GLOBALS`, so a crafted file cannot make unpickling import and call anything."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file, encoding="latin1")  # Python 2 str -> str, as torchvision reads the files
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in PICKLE_GLOBALS:
            raise DataFileError(
                f"{self.path}: the pickle asks to load the global {module}.{name}, which no data file holds "
                "(only numpy arrays, lists, numbers and strings); bench refused it, so nothing in the file ran."
            )
        return super().find_class(module, name)


def load_pickle(path: Path) -> Any:
    """Unpickle a data file without letting it run code (plain pickle.load calls whatever the file names)."""
    with open(path, "rb") as f, _reading(path, "a Python pickle"):
        return _ArrayUnpickler(f, path).load()


def _text(value: Any) -> Any:
    """bytes -> str: a file re-saved after `pickle.load(f, encoding="bytes")` holds b"data", b"labels"."""
    return value.decode("latin1") if isinstance(value, bytes) else value


def _cifar_dict(path: Path, keys: tuple[str, ...]) -> dict[Any, Any]:
    """A CIFAR pickle as a dict with str keys (the originals' str keys and re-saved bytes keys alike)."""
    table = load_pickle(path)
    if not isinstance(table, dict):
        raise DataFileError(f"{path}: holds {_described(table)}, expected a dict with keys {', '.join(keys)}.")
    table = {_text(k): v for k, v in table.items()}
    missing = [k for k in keys if k not in table]
    if missing:
        raise DataFileError(f"{path}: the dict has no {', '.join(missing)} (its keys: "
                            f"{', '.join(map(str, table)) or 'none'}), expected {', '.join(keys)}.")
    return table


def _cifar_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch; `data` rows are 3072 bytes in C, H, W order, so a reshape gives NCHW."""
    batch = _cifar_dict(path, ("data", label_key))
    x = batch["data"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
        raise DataFileError(f"{path}: 'data' is {_described(x)}, expected a uint8 array of shape (N, 3072) "
                            "(one 32x32 colour image per row, channels first).")
    return x.reshape(-1, 3, 32, 32), _labels(batch[label_key], path, len(x), num_classes)


def _read_cifar(directory: Path, train: tuple[str, ...], test: str, meta: str, labels: str, names: str,
                num_classes: int) -> RawData:
    batches = [_cifar_batch(directory / name, labels, num_classes) for name in train]
    x_test, y_test = _cifar_batch(directory / test, labels, num_classes)
    listed = _cifar_dict(directory / meta, (names,))[names]
    class_names = [_text(n) for n in listed] if isinstance(listed, (list, tuple)) else []
    if len(class_names) != num_classes or not all(isinstance(n, str) for n in class_names):
        raise DataFileError(f"{directory / meta}: '{names}' is not a list of {num_classes} class names.")
    x_train = np.concatenate([x for x, _ in batches])
    y_train = np.concatenate([y for _, y in batches])
    return RawData(x_train, y_train, x_test, y_test, class_names)


CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")
_read_cifar10 = partial(_read_cifar, train=CIFAR10_FILES[:5], test="test_batch", meta="batches.meta",
                        labels="labels", names="label_names", num_classes=10)
_read_cifar100 = partial(_read_cifar, train=("train",), test="test", meta="meta", labels="fine_labels",
                         names="fine_label_names", num_classes=100)


# --- SVHN: MATLAB files ----------------------------------------------------------------------


def _read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`X` is (H, W, C, N); `y` is (N, 1) with 10 standing for digit 0 (mapped as torchvision)."""
    from scipy.io import loadmat

    with _reading(path, "a MATLAB .mat file"):
        mat = loadmat(path)
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise DataFileError(f"{path}: 'X' is {_described(x)}, expected a uint8 array of shape (32, 32, 3, N).")
    if not isinstance(y, np.ndarray):
        raise DataFileError(f"{path}: 'y' is {_described(y)}, expected an array of shape (N, 1).")
    labels = _labels(y.reshape(-1), path, x.shape[3], 11)  # 1..10 in the file
    labels[labels == 10] = 0
    return np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1))), labels


def _read_svhn(directory: Path) -> RawData:
    x_train, y_train = _read_svhn_mat(directory / "train_32x32.mat")
    x_test, y_test = _read_svhn_mat(directory / "test_32x32.mat")
    return RawData(x_train, y_train, x_test, y_test, list(SVHN_CLASSES))


# --- TinyImageNet: image folders, or the reference's tensor file -----------------------------

TINYIMAGENET_CLASSES = 200


def _read_images(paths: list[Path], size: int) -> np.ndarray:
    """Decode to (N, 3, size, size) uint8; some TinyImageNet JPEGs are greyscale, hence RGB."""
    from PIL import Image

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        with _reading(path, "an image"), Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        if pixels.shape != (size, size, 3):
            raise DataFileError(
                f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]}, expected {size}x{size}."
            )
        out[i] = pixels
    return out.transpose(0, 3, 1, 2)


def _image_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise DataFileError(f"{directory}: expected a folder of images, found none (incomplete extraction?).")
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _read_tinyimagenet_folder(directory: Path) -> RawData:
    listing, annotations = directory / "wnids.txt", directory / "val" / "val_annotations.txt"
    with _reading(listing, "a text file"):
        wnids = sorted({line.strip() for line in listing.read_text().splitlines() if line.strip()})
    if len(wnids) != TINYIMAGENET_CLASSES:
        raise DataFileError(f"{listing}: lists {len(wnids)} classes, expected "
                            f"{TINYIMAGENET_CLASSES} (one WordNet id per line).")
    index = {wnid: i for i, wnid in enumerate(wnids)}

    train_paths: list[Path] = []
    train_labels: list[int] = []
    for wnid in wnids:
        files = _image_files(directory / "train" / wnid / "images")
        train_paths += files
        train_labels += [index[wnid]] * len(files)

    val_paths: list[Path] = []
    val_labels: list[int] = []
    with _reading(annotations, "a text file"):
        val_lines = annotations.read_text().splitlines()
    for n, line in enumerate(val_lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DataFileError(f"{annotations}, line {n}: expected an image name, a tab and a class of "
                                f"wnids.txt, found {line!r}.")
        val_paths.append(directory / "val" / "images" / fields[0])
        val_labels.append(index[fields[1]])

    return RawData(
        _read_images(train_paths, 64),
        np.asarray(train_labels, dtype=np.int64),
        _read_images(val_paths, 64),
        np.asarray(val_labels, dtype=np.int64),
        wnids,
    )


def _images(images: np.ndarray, path: Path, size: int) -> np.ndarray:
    """(N, 3, size, size) from NCHW or NHWC, so either way of saving the reference's tensors reads
    correctly; uint8, or floats in [0, 1]."""
    if images.ndim == 4 and images.shape[3] == 3 and images.shape[1] != 3:
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    if images.shape[1:] != (3, size, size):
        raise DataFileError(f"{path}: images have shape {images.shape}, expected (N, 3, {size}, {size}) "
                            f"or (N, {size}, {size}, 3).")
    if images.dtype != np.uint8 and images.size and (images.min() < 0 or images.max() > 1):
        raise DataFileError(f"{path}: images are {images.dtype} in {images.min()}..{images.max()}, "
                            "expected uint8 or floats in [0, 1].")
    return images


def _read_tinyimagenet_pt(directory: Path) -> RawData:
    import torch

    path = directory / "tinyimagenet.pt"
    with _reading(path, "DatasetCondensation's tinyimagenet.pt (a dict of tensors and class names)"):
        data = torch.load(path, map_location="cpu", weights_only=True)
        keys = ("images_train", "labels_train", "images_val", "labels_val")
        arrays = {k: data[k].detach().cpu().numpy() for k in keys}
        classes = [str(c) for c in data["classes"]]
    if len(classes) != TINYIMAGENET_CLASSES:
        raise DataFileError(f"{path}: 'classes' lists {len(classes)} classes, expected {TINYIMAGENET_CLASSES}.")
    x_train = _images(arrays["images_train"], path, 64)
    x_test = _images(arrays["images_val"], path, 64)
    return RawData(
        x_train,
        _labels(arrays["labels_train"].reshape(-1), path, len(x_train), TINYIMAGENET_CLASSES),
        x_test,
        _labels(arrays["labels_val"].reshape(-1), path, len(x_test), TINYIMAGENET_CLASSES),
        classes,
    )


# --- ImageNet subsets: ILSVRC2012 class folders, decoded once into a cache ---------------------

CACHE_DIR = ".bench-cache"  # in the ImageNet folder: the decoded subsets, one .npz file each
CACHE_VERSION = 1  # part of each cache file's name: bump it when the decoding below changes


def _subset_files(split: Path, subset: imagenet.Subset) -> tuple[list[Path], np.ndarray]:
    """The images of the subset's classes in `split` (train/ or val/) and their labels, in class order."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, wnid in enumerate(subset.wnids):
        folder = split / wnid
        if not folder.is_dir():
            raise DataFileError(
                f"{folder}: no such folder; {subset.name} needs ImageNet class {wnid} in {split}/<wnid>/ (for "
                f"val/, the 50,000 validation images sorted into one folder per class, as ImageNet's valprep.sh "
                f"or torchvision.datasets.ImageNet leave them).")
        files = _image_files(folder)
        if not files:
            raise DataFileError(f"{folder}: holds no .JPEG images (incomplete extraction?).")
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64)


def _fit(path: Path, subset: imagenet.Subset) -> np.ndarray:
    """One image as (3, size, size) uint8, resized as the subset's reference code does (`Subset.resize_shorter`)."""
    from PIL import Image

    with _reading(path, "an image"), Image.open(path) as opened:
        image = opened.convert("RGB")  # greyscale and CMYK JPEGs too, as torchvision's loader does
    if subset.resize_shorter is None:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div_(255)
        # Resizing commutes with MTT's normalisation before it: bilinear weights sum to 1.
        x = F.interpolate(x, size=(subset.size, subset.size), mode="bilinear", align_corners=False, antialias=False)
        return x[0].mul_(255).round_().to(torch.uint8).numpy()
    width, height = image.size
    short, long = subset.resize_shorter, int(subset.resize_shorter * max(width, height) / min(width, height))
    image = image.resize((short, long) if width <= height else (long, short), Image.Resampling.BILINEAR)
    left, top = (round((side - subset.size) / 2) for side in image.size)  # torchvision's center_crop
    return np.asarray(image.crop((left, top, left + subset.size, top + subset.size))).transpose(2, 0, 1)


def _decode(paths: list[Path], subset: imagenet.Subset) -> np.ndarray:
    """(N, 3, size, size) uint8; Pillow releases the GIL while it decodes, so threads share the work."""
    out = np.empty((len(paths), 3, subset.size, subset.size), dtype=np.uint8)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for i, pixels in enumerate(pool.map(partial(_fit, subset=subset), paths)):
            out[i] = pixels
    return out


def _read_imagenet_subset(directory: Path, subset: imagenet.Subset) -> RawData:
    """Decode the subset once into `<directory>/.bench-cache/`; later loads read that file. Its name holds a
    hash of the subset's definition and of the image file names, so adding or removing images decodes again."""
    splits = {split: _subset_files(directory / split, subset) for split in ("train", "val")}
    names = [str(p.relative_to(directory)) for paths, _ in splits.values() for p in paths]
    listing = [CACHE_VERSION, subset.wnids, subset.size, subset.resize_shorter, *names]
    digest = hashlib.sha256("\n".join(map(str, listing)).encode()).hexdigest()[:16]
    cache = directory / CACHE_DIR / f"{subset.name}-{subset.size}px-{digest}.npz"
    (train, y_train), (val, y_test) = splits.values()
    if cache.exists():
        try:
            with np.load(cache) as arrays:  # no pickles: a crafted cache file cannot run code
                return RawData(arrays["x_train"], y_train, arrays["x_test"], y_test, list(subset.wnids))
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("warning: %s is damaged (%s: %s); decoding the images again.", cache, type(exc).__name__, exc)
    x_train, x_test = _decode(train, subset), _decode(val, subset)
    try:
        atomic_write(cache, lambda f: np.savez(f, x_train=x_train, x_test=x_test))
    except OSError as exc:  # a read-only ImageNet folder: every load decodes again
        log.warning("warning: cannot write the decoded %s to %s (%s); each load will decode the images again.",
                    subset.name, cache, exc.strerror)
    return RawData(x_train, y_train, x_test, y_test, list(subset.wnids))


# --- Registry of readers ---------------------------------------------------------------------

# A hint names the exact files a data set needs under the data root (`{root}` in it is the data root), where
# to get them, and torchvision's downloader as one way, for machines that have torchvision and internet.
_FIX = ("Or point the data root (--data-root, $BENCH_DATA_ROOT or data_root in bench.yaml) at the folder that "
        "already holds it.")


def _torchvision(cls: str, args: str = "") -> str:
    """The command that fetches a data set with torchvision into the data root."""
    return (f"where torchvision and internet are available, `python -c \"import torchvision; "
            f"torchvision.datasets.{cls}('{{root}}'{args}, download=True)\"` puts them there")


def _idx_hint(folder: str, cls: str, source: str) -> str:
    return (f"put the four idx files as {{root}}/{folder}/train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            f"t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may stay gzipped as .gz; {source}); "
            f"{_torchvision(cls)}. {_FIX}")


def _cifar_hint(folder: str, files: str, archive: str, cls: str) -> str:
    return (f"put {{root}}/{folder}/{files} (extract {archive} from https://www.cs.toronto.edu/~kriz/cifar.html "
            f"into {{root}}/); {_torchvision(cls)}. {_FIX}")


_read_mnist_digits = partial(_read_mnist, class_names=MNIST_CLASSES)
_read_fashion_mnist = partial(_read_mnist, class_names=FASHION_MNIST_CLASSES)
SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
SVHN_SPLIT = ", split='train'"
TINYIMAGENET_FILES = ("wnids.txt", "train", "val/images", "val/val_annotations.txt")
IMAGENET_FOLDERS = ("imagenet", "ImageNet", "ILSVRC2012", "ILSVRC/Data/CLS-LOC")  # the last: Kaggle's layout
IMAGENET_HINT = (
    "put ILSVRC2012 (ImageNet-1k) as {root}/imagenet/train/<wnid>/*.JPEG and {root}/imagenet/val/<wnid>/*.JPEG "
    "(or under {root}/ILSVRC2012/, or Kaggle's {root}/ILSVRC/Data/CLS-LOC/), the validation images sorted into one "
    "folder per class (ImageNet's valprep.sh does it; with torchvision, `torchvision.datasets.ImageNet('{root}', "
    "split='train')` and split='val' unpack the official tarballs ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar "
    f"and ILSVRC2012_devkit_t12.tar.gz, placed in {{root}}/ first, into this layout; ImageNet has no download). "
    f"{_FIX}"
)

READERS: dict[str, Reader] = {
    "mnist": Reader(
        (Layout("MNIST/raw", MNIST_FILES, _read_mnist_digits, gzip_ok=True),),
        _idx_hint("MNIST/raw", "MNIST", "torchvision's mirror is https://ossci-datasets.s3.amazonaws.com/mnist/"),
    ),
    "fashionmnist": Reader(
        (Layout("FashionMNIST/raw", MNIST_FILES, _read_fashion_mnist, gzip_ok=True),),
        _idx_hint("FashionMNIST/raw", "FashionMNIST",
                  "from http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
    ),
    "cifar10": Reader(
        (Layout("cifar-10-batches-py", CIFAR10_FILES, _read_cifar10),),
        _cifar_hint("cifar-10-batches-py", "data_batch_1 to data_batch_5, test_batch and batches.meta",
                    "cifar-10-python.tar.gz", "CIFAR10"),
    ),
    "cifar100": Reader(
        (Layout("cifar-100-python", ("train", "test", "meta"), _read_cifar100),),
        _cifar_hint("cifar-100-python", "train, test and meta", "cifar-100-python.tar.gz", "CIFAR100"),
    ),
    "svhn": Reader(
        (Layout("", SVHN_FILES, _read_svhn), Layout("svhn", SVHN_FILES, _read_svhn)),
        "put {root}/train_32x32.mat and {root}/test_32x32.mat (or both in {root}/svhn/), from "
        f"http://ufldl.stanford.edu/housenumbers/; {_torchvision('SVHN', SVHN_SPLIT)} (and split='test' the "
        f"other). {_FIX}",
    ),
    "tinyimagenet": Reader(
        (
            # The tensor file first: it is what the reference trained on, and it loads in seconds
            # where the folder layout means decoding 110,000 JPEGs.
            Layout("", ("tinyimagenet.pt",), _read_tinyimagenet_pt),
            Layout("tiny-imagenet-200", TINYIMAGENET_FILES, _read_tinyimagenet_folder),
        ),
        "put {root}/tiny-imagenet-200/wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and "
        "val/val_annotations.txt (extract http://cs231n.stanford.edu/tiny-imagenet-200.zip into {root}/), or "
        "DatasetCondensation's {root}/tinyimagenet.pt; torchvision has no downloader for it. "
        f"{_FIX}",
    ),
    **{
        name: Reader(tuple(Layout(folder, ("train", "val"), partial(_read_imagenet_subset, subset=subset))
                           for folder in IMAGENET_FOLDERS), IMAGENET_HINT)
        for name, subset in imagenet.SUBSETS.items()
    },
}
