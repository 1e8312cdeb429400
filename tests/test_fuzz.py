"""The fuzz corpus (tests/fuzz/, made by tests/fuzz/generate.py): every malformed suite, site file and plugin
is refused by `bench validate` with exit code 2 and one paragraph naming the file, with no traceback; the
files built to exhaust time or memory (alias bombs, deep nesting, huge files) fail within 5 s of CPU time and
500 MB, in a process of their own."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from conftest import REPO, SAFETY_TIMEOUT_S, cli_env

FUZZ = REPO / "tests" / "fuzz"
SUITES = sorted((FUZZ / "suites").glob("*.yaml"))
SITES = sorted(p / "bench.yaml" for p in (FUZZ / "sites").iterdir())
BASE = FUZZ / "base.yaml"
HEAVY = ["yaml-billion-laughs", "yaml-recursive-alias", "yaml-deep-flow", "yaml-deep-flow-maps", "yaml-deep-block",
         "yaml-too-large", "yaml-huge-integer", "value-dataset-long", "key-top-long", "plugin-sys-exit"]
CPU_LIMIT_S = 5
MEMORY_LIMIT_MB = 500


@pytest.fixture
def validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Run `bench ARGS...` in-process from an empty folder, with the corpus's plugins importable; return
    (exit code, stdout, stderr, seconds)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(FUZZ / "plugins"))

    def run(*args: str) -> tuple[int, str, str, float]:
        start = time.perf_counter()
        code = main(list(args))
        seconds = time.perf_counter() - start
        out = capsys.readouterr()
        return code, out.out, out.err, seconds
    return run


def assert_refused(code: int, out: str, err: str, names: Path) -> None:
    """Exit code 2 and one line on stderr (so one paragraph), naming the file, with nothing on stdout."""
    assert code == 2, f"exit {code}; stdout: {out[-500:]!r}; stderr: {err[-2000:]!r}"
    assert out == "", out
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and str(names) in err, err


def test_corpus_is_large_and_every_text_case_says_what_it_tests() -> None:
    assert len(SUITES) + len(SITES) >= 150
    for path in filter(Path.is_file, SUITES + SITES):
        data = path.read_bytes()
        if b"\0" not in data and data.decode("utf-8", errors="replace") == data.decode("utf-8", errors="ignore"):
            assert data.startswith(b"# "), path  # a text case (not an encoding one) begins by saying what it tests


def test_the_base_suite_is_valid(validate) -> None:
    code, out, err, _ = validate("validate", str(BASE))
    assert code == 0 and "ok" in out, err


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_malformed_suite_is_one_paragraph_and_exit_2(validate, path: Path) -> None:
    code, out, err, seconds = validate("validate", str(path))
    assert_refused(code, out, err, path)
    assert seconds < CPU_LIMIT_S


@pytest.mark.parametrize("path", SITES, ids=[p.parent.name for p in SITES])
def test_malformed_site_file_is_one_paragraph_and_exit_2(validate, path: Path) -> None:
    """Refused when validated itself, and when a suite is validated with it."""
    assert_refused(*validate("validate", str(path))[:3], path)
    assert_refused(*validate("--config", str(path), "validate", str(BASE))[:3], path)


@pytest.mark.parametrize(("case", "plugin", "expected"), [
    ("plugin-sys-exit", "fuzzplug_exit.py", " raised SystemExit: 3. Fix the plugin"),
    ("plugin-syntax-error", "fuzzplug_syntax.py", " raised SyntaxError: "),
    ("plugin-raises", "fuzzplug_raises.py", " raised RuntimeError: this plugin is broken on purpose."),
    ("plugin-missing-dependency", "fuzzplug_needs.py", " raised ModuleNotFoundError: No module named"),
    ("plugin-no-name", "fuzzplug_incomplete.py", ") has no `name`"),
    ("plugin-no-distill", "fuzzplug_incomplete.py", ") does not implement distill"),
])
def test_a_broken_plugin_is_named_by_its_file(validate, case: str, plugin: str, expected: str) -> None:
    code, _, err, _ = validate("validate", str(FUZZ / "suites" / f"{case}.yaml"))
    assert code == 2 and "key 'methods[1].entry'" in err and f"{FUZZ / 'plugins' / plugin}{expected}" in err, err


def bench_limited(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """`bench ARGS` in a process of its own limited to CPU_LIMIT_S of CPU time; (result, its peak memory in MB)."""
    # The peak is the process's own (VmHWM): its ru_maxrss would include pytest's, inherited across fork+exec.
    report = "import re, sys; from pathlib import Path; from bench.cli import main; code = main(sys.argv[1:]); " \
             "print(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1), " \
             "file=sys.stderr); sys.exit(code)"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S + 1))

    env = {**cli_env(), "PYTHONPATH": str(FUZZ / "plugins")}
    done = subprocess.run([sys.executable, "-c", report, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=SAFETY_TIMEOUT_S, preexec_fn=limit)
    err, _, peak_kb = done.stderr.rstrip("\n").rpartition("\n")
    done.stderr = err + "\n"
    return done, int(peak_kb) / 1024 if peak_kb.isdigit() else float("inf")


@pytest.mark.parametrize("name", HEAVY)
def test_heavy_cases_fail_fast_in_bounded_memory(name: str) -> None:
    path = (FUZZ / "suites" / f"{name}.yaml").relative_to(REPO)
    done, peak_mb = bench_limited("validate", str(path))
    assert done.returncode == 2, f"exit {done.returncode} (-24: out of CPU time): {done.stderr[-2000:]}"
    assert_refused(done.returncode, done.stdout, done.stderr, path)
    assert peak_mb < MEMORY_LIMIT_MB


def test_run_refuses_a_bomb_site_file_and_a_device_this_machine_lacks(tmp_path: Path) -> None:
    bomb = (FUZZ / "sites" / "yaml-billion-laughs" / "bench.yaml").relative_to(REPO)
    done, _ = bench_limited("--config", str(bomb), "run", str(BASE.relative_to(REPO)), "--dry-run")
    assert_refused(done.returncode, done.stdout, done.stderr, bomb)
    done = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(BASE), "--device", "cuda:999"], cwd=tmp_path,
                          env=cli_env(), capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S)  # imports torch
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--device: device 'cuda:999' does not exist here: this machine has" in done.stderr


def test_every_fuzz_plugin_module_is_used() -> None:
    used = "".join(p.read_text(errors="replace") for p in SUITES if p.is_file())
    for module in (FUZZ / "plugins").glob("*.py"):
        assert f"{module.stem}:" in used, module
