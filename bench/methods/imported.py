"""`import`: a synthetic set made by another codebase, read from its files and checked against its cell.

Formats (`format:` overrides the detection): a tensor `.pt` (MTT/DATM `images_best.pt`, with
`labels_best.pt` beside it or named by `labels:`), DatasetCondensation's `res_*.pt` (a dict whose `data`
lists `[images, labels]` per experiment; the distill seed picks the experiment), `.npz` (arrays `images`,
`labels`, optionally `soft_labels` and `lr`), `.npy` (images; labels beside or named), and an image folder
(one sub-folder of PNG/JPEG per class, named as the data set's classes or by class index). Torch files are
read with `weights_only=True`, numpy files without pickles: a crafted file cannot run code.

Every check runs before any training (`bench.executors.tasks.check_data` reads each pending import once
before the first task starts); each mismatch is one `InputError` paragraph saying what to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.data import Dataset, DatasetSpec
from bench.methods import specs
from bench.methods.base import DistillContext, Method, SyntheticSet
from bench.methods.specs import IMAGE_SUFFIXES, ImportParams, InputError, folder_files

# How far beyond the real data's range (in the declared space) an imported value may lie before the
# declared space is called wrong: learned sets do leave the real range, by a few times at most.
FAR = 10.0


@dataclass
class Files:
    """What the files hold, before any check: images as stored, labels (class indices or a [N, classes]
    matrix), soft labels and lr where given, and how to name the images' source in messages."""

    images: Any
    labels: Any
    soft_labels: Any
    lr: Any
    source: str
    pixels: bool = False  # decoded from PNG/JPEG (always pixels)


class Import(specs.Import, Method):
    def distill(self, ctx: DistillContext) -> SyntheticSet:
        return self.read(ctx.dataset, ctx.ipc, ctx.seed)

    def check_inputs(self, dataset: Dataset, ipc: int, seed: int) -> None:
        """Read and check the files before any task starts (`bench.executors.tasks.check_data`)."""
        self.read(dataset, ipc, seed)

    def read(self, dataset: Dataset, ipc: int, seed: int) -> SyntheticSet:
        """The set for `ipc` images per class of `dataset` (already in the space the evaluation uses),
        checked and converted to the data set's normalised (or ZCA) values; `InputError` on any mismatch."""
        files = read_files(self.params, dataset.spec, seed, dataset.class_names, ipc)
        return checked_set(files, self.params, dataset, ipc)


def paths(params: ImportParams, dataset: str, ipc: int, seed: int) -> dict[str, Path]:
    """The files of each file param for this cell (labels beside the images where none is named)."""
    return {i["param"]: Path(i["path"]) for i in specs.Import(params).inputs(dataset, ipc, seed)}


def detect_format(params: ImportParams, path: Path) -> str:
    if params.format is not None:
        return params.format
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in (".npz", ".npy"):
        return suffix[1:]
    return "dc-res" if isinstance(torch_file(path), dict) else "tensor"


def torch_file(path: Path) -> Any:
    """A .pt file's contents, read with weights_only=True (tensors, numbers, lists and dicts only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors of every kind
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot read {str(path)!r} as a torch file with weights_only=True ({first}). bench reads "
                         f".pt files that hold tensors, numbers, lists and dicts only.") from None


def numpy_file(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a damaged file, or one holding pickled objects
        raise InputError(f"cannot read {str(path)!r} as a numpy file without pickles ({exc}).") from None


def side_file(path: Path) -> Any:
    """A labels, soft-labels or lr file: .npy by numpy, anything else as a torch file."""
    return numpy_file(path) if path.suffix.lower() == ".npy" else torch_file(path)


def read_files(params: ImportParams, spec: DatasetSpec, seed: int, class_names: list[str] | None,
               ipc: int) -> Files:
    """The raw contents of the import's files for this cell (the folder format needs `class_names`)."""
    found = paths(params, spec.name, ipc, seed)
    path = found["path"]
    fmt = detect_format(params, path)
    side = {k: side_file(found[k]) for k in ("labels", "soft_labels", "lr") if k in found}
    if fmt == "folder":
        images, labels = read_folder(path, spec, class_names)
        files = Files(images, labels, None, None, f"the image folder {str(path)!r}", pixels=True)
    elif fmt == "dc-res":
        files = Files(*dc_experiment(torch_file(path), path, seed), None, None,
                      f"experiment {seed} of {str(path)!r}")
    elif fmt == "npz":
        arrays = numpy_file(path)
        if not hasattr(arrays, "files") or "images" not in arrays.files:
            raise InputError(f"{str(path)!r} is read as .npz and must hold an array named 'images' (and 'labels'); "
                             f"it holds {sorted(getattr(arrays, 'files', [])) or 'no named arrays'}.")
        get = lambda k: arrays[k] if k in arrays.files else None  # noqa: E731
        files = Files(arrays["images"], get("labels"), get("soft_labels"), get("lr"), str(path))
    else:
        files = Files(numpy_file(path) if fmt == "npy" else torch_file(path), None, None, None, str(path))
    files.labels = side.get("labels", files.labels)
    files.soft_labels = side.get("soft_labels", files.soft_labels)
    files.lr = side.get("lr", params.lr if isinstance(params.lr, float) else files.lr)
    if files.labels is None:
        raise InputError(f"{files.source} holds images but no labels: name the labels file with `labels:` "
                         f"(for images_*.pt bench also looks for labels_*.pt beside it).")
    return files


def dc_experiment(saved: Any, path: Path, seed: int) -> tuple[Any, Any]:
    """DatasetCondensation's `res_*.pt`: {'data': [[images, labels] per experiment], ...}; the seed picks one."""
    data = saved.get("data") if isinstance(saved, dict) else None
    if not isinstance(data, (list, tuple)):
        raise InputError(f"{str(path)!r} is read as DatasetCondensation's res_*.pt, a dict whose 'data' lists "
                         f"[images, labels] per experiment; it has no such list (keys: "
                         f"{sorted(saved) if isinstance(saved, dict) else type(saved).__name__}).")
    if seed >= len(data):
        raise InputError(f"{str(path)!r} holds {len(data)} experiment(s) (0..{len(data) - 1}); distill seed {seed} "
                         f"picks experiment {seed}, which it lacks. Use `distill_seeds:` below {len(data)}.")
    pair = data[seed]
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
        raise InputError(f"experiment {seed} of {str(path)!r} is not a pair [images, labels].")
    return pair[0], pair[1]


def read_folder(path: Path, spec: DatasetSpec, class_names: list[str] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """An image folder (SRe2L/RDED releases): one sub-folder per class, named as the data set's classes or by
    class index (`class_numbers`); PNG/JPEG pixels as uint8 (N, C, H, W) and the class of each."""
    from PIL import Image

    folders = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = [f.name for f in folders]
    if class_names is not None and sorted(names) == sorted(class_names):
        index = {name: class_names.index(name) for name in names}
    elif (numbers := class_numbers(names)) is not None and sorted(numbers.values()) == list(range(spec.num_classes)):
        index = numbers
    else:
        want = class_names or [str(c) for c in range(spec.num_classes)]
        extra = sorted(set(names) - set(want))[:5]
        missing = [n for n in want if n not in names][:5]
        raise InputError(f"the image folder {str(path)!r} has {len(names)} class folder(s), but {spec.name} has "
                         f"{spec.num_classes} classes: name one sub-folder per class as the data set's class list "
                         f"({', '.join(want[:10])}{', ...' if len(want) > 10 else ''}) or by class index 0.."
                         f"{spec.num_classes - 1}. Not classes here: {extra or 'none'}; missing: {missing or 'none'}.")
    images, labels = [], []
    mode = "L" if spec.channels == 1 else "RGB"
    for folder in folders:
        for file in folder_files(folder):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(f"{str(file)!r} in the image folder is not a PNG or JPEG; remove it.")
            try:
                with Image.open(file) as img:
                    img.load()
                    array = np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
            except OSError as exc:
                raise InputError(f"cannot decode {str(file)!r} as an image ({exc}).") from None
            if array.ndim == 3 and mode == "L":
                if not (array == array[..., :1]).all():
                    raise InputError(f"{str(file)!r} is a colour image, but {spec.name} is grey (1 channel).")
                array = array[..., 0]
            if array.ndim == 2 and mode == "RGB":
                raise InputError(f"{str(file)!r} is a grey image, but {spec.name} has 3 colour channels.")
            if array.shape[:2] != (spec.image_size, spec.image_size):
                raise InputError(f"{str(file)!r} is {array.shape[1]}x{array.shape[0]} pixels, but {spec.name} images "
                                 f"are {spec.image_size}x{spec.image_size}; bench does not resize imported images.")
            images.append(torch.from_numpy(array.reshape(spec.image_size, spec.image_size, -1).copy()).permute(2, 0, 1))
            labels.append(index[folder.name])
    if not images:
        raise InputError(f"the image folder {str(path)!r} holds no PNG or JPEG files.")
    return torch.stack(images), torch.tensor(labels)


def class_numbers(names: list[str]) -> dict[str, int] | None:
    """Folders named by class index, with one common prefix or none: 0, 00001 (RDED), new000 (SRe2L)."""
    found = [re.fullmatch(r"(\D*)(\d+)", n) for n in names]
    if not all(found) or len({m.group(1) for m in found}) != 1:
        return None
    return {m.group(0): int(m.group(2)) for m in found}


def as_tensor(value: Any, what: str, source: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise InputError(f"the {what} in {source} are a numpy array of {value.dtype}, not numbers.")
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    raise InputError(f"the {what} in {source} are a {type(value).__name__}, not a tensor or array.")


def checked_set(files: Files, params: ImportParams, dataset: Dataset, ipc: int) -> SyntheticSet:
    """The files as a set of `dataset` at `ipc`, in its normalised (or ZCA) space, or `InputError` naming the
    first mismatch."""
    spec, src = dataset.spec, files.source
    x = as_tensor(files.images, "images", src)
    shape = (spec.channels, spec.image_size, spec.image_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != shape:
        hint = ""
        if x.dim() == 4 and tuple(x.shape[1:]) == (spec.image_size, spec.image_size, spec.channels):
            hint = " They look channels-last (N, H, W, C): save them as (N, C, H, W)."
        elif x.dim() == 4 and x.shape[1] != spec.channels:
            hint = f" They have {x.shape[1]} channel(s), {spec.name} has {spec.channels}."
        elif x.dim() == 4:
            hint = f" They are {x.shape[2]}x{x.shape[3]}, {spec.name} is {spec.image_size}x{spec.image_size}."
        raise InputError(f"the images in {src} have shape {tuple(x.shape)}; {spec.name} needs (N, "
                         f"{', '.join(map(str, shape))}).{hint}")
    x = x.float()
    if not torch.isfinite(x).all():
        raise InputError(f"the images in {src} hold {int((~torch.isfinite(x)).sum())} NaN or Inf value(s).")
    y, soft = labels_of(files, len(x), spec)
    counts = torch.bincount(y, minlength=spec.num_classes).tolist()
    if counts != [ipc] * spec.num_classes:
        present = sum(c > 0 for c in counts)
        if len(set(counts)) == 1:
            raise InputError(f"{src} holds {counts[0]} image(s) per class (IPC {counts[0]}), but this cell is IPC "
                             f"{ipc}: evaluate it at IPC {counts[0]} (or point the template at the IPC {ipc} file).")
        raise InputError(f"{src} holds {len(x)} images whose labels cover {present} of {spec.name}'s "
                         f"{spec.num_classes} classes, per class {counts}; this cell needs {ipc} per class (IPC "
                         f"{ipc}; {len(x)} images would be IPC {len(x) / spec.num_classes:g}).")
    x = in_space(x, files, params, dataset)
    return make_set(x, y, soft, learned_lr(files.lr, src))


def labels_of(files: Files, n: int, spec: DatasetSpec) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Class indices (int64) and soft labels ([N, classes], or None). A [N, classes] float labels file (DATM's
    learned labels) gives both: its argmax is the class, the matrix the soft labels."""
    src = files.source
    y = as_tensor(files.labels, "labels", src)
    soft = None if files.soft_labels is None else as_tensor(files.soft_labels, "soft labels", src).float()
    if y.dim() == 2 and y.is_floating_point():
        soft = y.float() if soft is None else soft
        y = y.argmax(1)
    if soft is not None:
        if tuple(soft.shape) != (n, spec.num_classes):
            raise InputError(f"the soft labels for {src} have shape {tuple(soft.shape)}; {spec.name} needs one row "
                             f"of {spec.num_classes} class scores per image, ({n}, {spec.num_classes}).")
        if not torch.isfinite(soft).all():
            raise InputError(f"the soft labels for {src} hold NaN or Inf values.")
    if y.dim() != 1 or len(y) != n:
        raise InputError(f"the labels for {src} have shape {tuple(y.shape)}; there must be one class index per "
                         f"image ({n}).")
    if y.is_floating_point():
        if not (torch.isfinite(y).all() and (y == y.round()).all()):
            raise InputError(f"the labels for {src} are fractional or NaN; they must be class indices.")
    y = y.long()
    if n and (int(y.min()) < 0 or int(y.max()) >= spec.num_classes):
        raise InputError(f"the labels for {src} span {int(y.min())}..{int(y.max())}, outside {spec.name}'s classes "
                         f"0..{spec.num_classes - 1}.")
    return y, soft


def in_space(x: torch.Tensor, files: Files, params: ImportParams, dataset: Dataset) -> torch.Tensor:
    """`x` in the values the evaluation trains on: normalised pixels (from [0,1] or [0,255] with `space:
    pixels`), or ZCA values as they are; values far from the declared space are refused with a guess."""
    spec, src = dataset.spec, files.source
    low, high = float(x.min()), float(x.max())
    space = params.space or ("pixels" if files.pixels else "normalized")
    looks_255 = low >= 0 and 1.5 < high <= 255
    if space == "pixels":
        if low < -1e-3 or high > 255 + 1e-3:
            guess = " These look like normalised values; set `space: normalized`." if low < 0 else ""
            raise InputError(f"the images in {src} span {low:.3g}..{high:.3g}, outside [0, 1] and [0, 255] pixels "
                             f"(`space: pixels`).{guess}")
        x = x / 255 if high > 1 + 1e-3 else x
        mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
        std = torch.tensor(spec.std).view(1, -1, 1, 1)
        return (x - mean) / std
    real_low, real_high = float(dataset.x_train.min()), float(dataset.x_train.max())
    reach = FAR * max(abs(real_low), abs(real_high))
    what = "normalised values" if space == "normalized" else "MTT's ZCA space"
    if looks_255 and high > reach:
        raise InputError(f"the images in {src} span {low:.3g}..{high:.3g}, far outside {spec.name}'s {what} "
                         f"({real_low:.3g}..{real_high:.3g} for the real images): these look like [0,255] pixels; "
                         f"set `space: pixels`.")
    if space == "normalized" and low >= 0 and high <= 1 and real_low < -0.3:
        raise InputError(f"the images in {src} all lie in [0, 1], where {spec.name}'s normalised real images span "
                         f"{real_low:.3g}..{real_high:.3g}: these look like [0,1] pixels; set `space: pixels`.")
    if max(abs(low), abs(high)) > reach:
        raise InputError(f"the images in {src} span {low:.3g}..{high:.3g}, over {FAR:g} times the range of "
                         f"{spec.name}'s real images in {what} ({real_low:.3g}..{real_high:.3g}). Check `space:` "
                         f"(normalized, pixels or zca).")
    return x


def learned_lr(value: Any, src: str) -> float | None:
    if value is None:
        return None
    lr = as_tensor(value, "lr", src) if not isinstance(value, (int, float)) else torch.tensor(float(value))
    if lr.numel() != 1 or not (torch.isfinite(lr).all() and float(lr) > 0):
        raise InputError(f"the lr for {src} must be one positive finite number, got {lr.flatten()[:4].tolist()}.")
    return float(lr)


def make_set(x: torch.Tensor, y: torch.Tensor, soft: torch.Tensor | None, lr: float | None) -> SyntheticSet:
    return SyntheticSet(x.contiguous(), y, lr=None if lr is None else torch.tensor(lr), soft_labels=soft)


def count_images(params: ImportParams, spec: DatasetSpec, seed: int) -> int:
    """How many images the files hold (`bench eval` infers the IPC from it); ipc in templates reads as 0."""
    found = paths(params, spec.name, 0, seed)
    path = found["path"]
    fmt = detect_format(params, path)
    if fmt == "folder":
        return sum(1 for f in folder_files(path) if f.suffix.lower() in IMAGE_SUFFIXES)
    if fmt == "dc-res":
        images = dc_experiment(torch_file(path), path, seed)[0]
    elif fmt == "npz":
        images = read_files(params, spec, seed, None, 0).images
    else:
        images = numpy_file(path) if fmt == "npy" else torch_file(path)
    return len(as_tensor(images, "images", str(path)))
