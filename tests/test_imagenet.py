"""ImageNet subsets: the registry, the reader fed a tiny fabricated ILSVRC2012 layout (a few JPEGs of assorted
sizes per class), its decode-once cache, ConvNetD5 at 128 px, the presets, and the suites and reference tables
that use them.

Each fabricated image is one flat colour that encodes its class, so a label/folder mix-up or a wrong
normalisation reads back the wrong colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench import nets
from bench.config import load_suite
from bench.data import DATASETS, DatasetNotFound, load_dataset
from bench.data.imagenet import SUBSETS
from bench.data.readers import DataFileError
from bench.methods.presets import preset_params
from bench.plan import expected_cells, make_plan, report_options
from bench.reference import PAPERS
from bench.report.aggregate import aggregate
from bench.report.views import reported_table
from conftest import REPO

MTT_SUBSETS = ("imagenette", "imagewoof", "imagefruit", "imagemeow", "imagesquawk", "imageyellow")
SIZES = ((40, 30), (24, 50), (33, 33))  # (width, height): wide, tall and square, none of them the target size


def colour(label: int) -> tuple[int, int, int]:
    return 20 + 20 * label, 128, 230 - 20 * label


def write_imagenet(root: Path, name: str, folder: str = "imagenet", train: int = 2) -> Path:
    """`folder`/{train,val}/<wnid>/*.JPEG for the subset's classes: `train` images per class, one in val."""
    base = root / folder
    for label, wnid in enumerate(SUBSETS[name].wnids):
        for split, count in (("train", train), ("val", 1)):
            (base / split / wnid).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                size = SIZES[(i + (split == "val")) % len(SIZES)]
                Image.new("RGB", size, colour(label)).save(base / split / wnid / f"{wnid}_{i}.JPEG", quality=95)
    return base


def pixels(ds, x: torch.Tensor) -> torch.Tensor:
    """Normalised images back in 0..255 (x * std + mean, times 255)."""
    mean = torch.tensor(ds.spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.spec.std).view(1, -1, 1, 1)
    return (x * std + mean) * 255


def test_registry_facts() -> None:
    for name in (*MTT_SUBSETS, "imagenet10"):
        spec = DATASETS[name]
        assert (spec.channels, spec.num_classes, spec.min_class_train) == (3, 10, 732)
        assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
        assert spec.dsa_strategy == "color_crop_cutout_flip_scale_rotate"
        wnids = SUBSETS[name].wnids
        assert len(set(wnids)) == 10 and all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in wnids)
    assert {DATASETS[n].image_size for n in MTT_SUBSETS} == {128} and DATASETS["imagenet10"].image_size == 224
    assert all("ConvNetD5" in DATASETS[n].description for n in MTT_SUBSETS)
    # MTT's index 0 is ImageNet's first class in sorted-wnid order; the sets agree with fast.ai's definitions.
    assert SUBSETS["imagenette"].wnids[0] == "n01440764"
    assert set(SUBSETS["imagenette"].wnids) == {"n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                                                "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"}
    assert set(SUBSETS["imagewoof"].wnids) == {"n02086240", "n02087394", "n02088364", "n02089973", "n02093754",
                                               "n02096294", "n02099601", "n02105641", "n02111889", "n02115641"}


@pytest.mark.parametrize("folder", ["imagenet", "ILSVRC2012", "ILSVRC/Data/CLS-LOC"])
def test_subset_loads_in_class_order_normalised(tmp_path: Path, folder: str) -> None:
    write_imagenet(tmp_path, "imagewoof", folder)
    ds = load_dataset("imagewoof", tmp_path)
    assert ds.x_train.shape == (20, 3, 128, 128) and ds.x_test.shape == (10, 3, 128, 128)
    assert ds.x_train.dtype == torch.float32 and ds.x_train.is_contiguous()
    assert ds.class_names == list(SUBSETS["imagewoof"].wnids)
    assert ds.y_train.tolist() == [c for c in range(10) for _ in range(2)] and ds.y_test.tolist() == list(range(10))
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        expected = torch.tensor([colour(int(c)) for c in y], dtype=torch.float32).view(-1, 3, 1, 1)
        normalised = (expected / 255 - torch.tensor(ds.spec.mean).view(1, 3, 1, 1)) / torch.tensor(
            ds.spec.std).view(1, 3, 1, 1)
        assert torch.allclose(x, normalised.expand_as(x), atol=3 / 255 / 0.224)  # JPEG: within 3 levels


def test_mtt_subsets_stretch_the_whole_image(tmp_path: Path) -> None:
    """MTT resizes to (128, 128), so a wide image keeps its left quarter (a centre crop would cut it off)."""
    base = write_imagenet(tmp_path, "imagenette")
    wide = np.zeros((64, 256, 3), dtype=np.uint8)
    wide[:, :64] = 255
    wnid = SUBSETS["imagenette"].wnids[0]
    Image.fromarray(wide).save(base / "train" / wnid / f"{wnid}_0.JPEG", quality=95)
    ds = load_dataset("imagenette", tmp_path)
    image = pixels(ds, ds.x_train[:1])[0]
    assert (image[:, :, 8:24] > 230).all() and (image[:, :, 40:] < 25).all()


def test_imagenet10_resizes_the_shorter_side_to_224_then_crops_224(tmp_path: Path) -> None:
    base = write_imagenet(tmp_path, "imagenet10")
    wnid = SUBSETS["imagenet10"].wnids[0]
    path = base / "train" / wnid / f"{wnid}_0.JPEG"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (600, 300, 3), dtype=np.uint8)).save(path, quality=95)
    ds = load_dataset("imagenet10", tmp_path)
    assert ds.x_train.shape == (20, 3, 224, 224)
    # IDC (condense.py, data.transform_imagenet(size=224)): Resize(224) makes 300x600 into 224x448;
    # CenterCrop(224) starts at row (448 - 224) / 2 = 112, column 0.
    with Image.open(path) as image:
        resized = image.convert("RGB").resize((224, 448), Image.Resampling.BILINEAR)
    expected = np.asarray(resized.crop((0, 112, 224, 336)))
    got = pixels(ds, ds.x_train[:1])[0].permute(1, 2, 0).numpy()
    assert np.abs(got - expected).max() < 1e-3


def cache_files(base: Path) -> list[Path]:
    return sorted((base / ".bench-cache").glob("*.npz"))


def test_decoded_once_then_read_from_the_cache(tmp_path: Path) -> None:
    base = write_imagenet(tmp_path, "imagenette")
    first = load_dataset("imagenette", tmp_path)
    [cache] = cache_files(base)
    assert cache.name.startswith("imagenette-128px-")
    for jpeg in base.rglob("*.JPEG"):  # the second load must not look inside them
        jpeg.write_bytes(b"not an image")
    again = load_dataset("imagenette", tmp_path)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)
    assert cache_files(base) == [cache]


def test_new_images_make_a_new_cache(tmp_path: Path) -> None:
    base = write_imagenet(tmp_path, "imagenette")
    load_dataset("imagenette", tmp_path)
    wnid = SUBSETS["imagenette"].wnids[9]
    Image.new("RGB", (50, 20), colour(9)).save(base / "train" / wnid / "extra.JPEG")
    ds = load_dataset("imagenette", tmp_path)
    assert len(ds.y_train) == 21 and ds.y_train[-1] == 9 and len(cache_files(base)) == 2


def test_damaged_cache_is_decoded_again(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = write_imagenet(tmp_path, "imagenette")
    first = load_dataset("imagenette", tmp_path)
    [cache] = cache_files(base)
    cache.write_bytes(cache.read_bytes()[:1000])
    again = load_dataset("imagenette", tmp_path)
    assert torch.equal(first.x_train, again.x_train)
    assert f"warning: {cache} is damaged" in capsys.readouterr().err
    np.load(cache)["x_train"]  # rewritten whole


def test_read_only_imagenet_folder_still_loads(tmp_path: Path, capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.data import readers

    def read_only(path: Path, write) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    base = write_imagenet(tmp_path, "imagenette")
    monkeypatch.setattr(readers, "atomic_write", read_only)
    assert load_dataset("imagenette", tmp_path).x_train.shape == (20, 3, 128, 128)
    assert "warning: cannot write the decoded imagenette" in capsys.readouterr().err and not cache_files(base)


def data_file_error(name: str, root: Path, path: Path) -> str:
    """load_dataset's DataFileError: one paragraph that starts with `path` and ends with how to get the data."""
    with pytest.raises(DataFileError) as err:
        load_dataset(name, root)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert f"To fix, download {name!r} again: " in message and message.endswith("folder that already holds it.")
    return message


@pytest.mark.parametrize("split", ["train", "val"])
def test_missing_class_folder_names_it(tmp_path: Path, split: str) -> None:
    base = write_imagenet(tmp_path, "imagemeow")
    folder = base / split / SUBSETS["imagemeow"].wnids[3]
    for jpeg in folder.iterdir():
        jpeg.rename(base / split / jpeg.name)  # as the flat val/ of the ILSVRC2012 tarball
    folder.rmdir()
    message = data_file_error("imagemeow", tmp_path, folder)
    assert "no such folder" in message and "valprep.sh" in message


def test_empty_class_folder_names_it(tmp_path: Path) -> None:
    base = write_imagenet(tmp_path, "imagemeow")
    folder = base / "train" / SUBSETS["imagemeow"].wnids[0]
    for jpeg in folder.iterdir():
        jpeg.unlink()
    assert "holds no .JPEG images" in data_file_error("imagemeow", tmp_path, folder)


def test_unreadable_jpeg_names_the_file(tmp_path: Path) -> None:
    base = write_imagenet(tmp_path, "imagesquawk")
    wnid = SUBSETS["imagesquawk"].wnids[7]
    path = base / "val" / wnid / f"{wnid}_0.JPEG"
    path.write_bytes(path.read_bytes()[:200])
    assert "cannot be read as an image" in data_file_error("imagesquawk", tmp_path, path)
    assert not cache_files(base)


def test_missing_imagenet_lists_the_layouts(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound) as err:
        load_dataset("imagefruit", tmp_path)
    message = str(err.value)
    for folder in ("imagenet", "ILSVRC2012", "ILSVRC/Data/CLS-LOC"):
        assert str(tmp_path / folder / "train") in message
    assert "valprep.sh" in message and "bench.yaml" in message


def test_convnetd5_takes_128_px() -> None:
    net = nets.get_network("ConvNetD5", 3, 10, 128)
    assert net(torch.zeros(2, 3, 128, 128)).shape == (2, 10)
    assert net.embed(torch.zeros(1, 3, 128, 128)).shape == (1, 2048)  # 128 channels x 4 x 4
    assert sum(p.numel() for p in net.parameters()) == 615_690  # as MTT's ConvNetD5 for 10 classes


def test_published_settings_for_the_subsets() -> None:
    readme = {"syn_steps": 20, "expert_epochs": 2, "max_start_epoch": 10, "lr_lr": 1e-6, "lr_teacher": 0.01,
              "zca": False}
    for name in MTT_SUBSETS:
        assert preset_params("mtt", name, 1) == {"iterations": 5000, "init": "real", "lr_img": 1000, **readme}
        assert preset_params("nsd", name, 1) == {"iterations": 10000, "momentum": 0.9, "lr_tensor": 10000,
                                                 "lr_kernel": 3.0, **readme}


def test_suite_validates_and_plans(bench) -> None:
    path = str(REPO / "suites" / "nsd-table3-imagenet.yaml")
    code, out, _ = bench("validate", path)
    assert code == 0 and "ok (12 cells, 6 expert + 30 whole + 12 distill + 60 evaluate tasks)" in out
    code, out, _ = bench("run", path, "--dry-run")
    assert code == 0 and "12 cells -> 108 tasks" in out and "expert trajectories imagenette ConvNetD5" in out


def test_every_cell_of_the_suite_finds_table3() -> None:
    suite = load_suite(REPO / "suites" / "nsd-table3-imagenet.yaml")
    assert suite.datasets == MTT_SUBSETS and suite.distill_arch == "ConvNetD5" and suite.eval_archs == ("ConvNetD5",)
    table = reported_table(aggregate(expected_cells(make_plan(suite)), []), report_options(suite))
    found = {(row.labels[0], row.cells[0].text): (row.cells[4].text.replace(" ± ", "±"), row.cells[6].text)
             for row in table.groups[0].rows}
    published = {v for v in PAPERS["nsd2024"].tables["table3"].values if v.bench or v.group == "whole"}
    assert len(found) == len(published) == 18  # MTT, NSD and the Whole Dataset on six subsets
    for v in published:
        label = {"mtt": "mtt", "nsd": "nsd"}.get(v.bench, "Whole Dataset")
        [(text, source)] = [found[k] for k in found if k[0].startswith(label) and k[1] == v.dataset]
        assert text == v.text and source == "NSD (ECCV 2024), Table 3"


def test_udd_table8_is_idcs_imagenet10() -> None:
    values = PAPERS["udd2024"].tables["table8"].values
    assert {(v.dataset, v.arch) for v in values} == {("imagenet10", "ResNetAP-10")}
    assert {(v.method, v.ipc): v.text for v in values if v.method == "Ours"} == {("Ours", 10): "73.2",
                                                                                 ("Ours", 20): "77.1"}
