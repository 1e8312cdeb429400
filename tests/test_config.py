"""Suite validation: every mistake gives one paragraph naming file, line and key, and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.config import ConfigError, load_site, load_suite
from conftest import REPO, SAFETY_TIMEOUT_S, TINY_SUITE, cli_env, write


def error_for(tmp_path: Path, text: str) -> str:
    path = write(tmp_path / "suite.yaml", text)
    with pytest.raises(ConfigError) as exc:
        load_suite(path)
    return str(exc.value)


def test_tiny_suite_is_valid(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path / "s.yaml", TINY_SUITE))
    assert suite.name == "tiny" and suite.ipcs == (1, 2) and suite.seeds == (0, 1)
    recipe = suite.methods[1].recipe
    assert suite.methods[1].preset == "standard"
    assert recipe.epochs == 4 and recipe.lr == 0.01 and recipe.momentum == 0.9
    assert [m.label for m in suite.methods] == ["random", "dm"]
    params = suite.methods[1].params_for("digits", 1)
    assert params.iterations == 3 and params.lr_img == 1.0


def test_unknown_key_names_file_line_and_suggests(tmp_path: Path) -> None:
    msg = error_for(tmp_path, TINY_SUITE.replace("seeds: [0, 1]", "sedes: [0, 1]"))
    assert "suite.yaml, line 9" in msg and "unknown key 'sedes'" in msg and "Did you mean 'seeds'" in msg


def test_unknown_method_param_is_located(tmp_path: Path) -> None:
    msg = error_for(tmp_path, TINY_SUITE.replace("{iterations: 3}", "{iteratons: 3}"))
    assert "line 8" in msg and "methods[1].params.iteratons" in msg and "Did you mean 'iterations'" in msg


def test_yaml_1_2_floats_are_numbers(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path / "s.yaml", TINY_SUITE.replace("{epochs: 4}", "{epochs: 4, lr: 1e-3}")))
    assert suite.methods[0].recipe.lr == pytest.approx(0.001)


def test_method_entry_can_override_the_evaluation(tmp_path: Path) -> None:
    text = TINY_SUITE.replace("{iterations: 3}", "{iterations: 3}\n    eval: {preset: dc, epochs: 9}")
    suite = load_suite(write(tmp_path / "s.yaml", text))
    random, dm = suite.methods
    assert (random.preset, random.recipe.epochs, random.recipe.augment) == ("standard", 4, "dsa")
    assert (dm.preset, dm.recipe.epochs, dm.recipe.augment) == ("dc", 9, "none")
    msg = error_for(tmp_path, text.replace("preset: dc", "preset: dcc"))
    assert "methods[1].eval.preset" in msg and "Did you mean 'dc'" in msg


def test_learned_lr_only_for_methods_that_learn_one(tmp_path: Path) -> None:
    """MTT's preset trains with the lr stored in the set: a method that stores none would fail every evaluation."""
    text = TINY_SUITE.replace("{iterations: 3}", "{iterations: 3}\n  - name: mtt\n    params: {iterations: 1}")
    msg = error_for(tmp_path, text.replace("{epochs: 4}", "{epochs: 4, preset: mtt}"))
    assert "line 12, key 'eval.preset'" in msg and "'random' stores no learned lr" in msg
    msg = error_for(tmp_path, text.replace("{iterations: 3}", "{iterations: 3}\n    eval: {lr: learned}"))
    assert "key 'methods[1].eval.lr'" in msg and "'dm' stores no learned lr" in msg
    mtt = load_suite(write(tmp_path / "s.yaml", text)).methods[2]
    assert (mtt.preset, mtt.recipe.lr) == ("mtt", "learned")


def test_quoted_number_is_rejected(tmp_path: Path) -> None:
    msg = error_for(tmp_path, TINY_SUITE.replace("{epochs: 4}", "{epochs: 4, lr: '1e-3'}"))
    assert "eval.lr" in msg and "expected a number" in msg and "Remove the quotes" in msg


def test_sexagesimal_is_rejected_not_read_as_630(tmp_path: Path) -> None:
    msg = error_for(tmp_path, TINY_SUITE.replace("{epochs: 4}", "{epochs: 10:30}"))
    assert "eval.epochs" in msg and "'10:30'" in msg and "base-60" in msg


def test_yes_no_are_not_booleans(tmp_path: Path) -> None:
    msg = error_for(tmp_path, TINY_SUITE.replace("{iterations: 3}", "{iterations: 3, dsa: no}"))
    assert "methods[1].params.dsa" in msg and "Write true or false" in msg


def test_float_for_integer(tmp_path: Path) -> None:
    msg = error_for(tmp_path, TINY_SUITE.replace("{iterations: 3}", "{iterations: 2e4}"))
    assert "expected an integer" in msg and "whole number" in msg


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("- name: dm", "- name: DMM", "unknown method 'DMM'. Did you mean 'dm'"),
    ("datasets: [digits]", "datasets: [digitz]", "unknown data set 'digitz'. Did you mean 'digits'"),
    ("eval_archs: [ConvNet, MLP]", "eval_archs: [ConvNet, MPL]", "unknown architecture 'MPL'. Did you mean 'MLP'"),
    ("eval: {epochs: 4}", "eval: {preset: standart}", "unknown evaluation preset 'standart'. Did you mean 'standard'"),
])
def test_unknown_names_suggest_the_right_word(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert expected in error_for(tmp_path, TINY_SUITE.replace(old, new))


@pytest.mark.parametrize(("ipcs", "expected"), [
    ("[0, 1]", "IPC must be a positive number"),
    ("[1, 123]", "IPC 123 is larger than the smallest class of 'digits' (122 training images)"),
])
def test_ipc_bounds(tmp_path: Path, ipcs: str, expected: str) -> None:
    msg = error_for(tmp_path, TINY_SUITE.replace("ipc: [1, 2]", f"ipc: {ipcs}"))
    assert "line 3" in msg and expected in msg


def test_architecture_too_big_for_the_images(tmp_path: Path) -> None:
    msg = error_for(tmp_path, TINY_SUITE.replace("[ConvNet, MLP]", "[ConvNet, VGG11]"))
    assert "eval_archs[1]" in msg and "VGG11" in msg and "8x8" in msg


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    msg = error_for(tmp_path, TINY_SUITE + "seeds: [3]\n")
    assert "key 'seeds' appears twice" in msg and "line 11" in msg and "first at line 9" in msg


def test_duplicate_method_labels(tmp_path: Path) -> None:
    msg = error_for(tmp_path, TINY_SUITE.replace("  - name: random\n", "  - name: dm\n"))
    assert "both called 'dm'" in msg and "label" in msg


def test_missing_key_and_broken_yaml(tmp_path: Path) -> None:
    assert "required key 'methods' is missing" in error_for(tmp_path, "datasets: [digits]\nipc: [1]\n"
                                                            "eval_archs: [MLP]\nseeds: [0]\n")
    assert "not valid YAML" in error_for(tmp_path, "datasets: [digits\n")


def test_site_config_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    site = load_site(write(tmp_path / "conf" / "bench.yaml", "store: /abs/store\ndata_root: d\n"))
    assert site.store == Path("/abs/store") and site.data_root == tmp_path / "conf" / "d"
    with pytest.raises(ConfigError, match="bench.yaml, line 1, key 'executor'"):
        load_site(write(tmp_path / "bench.yaml", "executor: slurmm\n"))


def test_cli_validate_prints_one_paragraph_and_exit_2(bench, workdir: Path) -> None:
    write(workdir / "bad.yaml", TINY_SUITE.replace("ipc: [1, 2]", "ipc: [1, 500]"))
    code, out, err = bench("validate", "bad.yaml")
    assert code == 2 and err.startswith("error: bad.yaml, line 3, key 'ipc[1]'") and "Traceback" not in err
    write(workdir / "good.yaml", TINY_SUITE)
    code, out, _ = bench("validate", "good.yaml")
    assert code == 0 and "good.yaml: ok (8 cells, 0 expert + 0 whole + 4 distill + 16 evaluate tasks)" in out


def test_shipped_suites_and_site_config_are_valid() -> None:
    from conftest import REPO
    for path in (REPO / "suites").glob("*.yaml"):
        load_suite(path)
    load_site(REPO / "bench.yaml")


def test_validate_checks_and_plans_a_suite_without_importing_torch() -> None:
    """Config and plan are plain data: `bench validate` reads, checks and plans the demo suite (params,
    presets, refused cells, experts) with no torch in the process (`-X importtime` lists every import)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "bench.cli", "validate", "suites/demo.yaml",
                           "suites/iid-table1.yaml"], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=SAFETY_TIMEOUT_S)
    assert done.returncode == 0 and "suites/demo.yaml: ok" in done.stdout, done.stderr[-2000:]
    assert "left out: iid-dm" in done.stdout  # iid-dm's IPC-1 refusal is decided without torch too
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "bench.config" in imported and "bench.plan" in imported
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("eval: {epochs: 4}\n", "eval: {epochs: 4}\nwhole_dataset: {epoch: 3}\n",
     "key 'whole_dataset.epoch': unknown key 'epoch'. Did you mean 'epochs'? Valid keys here: epochs, seeds."),
    ("eval: {epochs: 4}\n", "eval: {epochs: 4}\nwhole_dataset: {seeds: []}\n",
     "key 'whole_dataset.seeds': must list at least 1 value(s), got []."),
    ("{epochs: 4}", "{epochs: 4, decay_at: [2.0]}", "key 'eval': decay_at holds fractions of the epochs in (0, 1]"),
    ("{epochs: 4}", "{epochs: 4, lr: .nan}", "key 'eval.lr': must be a finite number, got nan."),
    ("{epochs: 4}", "{epochs: 4, momentum: 1.0}", "key 'eval.momentum': must be less than 1, got 1.0."),
    ("ipc: [1, 2]", "ipc: [1, 1]", "key 'ipc[1]': 1 is listed twice (entries 1 and 2). List each value once."),
    ("seeds: [0, 1]", "seeds: [0, 1180591620717411303424]", "key 'seeds[1]': must be less than 9223372036854775808"),
    ("seeds: [0, 1]", "seeds: [-1, 1]", "key 'seeds[0]': must be at least 0, got -1."),
    ("{iterations: 3}", "{iterations: -5}", "key 'methods[1].params.iterations': must be at least 0, got -5."),
    ("{iterations: 3}", "{iterations: 3, batch_real: 0}", "params.batch_real': must be greater than 0, got 0."),
    ("{iterations: 3}", "{iterations: 3, lr_img: 1.0e+300}", "params.lr_img': must be at most 3.403e+38"),
    ("name: tiny", "name: ../up", "key 'name': the suite name '../up' cannot name its folders"),
])
def test_values_a_run_would_refuse_are_refused(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert expected in error_for(tmp_path, TINY_SUITE.replace(old, new))


def test_a_name_taken_from_the_file_name_must_be_safe(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the suite name 'my suite' .* so its file name is used"):
        load_suite(write(tmp_path / "my suite.yaml", TINY_SUITE.replace("name: tiny\n", "")))
    assert load_suite(write(tmp_path / "my-suite.yaml", TINY_SUITE.replace("name: tiny\n", ""))).name == "my-suite"


def test_profiles_are_checked_in_the_site_and_against_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 2, key 'profile': unknown executor profile 'gpus'. Did you mean 'gpu'"):
        load_site(write(tmp_path / "bench.yaml", "profiles: {gpu: {time: 5}}\nprofile: gpus\n"))
    site = load_site(write(tmp_path / "bench.yaml", "profiles: {gpu: {time: 5}}\n"))
    suite = write(tmp_path / "s.yaml", TINY_SUITE + "profile: cpu\n")
    assert load_suite(suite).profile == "cpu"  # without a site, nothing to check it against
    with pytest.raises(ConfigError, match=r"s.yaml, line 11, key 'profile': unknown executor profile 'cpu'\..* gpu"):
        load_suite(suite, site)


def test_site_device_and_store_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key 'device': unknown device 'tpu'; write auto"):
        load_site(write(tmp_path / "bench.yaml", "device: tpu\n"))
    assert load_site(write(tmp_path / "bench.yaml", "device: cuda:7\n")).device == "cuda:7"  # torch decides at run
    write(tmp_path / "afile", "x")
    for store in ("afile", "afile/below"):
        site = load_site(write(tmp_path / "bench.yaml", f"store: {store}\n"))
        with pytest.raises(ConfigError, match="key 'store': '.*afile' is not a folder"):
            site.check_writable("store")
    site = load_site(write(tmp_path / "bench.yaml", "store: /proc/bench-store\n"))
    with pytest.raises(ConfigError, match="key 'store': bench cannot create files in '/proc'"):
        site.check_writable("store")
    load_site(write(tmp_path / "bench.yaml", "store: new/results\n")).check_writable("store")
    assert not (tmp_path / "new").exists()  # checking creates nothing
