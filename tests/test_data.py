"""bench.data: the built-in digits, and each reader fed a tiny fake in the exact real on-disk format.

Every fake puts one known pixel value at an asymmetric (c, h, w) position on a zero background,
so a channel/row/column mix-up reads back the background instead of the expected value.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.data import DATASETS, DatasetNotFound, UnknownDataset, load_dataset
from bench.data.readers import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, DataFileError


def normalised(name: str, value: int, channel: int) -> float:
    """What a uint8 pixel must become: ToTensor's /255, then the spec's (x - mean) / std."""
    spec = DATASETS[name]
    return (value / 255 - spec.mean[channel]) / spec.std[channel]


def background(name: str, channel: int = 0) -> float:
    return normalised(name, 0, channel)


# --- digits ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "/no/such/folder")  # digits ignores data_root


def test_digits_shapes_and_split_sizes(digits):
    assert digits.x_train.shape == (1257, 1, 8, 8)
    assert digits.x_test.shape == (540, 1, 8, 8)
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    assert digits.class_names == [str(d) for d in range(10)]
    assert set(digits.y_train.tolist()) == set(range(10))


def test_digits_split_is_stratified(digits):
    train = torch.bincount(digits.y_train, minlength=10)
    test = torch.bincount(digits.y_test, minlength=10)
    assert train.tolist() == [124, 127, 124, 128, 127, 127, 127, 125, 122, 126]
    assert torch.all(((train / (train + test)) - 0.7).abs() < 0.01)
    assert [len(i) for i in digits.class_indices()] == train.tolist()
    assert all(torch.all(digits.y_train[i] == c) for c, i in enumerate(digits.class_indices()))


def test_digits_train_is_normalised(digits):
    assert digits.x_train.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert digits.x_train.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-3)


def test_digits_load_is_deterministic(digits):
    again = load_dataset("DIGITS", "/elsewhere")
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(digits, field), getattr(again, field))


def test_digits_constants_match_the_documented_split(digits):
    """Recompute the split from scikit-learn and check the hard-coded spec constants against it."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    x_train, _, y_train, _ = train_test_split(
        raw.images / 16.0, raw.target, test_size=0.3, stratify=raw.target, random_state=0
    )
    spec = DATASETS["digits"]
    assert spec.mean == (round(float(x_train.mean()), 4),) == (0.3056,)
    assert spec.std == (round(float(x_train.std()), 4),) == (0.3761,)
    assert spec.min_class_train == int(np.bincount(y_train).min()) == digits.smallest_class() == 122
    assert digits.y_train.tolist() == y_train.tolist()
    unscaled = digits.x_train * spec.std[0] + spec.mean[0]
    assert np.allclose(unscaled.squeeze(1).numpy(), x_train, atol=1e-6)


def test_registry_facts():
    assert set(DATASETS) == {"digits", "mnist", "fashionmnist", "svhn", "cifar10", "cifar100", "tinyimagenet",
                             "imagenette", "imagewoof", "imagefruit", "imagemeow", "imagesquawk", "imageyellow",
                             "imagenet10"}  # the ImageNet subsets: tests/test_imagenet.py
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert len(spec.mean) == len(spec.std) == spec.channels
    no_flip = {n for n, s in DATASETS.items() if "flip" not in s.dsa_strategy}
    assert no_flip == {"digits", "mnist", "svhn"}
    assert DATASETS["cifar100"].num_classes == 100 and DATASETS["tinyimagenet"].image_size == 64


# --- MNIST / FashionMNIST --------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    payload = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload)
    path.write_bytes(payload)


def write_mnist(raw: Path, gz: bool, images_magic: int = IDX_IMAGES_MAGIC) -> None:
    """3 classes x 4 train images, 3 x 2 test images; train image 5 has 200 at (h=3, w=20)."""
    raw.mkdir(parents=True)
    suffix = ".gz" if gz else ""
    for prefix, per_class in (("train", 4), ("t10k", 2)):
        labels = np.repeat(np.arange(3), per_class)
        images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
        if prefix == "train":
            images[5, 3, 20] = 200
        write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", images, images_magic)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", labels, IDX_LABELS_MAGIC)


@pytest.mark.parametrize(
    ("name", "folder", "gz"),
    [("mnist", "MNIST", False), ("mnist", "MNIST", True), ("fashionmnist", "FashionMNIST", True)],
)
def test_mnist_family(tmp_path, name, folder, gz):
    write_mnist(tmp_path / folder / "raw", gz)
    ds = load_dataset(name, tmp_path)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (6, 1, 28, 28)
    assert ds.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ds.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.x_train[5, 0, 3, 20].item() == pytest.approx(normalised(name, 200, 0), rel=1e-5)
    assert ds.x_train[5, 0, 20, 3].item() == pytest.approx(background(name), rel=1e-5)
    assert len(ds.class_names) == 10
    assert ds.class_names[9] == ("9 - nine" if name == "mnist" else "Ankle boot")
    assert [len(i) for i in ds.class_indices()][:4] == [4, 4, 4, 0] and ds.smallest_class() == 0


def test_mnist_bad_magic_is_a_clear_error(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", gz=False, images_magic=IDX_LABELS_MAGIC)
    with pytest.raises(DataFileError, match=r"magic number is 0x00000801, expected 0x00000803") as err:
        load_dataset("mnist", tmp_path)
    assert "train-images-idx3-ubyte" in str(err.value)
    assert isinstance(err.value, ValueError)


# --- CIFAR-10 / CIFAR-100 --------------------------------------------------------------------


def cifar_images(n: int) -> np.ndarray:
    """(n, 3, 32, 32) zeros; image 5 has 123 at (c=2, h=1, w=7)."""
    images = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    images[5, 2, 1, 7] = 123
    return images


def dump(path: Path, obj: dict) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def check_cifar_pixel(ds, name: str) -> None:
    assert ds.x_train[5, 2, 1, 7].item() == pytest.approx(normalised(name, 123, 2), rel=1e-5)
    assert ds.x_train[5, 0, 1, 7].item() == pytest.approx(background(name, 0), rel=1e-5)
    assert ds.x_train[5, 2, 7, 1].item() == pytest.approx(background(name, 2), rel=1e-5)


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PY2_FIXTURES = Path(__file__).parent / "fixtures" / "cifar10_py2"


def write_cifar10(root: Path) -> Path:
    """15 train images in 5 batches of 3, 6 test images, and the meta file; the folder."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    images = cifar_images(15)
    for b in range(5):
        rows = slice(3 * b, 3 * b + 3)
        batch = {"data": images[rows].reshape(3, 3072), "labels": [0, 1, 2]}
        dump(folder / f"data_batch_{b + 1}", batch)
    dump(folder / "test_batch", {"data": cifar_images(6).reshape(6, 3072), "labels": [2, 1, 0, 0, 1, 2]})
    dump(folder / "batches.meta", {"label_names": CIFAR10_NAMES, "num_vis": 3072})
    return folder


def test_cifar10(tmp_path):
    write_cifar10(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (6, 3, 32, 32)
    assert ds.y_train.tolist() == [0, 1, 2] * 5 and ds.y_test.tolist() == [2, 1, 0, 0, 1, 2]
    assert ds.class_names == CIFAR10_NAMES
    check_cifar_pixel(ds, "cifar10")


def write_py2_cifar10(root: Path) -> Path:
    """CIFAR-10 from files Python 2.7 wrote with cPickle protocol 2 and numpy 1.16, as the real ones were:
    str keys and strings as SHORT_BINSTRING, arrays through numpy.core.multiarray._reconstruct. Each batch
    holds 3 images (labels 0, 1, 9); its image 1 (so train image 4) has 123 at (c=2, h=1, w=7)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    batch = (PY2_FIXTURES / "data_batch").read_bytes()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(batch)
    (folder / "batches.meta").write_bytes((PY2_FIXTURES / "batches.meta").read_bytes())
    return folder


def test_cifar10_python2_originals(tmp_path):
    write_py2_cifar10(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.x_train.shape == (15, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.y_train.tolist() == [0, 1, 9] * 5 and ds.y_test.tolist() == [0, 1, 9]
    assert ds.class_names == CIFAR10_NAMES
    assert ds.x_train[4, 2, 1, 7].item() == pytest.approx(normalised("cifar10", 123, 2), rel=1e-5)
    assert ds.x_train[4, 2, 7, 1].item() == pytest.approx(background("cifar10", 2), rel=1e-5)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_bytes_keyed_files_load_the_same_arrays(tmp_path, protocol):
    """Files re-saved after `pickle.load(f, encoding="bytes")` have b"data", b"labels", b"label_names"."""
    folder = write_py2_cifar10(tmp_path)
    expected = load_dataset("cifar10", tmp_path)
    for path in folder.iterdir():
        table = pickle.loads(path.read_bytes(), encoding="bytes")  # the trusted fixture
        assert b"data" in table or b"label_names" in table
        path.write_bytes(pickle.dumps(table, protocol=protocol))

    ds = load_dataset("cifar10", tmp_path)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(ds, field), getattr(expected, field))
    assert ds.class_names == CIFAR10_NAMES


@pytest.mark.parametrize("key", [str, str.encode], ids=["str-keys", "bytes-keys"])
def test_cifar100_uses_fine_labels(tmp_path, key):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine = [0, 50, 99, 0, 50, 99, 1, 2]
    train = {"data": cifar_images(8).reshape(8, 3072), "fine_labels": fine, "coarse_labels": [19] * 8}
    test = {"data": cifar_images(6).reshape(6, 3072), "fine_labels": [3] * 6, "coarse_labels": [0] * 6}
    dump(folder / "train", {key(k): v for k, v in train.items()})
    dump(folder / "test", {key(k): v for k, v in test.items()})
    names = [key(f"class{i}") for i in range(100)]
    dump(folder / "meta", {key("fine_label_names"): names, key("coarse_label_names"): [key("sc")] * 20})

    ds = load_dataset("cifar100", tmp_path)
    assert ds.x_train.shape == (8, 3, 32, 32) and ds.x_test.shape == (6, 3, 32, 32)
    assert ds.y_train.tolist() == fine and ds.y_test.tolist() == [3] * 6
    assert ds.class_names[99] == "class99"
    check_cifar_pixel(ds, "cifar100")


# --- SVHN ------------------------------------------------------------------------------------


@pytest.mark.parametrize("sub", ["", "svhn"])
def test_svhn_maps_label_10_to_0(tmp_path, sub):
    from scipy.io import savemat

    folder = tmp_path / sub
    folder.mkdir(exist_ok=True)
    x = np.zeros((32, 32, 3, 6), dtype=np.uint8)  # (H, W, C, N) as in the real files
    x[4, 9, 1, 2] = 77
    y = np.array([[10], [1], [2], [10], [9], [5]], dtype=np.uint8)  # (N, 1), 10 means digit 0
    savemat(folder / "train_32x32.mat", {"X": x, "y": y})
    savemat(folder / "test_32x32.mat", {"X": x[..., :3], "y": np.array([[3], [10], [4]], dtype=np.uint8)})

    ds = load_dataset("svhn", tmp_path)
    assert ds.x_train.shape == (6, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.y_train.tolist() == [0, 1, 2, 0, 9, 5] and ds.y_test.tolist() == [3, 0, 4]
    assert ds.x_train[2, 1, 4, 9].item() == pytest.approx(normalised("svhn", 77, 1), rel=1e-5)
    assert ds.x_train[2, 1, 9, 4].item() == pytest.approx(background("svhn", 1), rel=1e-5)
    assert ds.x_train[2, 2, 4, 9].item() == pytest.approx(background("svhn", 2), rel=1e-5)


# --- TinyImageNet ----------------------------------------------------------------------------

WNIDS = [f"n{9000000 - 37 * i:08d}" for i in range(200)]  # not in sorted order on purpose


def write_tinyimagenet_folder(tmp_path: Path) -> Path:
    """One PNG per class in train (the reader takes .JPEG/.jpg/.png), a greyscale JPEG in val."""
    image_module = pytest.importorskip("PIL.Image")
    root = tmp_path / "tiny-imagenet-200"
    root.mkdir()
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    sorted_wnids = sorted(WNIDS)
    for i, wnid in enumerate(sorted_wnids):
        images = root / "train" / wnid / "images"
        images.mkdir(parents=True)
        pixels = np.zeros((64, 64, 3), dtype=np.uint8)
        if i == 5:
            pixels[1, 7, 2] = 123  # (h=1, w=7, c=2) in the file's HWC order
        image_module.fromarray(pixels).save(images / f"{wnid}_0.png")
    val = root / "val" / "images"
    val.mkdir(parents=True)
    grey = np.full((64, 64), 90, dtype=np.uint8)  # a 2-D array makes a greyscale ("L") image
    image_module.fromarray(grey).save(val / "val_0.JPEG", quality=95)
    image_module.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(val / "val_1.png")
    (root / "val" / "val_annotations.txt").write_text(
        f"val_0.JPEG\t{sorted_wnids[3]}\t0\t0\t63\t63\nval_1.png\t{sorted_wnids[199]}\t5\t6\t40\t41\n"
    )
    return root


def test_tinyimagenet_folder_layout(tmp_path):
    write_tinyimagenet_folder(tmp_path)
    sorted_wnids = sorted(WNIDS)
    ds = load_dataset("tinyimagenet", tmp_path)
    assert ds.x_train.shape == (200, 3, 64, 64) and ds.x_test.shape == (2, 3, 64, 64)
    assert ds.x_train.is_contiguous() and ds.x_train.dtype == torch.float32
    assert ds.class_names == sorted_wnids
    assert ds.y_train.tolist() == list(range(200)) and ds.y_test.tolist() == [3, 199]
    assert ds.x_train[5, 2, 1, 7].item() == pytest.approx(normalised("tinyimagenet", 123, 2), rel=1e-5)
    assert ds.x_train[5, 2, 7, 1].item() == pytest.approx(background("tinyimagenet", 2), rel=1e-5)
    for c in range(3):  # greyscale JPEG -> the same grey in all three channels (JPEG is lossy)
        expected = normalised("tinyimagenet", 90, c)
        assert ds.x_test[0, c, 30, 30].item() == pytest.approx(expected, abs=2 / 255 / 0.22)


@pytest.mark.parametrize("layout", ["uint8_nhwc", "float_nchw"])
def test_tinyimagenet_reference_tensor_file(tmp_path, layout):
    train = np.zeros((4, 64, 64, 3), dtype=np.uint8)  # NHWC
    train[2, 1, 7, 2] = 123  # (h=1, w=7, c=2)
    val = np.zeros((2, 64, 64, 3), dtype=np.uint8)
    images_train, images_val = torch.from_numpy(train), torch.from_numpy(val)
    if layout == "float_nchw":
        images_train = images_train.permute(0, 3, 1, 2).float() / 255
        images_val = images_val.permute(0, 3, 1, 2).float() / 255
    torch.save(
        {
            "images_train": images_train,
            "labels_train": torch.tensor([0, 1, 199, 5]),
            "images_val": images_val,
            "labels_val": torch.tensor([7, 8]),
            "classes": [f"wnid{i}" for i in range(200)],
        },
        tmp_path / "tinyimagenet.pt",
    )

    ds = load_dataset("tinyimagenet", tmp_path)
    assert ds.x_train.shape == (4, 3, 64, 64) and ds.x_test.shape == (2, 3, 64, 64)
    assert ds.y_train.tolist() == [0, 1, 199, 5] and ds.y_test.tolist() == [7, 8]
    assert ds.class_names[199] == "wnid199"
    assert ds.x_train[2, 2, 1, 7].item() == pytest.approx(normalised("tinyimagenet", 123, 2), rel=1e-5)
    assert ds.x_train[2, 2, 7, 1].item() == pytest.approx(background("tinyimagenet", 2), rel=1e-5)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "looked_for"),
    [
        ("mnist", ["MNIST/raw"]),
        ("fashionmnist", ["FashionMNIST/raw"]),
        ("cifar10", ["cifar-10-batches-py"]),
        ("cifar100", ["cifar-100-python"]),
        ("svhn", ["svhn", "train_32x32.mat"]),
        ("tinyimagenet", ["tinyimagenet.pt", "tiny-imagenet-200"]),
    ],
)
def test_missing_files_name_the_paths_and_the_fix(tmp_path, name, looked_for):
    with pytest.raises(DatasetNotFound) as err:
        load_dataset(name, tmp_path)
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert repr(name) in message and "bench.yaml" in message
    for part in looked_for:
        assert str(tmp_path / part) in message


def test_partial_download_lists_what_is_missing(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"")
    with pytest.raises(DatasetNotFound, match=r"missing: data_batch_2, .*batches\.meta"):
        load_dataset("cifar10", tmp_path)


def test_unknown_dataset_lists_known_names():
    with pytest.raises(UnknownDataset) as err:
        load_dataset("imagenet", ".")
    assert isinstance(err.value, KeyError)
    assert "'imagenet'" in str(err.value) and "cifar10, cifar100" in str(err.value)


# --- damaged and hostile data files ----------------------------------------------------------


def data_file_error(name: str, root: Path, path: Path) -> str:
    """The error load_dataset raises: a DataFileError (a ValueError) whose one-paragraph message names
    `path` and ends with how to get the data set again."""
    with pytest.raises(DataFileError) as err:
        load_dataset(name, root)
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert message.startswith(str(path)) and "\n" not in message
    assert f"To fix, download {name!r} again: " in message and message.endswith("folder that already holds it.")
    return message


class RunsCode:
    """Unpickling this calls `function(argument)`: what a crafted data file can do to plain pickle.load."""

    def __init__(self, function, argument: str):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


@pytest.mark.parametrize("file", ["batches.meta", "data_batch_2"])
@pytest.mark.parametrize("how", ["os.system", "builtins.eval"])
def test_crafted_cifar_pickle_cannot_run_code(tmp_path, how, file):
    import os

    marker = tmp_path / "pwned"
    payload = RunsCode(os.system, f"touch '{marker}'") if how == "os.system" else \
        RunsCode(eval, f"open({str(marker)!r}, 'w').close()")
    crafted = pickle.dumps({"label_names": payload, "data": payload, "labels": payload}, protocol=2)
    pickle.loads(crafted)  # the payload is live: plain pickle runs it
    assert marker.exists()
    marker.unlink()

    folder = write_cifar10(tmp_path)
    (folder / file).write_bytes(crafted)
    message = data_file_error("cifar10", tmp_path, folder / file)
    assert not marker.exists()
    assert f".{payload.function.__name__}, which no data file holds" in message
    assert "nothing in the file ran" in message


@pytest.mark.parametrize("cut", [0, 100, 3000])
def test_truncated_cifar_pickle(tmp_path, cut):
    folder = write_cifar10(tmp_path)
    path = folder / "data_batch_3"
    path.write_bytes(path.read_bytes()[:cut])
    message = data_file_error("cifar10", tmp_path, path)
    assert "cannot be read as a Python pickle" in message and "cut short" in message


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ([1, 2, 3], "holds a list, expected a dict with keys data, labels"),
        ({"labels": [0, 1, 2]}, "the dict has no data (its keys: labels)"),
        ({"data": np.zeros((3, 1024), np.uint8), "labels": [0, 1, 2]},
         "'data' is an array of uint8 with shape (3, 1024), expected a uint8 array of shape (N, 3072)"),
        ({"data": np.zeros((3, 3072), np.int64), "labels": [0, 1, 2]}, "'data' is an array of int64"),
        ({"data": [[0] * 3072] * 3, "labels": [0, 1, 2]}, "'data' is a list"),
        ({"data": np.zeros((3, 3072), np.uint8), "labels": [0, 1]}, "holds 2 labels for the 3 images;"),
        ({"data": np.zeros((3, 3072), np.uint8), "labels": ["cat", "dog", "cat"]}, "expected 3 integer class"),
        ({"data": np.zeros((3, 3072), np.uint8), "labels": [0, [1], 2]}, "the labels are an array of object"),
    ],
)
def test_wrong_cifar_pickle_contents(tmp_path, content, complaint):
    folder = write_cifar10(tmp_path)
    dump(folder / "data_batch_4", content)
    assert complaint in data_file_error("cifar10", tmp_path, folder / "data_batch_4")


def test_wrong_cifar_meta(tmp_path):
    folder = write_cifar10(tmp_path)
    dump(folder / "batches.meta", {"label_names": CIFAR10_NAMES[:9]})
    assert "'label_names' is not a list of 10 class names" in data_file_error("cifar10", tmp_path,
                                                                             folder / "batches.meta")


@pytest.mark.parametrize(
    ("name", "label", "complaint"),
    [
        ("cifar10", -1, "labels span -1..1, expected class indices 0..9"),
        ("cifar10", 10, "labels span 0..10, expected class indices 0..9"),
        ("cifar100", 100, "labels span 0..100, expected class indices 0..99"),
    ],
)
def test_cifar_label_out_of_range(tmp_path, name, label, complaint):
    folder = tmp_path / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    if name == "cifar10":
        write_cifar10(tmp_path)
        path = folder / "test_batch"
        dump(path, {"data": cifar_images(6).reshape(6, 3072), "labels": [0, 1, label, 0, 1, 0]})
    else:
        folder.mkdir()
        for split in ("train", "test"):
            dump(folder / split, {"data": cifar_images(6).reshape(6, 3072), "fine_labels": [0, 1, label, 0, 1, 0]})
        dump(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
        path = folder / "train"
    assert complaint in data_file_error(name, tmp_path, path)


@pytest.mark.parametrize(
    ("damage", "complaint"),
    [
        (lambda gz: b"this is not gzip" * 4, "cannot be read as a gzip file (BadGzipFile: Not a gzipped file"),
        (lambda gz: gz[: len(gz) // 2], "cannot be read as a gzip file (EOFError: Compressed file ended"),
        (lambda gz: gz[:12] + bytes(len(gz) - 12), "cannot be read as a gzip file"),
    ],
)
def test_bad_gz(tmp_path, damage, complaint):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=True)
    path = raw / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    assert complaint in data_file_error("mnist", tmp_path, path)


def test_mnist_label_count_mismatch(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=False)
    write_idx(raw / "train-labels-idx1-ubyte", np.zeros(11, np.uint8), IDX_LABELS_MAGIC)
    message = data_file_error("mnist", tmp_path, raw / "train-labels-idx1-ubyte")
    assert f"holds 11 labels for the 12 images of {raw / 'train-images-idx3-ubyte'};" in message


def test_mnist_label_out_of_range(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    write_mnist(raw, gz=True)
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 10, 0, 1]), IDX_LABELS_MAGIC)
    message = data_file_error("fashionmnist", tmp_path, raw / "t10k-labels-idx1-ubyte.gz")
    assert "labels span 0..10, expected class indices 0..9" in message


def test_mnist_idx_header_cut_short(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_mnist(raw, gz=False)
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:10])
    assert "ends inside its 16-byte idx header" in data_file_error("mnist", tmp_path, path)


def test_damaged_svhn_mat(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [10]])})
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1]])})
    message = data_file_error("svhn", tmp_path, tmp_path / "test_32x32.mat")
    assert "holds 1 labels for the 2 images" in message
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1.5], [2]])})
    assert "the labels are an array of float64" in data_file_error("svhn", tmp_path, tmp_path / "test_32x32.mat")
    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1.0], [11]])})
    assert "labels span 1..11" in data_file_error("svhn", tmp_path, tmp_path / "test_32x32.mat")
    path = tmp_path / "train_32x32.mat"
    path.write_bytes(path.read_bytes()[:300])
    assert "cannot be read as a MATLAB .mat file" in data_file_error("svhn", tmp_path, path)


def test_unreadable_tinyimagenet_file(tmp_path):
    path = tmp_path / "tinyimagenet.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    assert "cannot be read as DatasetCondensation's tinyimagenet.pt" in data_file_error("tinyimagenet", tmp_path, path)


def test_unreadable_tinyimagenet_image(tmp_path):
    root = write_tinyimagenet_folder(tmp_path)
    path = root / "val" / "images" / "val_1.png"
    path.write_bytes(path.read_bytes()[:40])
    assert "cannot be read as an image" in data_file_error("tinyimagenet", tmp_path, path)
    path.write_bytes(b"")
    (root / "val" / "val_annotations.txt").write_text("val_1.png n0000\n")
    message = data_file_error("tinyimagenet", tmp_path, root / "val" / "val_annotations.txt")
    assert "line 1: expected an image name, a tab and a class of wnids.txt, found 'val_1.png n0000'" in message


def test_bench_run_on_a_crafted_data_file_is_one_paragraph_and_runs_nothing(tmp_path):
    """Through the CLI, as a user meets it: exit 2, the file named, no traceback, no code run, nothing stored."""
    import subprocess
    import sys

    from conftest import SAFETY_TIMEOUT_S, cli_env
    (tmp_path / "data").mkdir()
    folder = write_cifar10(tmp_path / "data")
    marker = tmp_path / "pwned"
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": RunsCode(eval, f"open({str(marker)!r}, 'w')")},
                                                       protocol=2))
    (tmp_path / "bench.yaml").write_text(f"data_root: {tmp_path / 'data'}\n")
    (tmp_path / "s.yaml").write_text("datasets: [cifar10]\nipc: [1]\neval_archs: [MLP]\nmethods: [{name: random}]\n"
                                     "seeds: [0]\neval: {epochs: 1}\n")
    done = subprocess.run([sys.executable, "-m", "bench.cli", "run", "s.yaml"], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: {folder / 'batches.meta'}") and done.stderr.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "results" / "records").exists()
