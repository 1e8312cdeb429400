"""Configuration as a researcher types it: `key=value` overrides on the command line, the data root from
--data-root or $BENCH_DATA_ROOT, every mistake of a file in one `bench validate`, and a missing data set
answered with the exact files it needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.data import DatasetNotFound, load_dataset
from bench.yamlio import load_yaml
from conftest import TINY_SUITE, write
from test_plugins import RAISES_WHEN_PLANNED

OVERRIDES = ("eval.epochs=2", "ipc=[1]", "methods.1.params.iterations=2")


def paragraphs(err: str) -> list[str]:
    """The error paragraphs of stderr: one line each, a blank line between two."""
    assert err.endswith("\n") and "Traceback" not in err, err
    found = err.rstrip("\n").split("\n\n")
    assert all(p.startswith("error: ") and "\n" not in p for p in found), err
    return found


def test_overrides_change_the_plan_the_name_and_the_stored_resolved_suite(bench, workdir: Path) -> None:
    write(workdir / "tiny.yaml", TINY_SUITE)
    code, out, _ = bench("run", "tiny.yaml", "--dry-run", *OVERRIDES)
    name = out.split("'")[1]
    assert code == 0 and name.startswith("tiny-override-") and len(name) == len("tiny-override-") + 8
    assert "(tiny.yaml with eval.epochs=2 ipc=[1] methods.1.params.iterations=2)" in out
    # 2 methods x 1 IPC = 2 artifacts, each evaluated on 2 archs x 2 seeds; dm with 2 iterations
    assert "4 cells -> 10 tasks" in out and '"epochs": 2' in out and '{"iterations": 2' in out
    assert not (workdir / "results").exists(), "a dry run writes nothing"
    assert bench("run", "tiny.yaml", "--dry-run", *reversed(OVERRIDES))[1].split("'")[1] == name  # any order

    code, out, _ = bench("run", "tiny.yaml", *OVERRIDES)
    assert code == 0 and "done: 10 task(s) ran" in out
    assert f"bench report tiny.yaml {' '.join(OVERRIDES[:1])} 'ipc=[1]' {OVERRIDES[2]}" in out
    records = [json.loads(p.read_text()) for p in (workdir / "results" / "records").rglob("*.json")]
    assert len(records) == 8 and {r["recipe"]["epochs"] for r in records} == {2} and {r["ipc"] for r in records} == {1}
    assert {r["params"]["iterations"] for r in records if r["method"] == "dm"} == {2}

    resolved = workdir / "results" / "suites" / f"{name}.yaml"
    suite, _ = load_yaml(resolved)
    assert suite["name"] == name and suite["ipc"] == [1] and suite["eval"] == {"epochs": 2}
    assert suite["methods"][1]["params"] == {"iterations": 2} and suite["seeds"] == [0, 1]
    assert "Overrides from the command line, applied over tiny.yaml: eval.epochs=2, ipc=[1]" in suite["description"]
    code, out, _ = bench("run", str(resolved), "--dry-run")  # the stored copy reruns the same suite
    assert code == 0 and f"suite '{name}'" in out and "10 already in the store" in out and "0 to run" in out

    code, out, _ = bench("report", "tiny.yaml", *OVERRIDES)
    assert code == 0 and f"wrote reports/{name}/" in out and "incomplete" not in out
    assert "Overrides from the command line" in (workdir / "reports" / name / "table.md").read_text()
    code, out, _ = bench("report", "tiny.yaml")  # the file's own suite is another one: none of its runs exist
    assert code == 0 and "wrote reports/tiny/" in out and "8 of 8 cells incomplete" in out


def test_an_override_of_name_names_the_suite(bench, workdir: Path) -> None:
    write(workdir / "tiny.yaml", TINY_SUITE)
    code, out, _ = bench("run", "tiny.yaml", "--dry-run", "name=short-epochs", "eval.epochs=2")
    assert code == 0 and out.startswith("suite 'short-epochs' (tiny.yaml with name=short-epochs eval.epochs=2)")


@pytest.mark.parametrize(("override", "expected"), [
    ("eval.epoch=5", "tiny.yaml, override 'eval.epoch=5', key 'eval.epoch': unknown key 'epoch'. Did you mean "
                     "'epochs'"),
    ("methods.1.params.iteration=5", "tiny.yaml, override 'methods.1.params.iteration=5', key "
                                     "'methods[1].params.iteration': unknown key 'iteration'. Did you mean "
                                     "'iterations'?"),
    ("distill_arch=ConvNett", "tiny.yaml, override 'distill_arch=ConvNett', key 'distill_arch': unknown architecture "
                              "'ConvNett'. Did you mean 'ConvNet'"),
    ("eval.epochs=-1", "tiny.yaml, override 'eval.epochs=-1', key 'eval.epochs': must be greater than 0, got -1."),
    ("eval.epochs=ten", "tiny.yaml, override 'eval.epochs=ten', key 'eval.epochs': expected an integer, got 'ten'"),
    ("ipc=[1, 0]", "tiny.yaml, override 'ipc=[1, 0]', key 'ipc[1]': IPC must be a positive number"),
    ("ipc=[1", "tiny.yaml, override 'ipc=[1': not a YAML value"),
    ("methods.2.name=dm", "tiny.yaml, override 'methods.2.name=dm': 'methods' is a list of 2, so '2' names no entry"),
    ("eval.epochs.x=1", "tiny.yaml, override 'eval.epochs.x=1': 'eval.epochs' is a single value, so it has no key 'x'"),
])
@pytest.mark.parametrize("command", ["run", "validate", "report"])
def test_a_bad_override_is_one_paragraph_naming_it_and_exit_2(bench, workdir: Path, command: str, override: str,
                                                               expected: str) -> None:
    write(workdir / "tiny.yaml", TINY_SUITE)
    code, out, err = bench(command, "tiny.yaml", override)
    found = paragraphs(err)
    assert code == 2 and out == "" and len(found) == 1 and found[0].startswith(f"error: {expected}"), err
    assert not (workdir / "results").exists() and not (workdir / "reports").exists()


def test_validate_reports_every_mistake_of_a_file_at_once(bench, workdir: Path) -> None:
    """Four typos, one run: each a paragraph naming the file, the line, the key and the fix."""
    write(workdir / "typos.yaml", TINY_SUITE.replace("[digits]", "[digitz]").replace("ConvNet,", "ConvNett,")
          .replace("name: dm", "name: dmm") + "report: {views: [paper_tabel]}\n")
    code, out, err = bench("validate", "typos.yaml")
    found = paragraphs(err)
    assert code == 2 and out == "" and len(found) == 4, err
    for paragraph, start in zip(found, [
            "typos.yaml, line 2, key 'datasets[0]': unknown data set 'digitz'. Did you mean 'digits'",
            "typos.yaml, line 4, key 'eval_archs[0]': unknown architecture 'ConvNett'. Did you mean 'ConvNet'",
            "typos.yaml, line 7, key 'methods[1].name': unknown method 'dmm'. Did you mean 'dm'",
            "typos.yaml, line 11, key 'report.views[0]': unknown view 'paper_tabel'. Did you mean 'paper_table'"]):
        assert paragraph.startswith(f"error: {start}"), paragraph

    # Mistakes of structure (misspelt keys, wrong types) are all found too, before the names are looked up.
    write(workdir / "keys.yaml", TINY_SUITE.replace("eval_archs:", "eval_arch:").replace("seeds: [0, 1]",
                                                                                          "seeds: [0, one]")
          .replace("{epochs: 4}", "{epoch: 4}"))
    code, _, err = bench("validate", "keys.yaml", "typos.yaml", "distill_seeds=[-1]")
    found = paragraphs(err)
    assert code == 2 and [p.split(":")[1] for p in found[:4]] == [
        " keys.yaml, override 'distill_seeds=[-1]', key 'distill_seeds[0]'", " keys.yaml, line 4, key 'eval_arch'",
        " keys.yaml, line 9, key 'seeds[1]'", " keys.yaml, line 10, key 'eval.epoch'"]
    assert "Did you mean 'eval_archs'" in found[1] and "expected an integer, got 'one'" in found[2]
    assert "Did you mean 'epochs'" in found[3] and "required key" not in err
    assert len(found) == 5 and "typos.yaml, override 'distill_seeds=[-1]'" in found[4]  # the next file too


def test_one_mistake_in_several_places_is_one_paragraph(bench, workdir: Path) -> None:
    write(workdir / "s.yaml", "datasets: [digits]\nipc: [1]\neval_archs: [MLP]\nmethods: [random, dm]\nseeds: [0]\n")
    code, _, err = bench("validate", "s.yaml")
    assert code == 2 and paragraphs(err) == [
        "error: s.yaml, line 4, key 'methods[0]': expected a mapping, got 'random' (str). The same goes for "
        "'methods[1]'."]
    write(workdir / "empty.yaml", "description: nothing yet\n")
    code, _, err = bench("validate", "empty.yaml")
    assert code == 2 and paragraphs(err) == [
        "error: empty.yaml, line 1: required keys 'datasets', 'ipc', 'eval_archs', 'methods', 'seeds' are missing: "
        "add them."]


HOOKS = RAISES_WHEN_PLANNED + """

class Choosy(Picky):
    name = "choosy"
    description = "its experts raises"

    @classmethod
    def check_cell(cls, dataset, ipc, params):
        return None

    def experts(self, dataset, arch):
        raise ValueError("no experts for " + dataset)
"""


def test_validate_reports_every_method_whose_planning_fails(bench, workdir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write(workdir / "hooks.py", HOOKS)
    monkeypatch.syspath_prepend(str(workdir))
    write(workdir / "s.yaml", "datasets: [digits]\nipc: [1, 2]\neval_archs: [MLP]\nmethods:\n  - entry: hooks:Picky\n"
                              "  - name: random\n  - entry: hooks:Choosy\nseeds: [0]\n")
    code, _, err = bench("validate", "s.yaml")
    found = paragraphs(err)
    assert code == 2 and len(found) == 2, err
    assert found[0].startswith("error: s.yaml, line 5, key 'methods[0]': method 'picky' (hooks) raised RuntimeError "
                               "in its check_cell()")
    assert found[1].startswith("error: s.yaml, line 7, key 'methods[2]': method 'choosy' (hooks) raised ValueError "
                               "in its experts()") and "no experts for digits" in found[1]


CIFAR_SUITE = TINY_SUITE.replace("[digits]", "[cifar10]").replace("[1, 2]", "[1]")


def test_the_data_root_is_the_flag_else_the_environment_else_bench_yaml(bench, workdir: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    write(workdir / "bench.yaml", "store: results\nreports: reports\ndevice: cpu\nworkers: 1\ndata_root: from-file\n")
    write(workdir / "c.yaml", CIFAR_SUITE)

    def root_used(*args: str) -> str:
        code, _, err = bench("run", "c.yaml", *args)
        assert code == 2, err
        return err.split("not found under data_root '")[1].split("'")[0]

    assert root_used() == str(workdir / "from-file")
    monkeypatch.setenv("BENCH_DATA_ROOT", str(workdir / "from-env"))
    assert root_used() == str(workdir / "from-env")
    assert root_used("--data-root", "from-flag") == str(workdir / "from-flag")
    code, out, _ = bench("validate", "c.yaml", "--data-root", "from-flag")
    assert code == 0 and "note: data set 'cifar10' is not under the data root from-flag yet" in out
    assert f"put {workdir / 'from-flag'}/cifar-10-batches-py/data_batch_1 to data_batch_5" in out
    monkeypatch.setenv("BENCH_DATA_ROOT", "")  # set but empty: as if unset
    assert root_used() == str(workdir / "from-file")


def test_the_data_root_finds_the_data_it_names(bench, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files in the layout the message names are found there: validate has nothing to note."""
    folder = workdir / "elsewhere" / "cifar-10-batches-py"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        write(folder / name, "")
    write(workdir / "c.yaml", CIFAR_SUITE)
    monkeypatch.setenv("BENCH_DATA_ROOT", str(workdir / "elsewhere"))
    code, out, _ = bench("validate", "c.yaml")
    assert code == 0 and "note:" not in out


@pytest.mark.parametrize(("name", "files", "torchvision"), [
    ("mnist", ["MNIST/raw/train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte"], "torchvision.datasets.MNIST('{root}', download=True)"),
    ("fashionmnist", ["FashionMNIST/raw/train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
     "torchvision.datasets.FashionMNIST('{root}', download=True)"),
    ("svhn", ["{root}/train_32x32.mat", "{root}/test_32x32.mat", "{root}/svhn/"],
     "torchvision.datasets.SVHN('{root}', split='train', download=True)"),
    ("cifar10", ["{root}/cifar-10-batches-py/data_batch_1 to data_batch_5, test_batch and batches.meta"],
     "torchvision.datasets.CIFAR10('{root}', download=True)"),
    ("cifar100", ["{root}/cifar-100-python/train, test and meta"],
     "torchvision.datasets.CIFAR100('{root}', download=True)"),
    ("tinyimagenet", ["{root}/tiny-imagenet-200/wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and "
                      "val/val_annotations.txt", "{root}/tinyimagenet.pt"], None),
    ("imagenette", ["{root}/imagenet/train/<wnid>/*.JPEG and {root}/imagenet/val/<wnid>/*.JPEG"],
     "torchvision.datasets.ImageNet('{root}', split='train')"),
])
def test_a_missing_data_set_names_its_files_and_how_to_get_them(tmp_path: Path, name: str, files: list[str],
                                                                torchvision: str | None) -> None:
    with pytest.raises(DatasetNotFound) as err:
        load_dataset(name, tmp_path)
    message = str(err.value)
    for text in files:
        assert text.format(root=tmp_path) in message, text
    if torchvision is not None:
        assert "where torchvision and internet are available" in message or "ImageNet has no download" in message
        assert torchvision.format(root=tmp_path) in message
    assert "--data-root, $BENCH_DATA_ROOT or data_root in bench.yaml" in message and "\n" not in message
