"""The built-in `import` method and `bench eval`: sets written the way other codebases write them (MTT/DATM
tensors, DatasetCondensation's res_*.pt, numpy files, image folders) are read, checked before any training,
hashed into their keys and records, and evaluated like any other set."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import DATASETS
from bench.methods.imported import Import
from bench.methods import specs
from bench.methods.specs import InputError
from conftest import write

SPEC = DATASETS["digits"]


def class_means(digits, ipc: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """`ipc` images per class (the class mean, then the first real images), normalised, in class order."""
    images = []
    for c in range(10):
        own = digits.x_train[digits.y_train == c]
        images += [own.mean(0)] + [own[i] for i in range(ipc - 1)]
    return torch.stack(images), torch.arange(10).repeat_interleave(ipc)


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    return (x * SPEC.std[0] + SPEC.mean[0]).clamp(0, 1)


def read(digits, params: dict, ipc: int = 1, seed: int = 0):
    return Import(Import.Params.model_validate(params)).read(digits, ipc, seed)


def suite(path: str, ipc: int = 1, extra: str = "", evaluation: str = "{epochs: 2}", seeds: str = "[0]",
          random: bool = True) -> str:
    """A suite importing `path` (beside `random`, whose set would be made first)."""
    beside = "          - name: random\n" if random else ""
    return f"""\
        name: imp
        datasets: [digits]
        ipc: [{ipc}]
        eval_archs: [ConvNet]
        methods:
{beside}          - name: import
            label: Outside
            params: {{path: "{path}"{extra}}}
        seeds: {seeds}
        eval: {evaluation}
        """


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def records(workdir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in (workdir / "results" / "records").rglob("*.json")]


# ------------------------------------------------------------------------------------------ formats


def test_mtt_tensor_files_with_labels_and_lr_beside(bench, workdir: Path, digits) -> None:
    x, y = class_means(digits)
    folder = workdir / "sets" / "digits" / "ipc1"
    folder.mkdir(parents=True)
    torch.save(x, folder / "images_best.pt")
    torch.save(y, folder / "labels_best.pt")
    torch.save(torch.tensor(0.02, requires_grad=True).detach(), folder / "lr_best.pt")
    write(workdir / "imp.yaml", suite("sets/{dataset}/ipc{ipc}/images_best.pt",
                                      extra=', lr: "sets/{dataset}/ipc{ipc}/lr_best.pt"',
                                      evaluation="{epochs: 2, lr: learned}", random=False))
    code, out, err = bench("run", "imp.yaml")
    assert code == 0, err
    [rec] = records(workdir)
    assert rec["method"] == "import" and rec["lr_used"] == pytest.approx(0.02)
    assert rec["artifact_bytes"] == 10 * 64 * 4 + 10 * 8 + 4  # images, labels and the lr, as stored
    files = {i["param"]: i for i in rec["imported"]}
    assert files["path"] == {"param": "path", "template": "sets/{dataset}/ipc{ipc}/images_best.pt",
                             "path": "sets/digits/ipc1/images_best.pt", "sha256": sha(folder / "images_best.pt")}
    assert files["labels"]["sha256"] == sha(folder / "labels_best.pt") and files["labels"]["template"] is None
    assert files["lr"]["sha256"] == sha(folder / "lr_best.pt")
    synset = read(digits, {"path": str(folder / "images_best.pt"), "lr": str(folder / "lr_best.pt")})
    assert torch.equal(synset.images, x) and torch.equal(synset.labels, y) and float(synset.lr) == pytest.approx(0.02)


def test_datm_soft_labels_give_classes_and_soft_labels(workdir: Path, digits) -> None:
    x, y = class_means(digits)
    logits = torch.nn.functional.one_hot(y, 10).float() * 5 + 0.1
    torch.save(x, workdir / "images_best.pt")
    torch.save(logits, workdir / "labels_best.pt")
    synset = read(digits, {"path": "images_best.pt"})
    assert torch.equal(synset.labels, y) and torch.equal(synset.soft_labels, logits)


def test_dc_res_file_picks_the_experiment_by_distill_seed(workdir: Path, digits) -> None:
    x, y = class_means(digits, ipc=2)
    experiments = [[x, y], [x.flip(0), y.flip(0)]]
    torch.save({"data": experiments, "accs_all_exps": {"ConvNet": [50.0, 51.0]}}, workdir / "res_DM_digits_ConvNet_2ipc.pt")
    params = {"path": "res_DM_{dataset}_ConvNet_{ipc}ipc.pt"}
    for seed in (0, 1):
        synset = read(digits, params, ipc=2, seed=seed)
        assert torch.equal(synset.images, experiments[seed][0]) and torch.equal(synset.labels, experiments[seed][1])
    with pytest.raises(InputError, match="holds 2 experiment"):
        read(digits, params, ipc=2, seed=2)


def test_npz_and_npy_files(workdir: Path, digits) -> None:
    x, y = class_means(digits)
    soft = torch.randn(10, 10)
    np.savez(workdir / "set.npz", images=x.numpy(), labels=y.numpy(), soft_labels=soft.numpy(), lr=np.float32(0.03))
    synset = read(digits, {"path": "set.npz"})
    assert torch.equal(synset.images, x) and torch.equal(synset.labels, y) and torch.equal(synset.soft_labels, soft)
    assert float(synset.lr) == pytest.approx(0.03)
    np.save(workdir / "images.npy", to_pixels(x).numpy() * 255)
    np.save(workdir / "labels.npy", y.numpy().astype(np.int32))
    synset = read(digits, {"path": "images.npy", "space": "pixels"})  # labels.npy found beside it
    assert torch.allclose(synset.images, (to_pixels(x) - SPEC.mean[0]) / SPEC.std[0], atol=1e-5)
    assert torch.equal(synset.labels, y)


def save_folder(root: Path, x: torch.Tensor, y: torch.Tensor, names: list[str], rgb: bool = False) -> None:
    for i, (image, label) in enumerate(zip(to_pixels(x), y.tolist())):
        (root / names[label]).mkdir(parents=True, exist_ok=True)
        pixels = (image[0] * 255).round().byte().numpy()
        Image.fromarray(np.stack([pixels] * 3, -1) if rgb else pixels).save(root / names[label] / f"{i:03d}.png")


def test_image_folder_in_the_data_sets_class_order(workdir: Path, digits) -> None:
    x, y = class_means(digits, ipc=2)
    save_folder(workdir / "by-name", x, y, digits.class_names)
    save_folder(workdir / "by-index", x, y, [f"{c:05d}" for c in range(10)], rgb=True)  # RDED-style names, RGB PNGs
    save_folder(workdir / "sre2l", x, y, [f"new{c:03d}" for c in range(10)])  # SRe2L's recover.py names
    for folder in ("by-name", "by-index", "sre2l"):
        synset = read(digits, {"path": folder}, ipc=2)
        assert torch.equal(synset.labels, y)
        assert torch.allclose(synset.images, (to_pixels(x) * 255).round() / 255 / SPEC.std[0] - SPEC.mean[0] / SPEC.std[0],
                              atol=1e-5)
    save_folder(workdir / "misnamed", x, y, list("abcdefghij"))
    with pytest.raises(InputError, match="Not classes here: \\['a', 'b'"):
        read(digits, {"path": "misnamed"}, ipc=2)


# ---------------------------------------------------------------------------------- mismatches


def bad_images(digits, case: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = class_means(digits)
    if case == "ipc":
        return class_means(digits, ipc=2)
    if case == "classes":
        return x, torch.where(y == 9, 8, y)
    if case == "channels":
        return x.repeat(1, 3, 1, 1), y
    if case == "size":
        return torch.nn.functional.interpolate(x, size=16), y
    if case == "range":
        return x, torch.where(y == 9, 10, y)
    if case == "nan":
        x = x.clone()
        x[3, 0, 2, 2] = float("nan")
        return x, y
    assert case == "pixels255"
    return to_pixels(x) * 255, y


@pytest.mark.parametrize("case, message", [
    ("ipc", "holds 2 image(s) per class (IPC 2), but this cell is IPC 1"),
    ("classes", "cover 9 of digits's 10 classes, per class [1, 1, 1, 1, 1, 1, 1, 1, 2, 0]"),
    ("channels", "They have 3 channel(s), digits has 1"),
    ("size", "They are 16x16, digits is 8x8"),
    ("range", "span 0..10, outside digits's classes 0..9"),
    ("nan", "hold 1 NaN or Inf value(s)"),
    ("pixels255", "these look like [0,255] pixels; set `space: pixels`"),
])
def test_each_mismatch_is_one_paragraph_before_any_training(bench, workdir: Path, digits, case: str,
                                                             message: str) -> None:
    x, y = bad_images(digits, case)
    torch.save(x, workdir / "images.pt")
    torch.save(y, workdir / "labels.pt")
    write(workdir / "imp.yaml", suite("images.pt"))
    code, out, err = bench("run", "imp.yaml")
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and err.startswith("error: imp.yaml, line ") and "Nothing has run." in err
    assert not (workdir / "results" / "records").exists() and not (workdir / "results" / "artifacts").exists()


def test_a_missing_file_names_the_template_and_the_path_at_validation(bench, workdir: Path) -> None:
    write(workdir / "imp.yaml", suite("sets/{dataset}/ipc{ipc}/images_best.pt", ipc=1))
    code, _, err = bench("validate", "imp.yaml")
    assert code == 2 and err.count("\n") == 1
    assert "'sets/{dataset}/ipc{ipc}/images_best.pt' is 'sets/digits/ipc1/images_best.pt'" in err
    assert "does not exist" in err


def test_a_learned_lr_needs_an_lr_param(bench, workdir: Path, digits) -> None:
    x, y = class_means(digits)
    torch.save(x, workdir / "images.pt")
    torch.save(y, workdir / "labels.pt")
    write(workdir / "imp.yaml", suite("images.pt", evaluation="{epochs: 2, lr: learned}", random=False))
    code, _, err = bench("validate", "imp.yaml")
    assert code == 2 and "has no `lr:` param" in err


# ---------------------------------------------------------------------------------- keys and reuse


def test_a_changed_file_makes_a_new_key_and_an_unchanged_one_is_reused(bench, workdir: Path, digits) -> None:
    x, y = class_means(digits)
    torch.save(x, workdir / "images.pt")
    torch.save(y, workdir / "labels.pt")
    write(workdir / "imp.yaml", suite("images.pt", random=False))
    assert bench("run", "imp.yaml")[0] == 0
    code, out, _ = bench("run", "imp.yaml")
    assert code == 0 and "0 to run" in out
    torch.save(x * 0.9, workdir / "images.pt")
    code, out, _ = bench("run", "imp.yaml")
    assert code == 0 and "2 to run" in out and "1 distill, 1 evaluate" in out
    recs = records(workdir)
    assert len(recs) == 2 and len({r["distill_key"] for r in recs}) == 2
    hashes = {r["imported"][0]["sha256"] for r in recs}
    assert len(hashes) == 2 and sha(workdir / "images.pt") in hashes


def test_bench_eval_prints_mean_and_std_and_a_suite_reuses_its_records(bench, workdir: Path, digits) -> None:
    x, y = class_means(digits)
    (workdir / "sets" / "digits").mkdir(parents=True)
    torch.save(x, workdir / "sets" / "digits" / "images.pt")
    torch.save(y, workdir / "sets" / "digits" / "labels.pt")
    code, out, err = bench("eval", "sets/digits/images.pt", "--dataset", "digits", "--seeds", "0", "1",
                           "--epochs", "2")
    assert code == 0, err
    assert "digits IPC 1, ConvNet, seeds 0 1, preset 'standard' with epochs 2:" in out and "3 of 3 tasks to run" in out
    accs = sorted(r["accuracy"] for r in records(workdir))
    assert len(accs) == 2
    mean, std = np.mean(accs), np.std(accs)
    assert f"sets/digits/images.pt on digits IPC 1, ConvNet: {mean:.2f} ± {std:.2f} (n=2" in out
    write(workdir / "imp.yaml", suite("sets/{dataset}/images.pt", seeds="[0, 1]", random=False))
    code, out, _ = bench("run", "imp.yaml")
    assert code == 0 and "0 to run" in out  # the same keys: nothing is recomputed
    code, _, err = bench("eval", "sets/digits/images.pt", "--dataset", "digits", "--ipc", "2")
    assert code == 2 and "holds 1 image(s) per class (IPC 1), but this cell is IPC 2" in err


def test_zca_values_are_evaluated_on_whitened_data_and_a_folder_holds_pixels(bench, workdir: Path, digits) -> None:
    from bench.config import load_suite
    from bench.plan import make_plan
    x, y = class_means(digits)
    torch.save(x, workdir / "images.pt")
    torch.save(y, workdir / "labels.pt")
    write(workdir / "imp.yaml", suite("images.pt", extra=", space: zca"))
    tasks = {t.method.cls.name: t for t in make_plan(load_suite(workdir / "imp.yaml")).distill}
    assert tasks["import"].zca and not tasks["random"].zca
    save_folder(workdir / "folder", x, y, digits.class_names)
    write(workdir / "imp.yaml", suite("folder", extra=", space: zca"))
    code, _, err = bench("validate", "imp.yaml")
    assert code == 2 and "is an image folder, which holds pixels" in err


def test_a_template_names_only_dataset_ipc_and_seed(bench, workdir: Path) -> None:
    write(workdir / "imp.yaml", suite("sets/{data}/images.pt"))
    code, _, err = bench("validate", "imp.yaml")
    assert code == 2 and "has the placeholder {data}" in err and "methods[1].params.path" in err


def test_a_later_command_takes_an_unchanged_files_hash_from_the_cache(tmp_path: Path, monkeypatch) -> None:
    """Planning hashes every imported file in every command; a file whose size, times and inode are those an earlier
    command hashed is not read again. A file rewritten with its old size and mtime (`touch -d`, `cp -p`) still is:
    its ctime moved. A damaged cache is ignored."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(specs, "RACY_NS", 0)  # files written just now may be kept (the rule has its own test)
    hashed: list[str] = []
    monkeypatch.setattr(specs, "_sha256", lambda path, *stat: hashed.append(Path(path).name) or sha(Path(path)))
    folder = tmp_path / "set"
    for i in range(3):
        write(folder / f"{i}.png", f"image {i}")

    def new_command() -> dict:
        specs._cached.clear()
        hashed.clear()
        return specs.file_digest(folder)

    first = new_command()
    assert sorted(hashed) == ["0.png", "1.png", "2.png"] and first["files"] == 3
    assert new_command() == first and hashed == []
    before = (folder / "1.png").stat()
    (folder / "1.png").write_text("IMAGE 1")
    while (folder / "1.png").stat().st_ctime_ns == before.st_ctime_ns:  # a file system tick may hold both writes
        os.utime(folder / "1.png", ns=(before.st_atime_ns, before.st_mtime_ns))
    os.utime(folder / "1.png", ns=(before.st_atime_ns, before.st_mtime_ns))
    changed = new_command()
    assert hashed == ["1.png"] and changed != first
    for cache_file in (tmp_path / "cache").rglob("*.json"):
        cache_file.write_text("{not json")
    assert new_command() == changed and sorted(hashed) == ["0.png", "1.png", "2.png"]
    assert new_command() == changed and hashed == []


def test_a_file_changed_just_before_it_was_hashed_is_hashed_again(tmp_path: Path, monkeypatch) -> None:
    """git's racy-clean rule: a write in the same clock tick as the hashing could leave size and times as they were,
    so a file changed within `RACY_NS` of its hashing is not kept for the next command."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(specs, "RACY_NS", 10 ** 18)  # every file counts as changed just now
    path = write(tmp_path / "images.pt", "tensor")
    for _ in range(2):
        specs._cached.clear()
        assert specs.sha256_of(path) == sha(path)
    assert not list((tmp_path / "cache").rglob("*.json"))
