"""The `bench` command: validate, run, report and list."""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from bench.config import ConfigError, Site, Suite, check_device, load_site, load_suite
from bench.logs import configure
from bench.records import RecordError
from bench.yamlio import dump_yaml

if TYPE_CHECKING:
    from bench.plan import Plan


def _suite_path(name: str) -> Path:
    """A suite is a path, or the name of a file in suites/."""
    path = Path(name)
    if not path.exists() and not path.suffix and Path("suites", f"{name}.yaml").exists():
        return Path("suites", f"{name}.yaml")
    return path


def _site(path: Path | None, data_root: Path | None = None) -> Site:
    """bench.yaml (`path`, else ./bench.yaml, else the defaults) checked as a whole, each executor profile
    resolved: a mistake in a profile this command does not use is still a mistake in the file. The data root is
    `data_root` (--data-root), else $BENCH_DATA_ROOT, else the file's `data_root:`, else ./data."""
    from bench.executors.profiles import parse_profile
    site = load_site(path)
    for profile in site.profiles:
        parse_profile(site, profile)
    root = data_root or os.environ.get(DATA_ROOT_ENV)
    return replace(site, data_root=Path(root)) if root else site


DATA_ROOT_ENV = "BENCH_DATA_ROOT"


def _load(args: argparse.Namespace) -> tuple[Site, Suite]:
    site = _site(args.config, getattr(args, "data_root", None))
    return site, load_suite(_suite_path(args.suite), site, args.overrides)


def _named(suite: Suite) -> str:
    """How a command's first line names the suite: its name, its file and the overrides applied over it."""
    overrides = f" with {' '.join(suite.overrides)}" if suite.overrides else ""
    return f"suite '{suite.name}' ({suite.path}{overrides})"


def _check_device(name: str, error: Callable[[str], ConfigError], here: bool) -> None:
    """Refuse a device name bench does not know, and (`here`: a local run) one this machine lacks, before
    any task starts rather than in every task. Imports torch, which only a run needs."""
    try:
        check_device(name)
    except ValueError as exc:
        raise error(f"{exc}.") from None
    if not here or name in ("auto", "cpu"):
        return
    import torch
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise error("device 'mps' is not available on this machine. Use cpu or auto.")
        return
    count, index = torch.cuda.device_count(), int(name.partition(":")[2] or 0)
    if index >= count:
        raise error(f"device '{name}' does not exist here: this machine has {count} CUDA device(s)"
                    f"{f' (cuda:0 to cuda:{count - 1})' if count else ''}. Use "
                    f"{'one of those, ' if count else ''}cpu or auto.")


def _print_refused(plan: Plan) -> None:
    for r in plan.refused:
        print(f"  left out: {r.label} {r.dataset} ipc={r.ipc}: {r.reason}")


def cmd_validate(args: argparse.Namespace) -> int:
    """Check each file as far as possible without running: a suite against the site it would run with, with the
    command line's `key=value` overrides applied to every suite. Every file is checked; each mistake in them is
    one paragraph."""
    overrides = [a for a in args.files if "=" in a]
    errors: list[str] = []
    for name in (a for a in args.files if "=" not in a):
        try:
            _validate_one(_suite_path(name), args, overrides)
        except ConfigError as exc:
            errors.extend(exc.messages)
    if errors:
        raise ConfigError(*errors)
    return 0


def _validate_one(path: Path, args: argparse.Namespace, overrides: list[str]) -> None:
    site = _site(path if path.name == "bench.yaml" else args.config, args.data_root)
    site.check_writable("store")
    site.check_writable("reports")
    from bench.tracking import tracking
    tracking(site)  # a tracker's package is missing: one error here, not a warning per record
    if path.name == "bench.yaml":
        print(f"{path}: ok (site defaults)")
        return
    suite = load_suite(path, site, overrides)
    from bench.plan import make_plan
    plan = make_plan(suite)
    with_overrides = f" with {' '.join(overrides)} (suite '{suite.name}')" if overrides else ""
    from bench.executors.todo import plan_tasks
    print(f"{path}{with_overrides}: ok ({len(plan.cells)} cells, {_by_kind(plan_tasks(plan), ' + ')} tasks)")
    _print_refused(plan)
    for name, hint in _data_missing(suite, site.data_root):
        print(f"  note: data set '{name}' is not under the data root {site.data_root} yet, so `bench run` would stop. "
              f"To fix, {hint}")


def _data_missing(suite: Suite, root: Path) -> list[tuple[str, str]]:
    """The suite's data sets whose files are in none of their layouts under `root`, with how to get them. Looks
    at file names only: reading the files is `bench run`'s first step."""
    from bench.data.readers import READERS
    root = root.expanduser().absolute()
    return [(name, READERS[name].hint.format(root=root)) for name in suite.datasets
            if name in READERS and all(layout.missing(root) for layout in READERS[name].layouts)]


def cmd_run(args: argparse.Namespace) -> int:
    site, suite = _load(args)
    executor_name = args.executor or site.executor
    error = (lambda problem: ConfigError(f"--device: {problem}")) if args.device else \
        (lambda problem: site.error(("device",), problem))
    _check_device(args.device or site.device, error, here=executor_name == "local" and not args.dry_run)
    site.check_writable("store")
    from bench.executors import ExecutorError, make_executor
    from bench.executors.todo import pending
    from bench.plan import make_plan
    from bench.store import Store
    from bench.tracking import tracking

    plan, store = make_plan(suite), Store(site.store, tracking(site))
    todo = pending(plan, store)
    say = print if args.dry_run or args.verbosity >= 0 else lambda *_: None  # -q: only failures and the summary
    say(f"{_named(suite)}: {len(plan.cells)} cells -> {todo.total} tasks, "
        f"{todo.done} already in the store {site.store}, {todo.total - todo.done} to run ({_by_kind(todo.tasks)})")
    if say is print:
        _print_refused(plan)
    if args.dry_run:
        for m in suite.methods:
            print(f"  {m.label} ({m.cls.name}) is evaluated with preset '{m.preset}': "
                  f"{json.dumps(m.recipe.as_dict())}")
        for task in todo.tasks:  # distill tasks show the settings they run with (defaults <- preset <- suite)
            params = f" {json.dumps(task.identity['params'])}" if "params" in task.identity else ""
            print(f"  {task.describe()}  [{task.key}]{params}")
        return 0
    say(f"resolved suite: {store.save_suite(suite.name, dump_yaml(suite.resolved))}")
    origin = "--profile" if args.profile else f"{suite.path}, key 'profile'" if suite.profile else str(site.path)
    executor = make_executor(executor_name, site, device=args.device,
                             profile=args.profile or suite.profile, profile_origin=origin,
                             workers=args.workers, threads=args.threads)
    try:
        outcome = executor.run(plan, store, todo)
    except ExecutorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if outcome.failed:
        print(outcome.summary, file=sys.stderr)
        for label in outcome.failed:
            print(f"  FAILED {label}", file=sys.stderr)
        return 1
    again = " ".join([args.suite, *map(shlex.quote, args.overrides)])
    following = f"Watch: bench status {again}; then: " if executor.name == "slurm" else "Next: "
    print(f"{outcome.summary} {following}bench report {again}")
    return 0


def _by_kind(tasks: list, joint: str = ", ") -> str:
    """How many tasks of each kind: "0 expert, 2 whole, 4 distill, 16 evaluate"."""
    from bench.executors.board import KINDS
    from bench.executors.todo import kind_of
    return joint.join(f"{sum(1 for t in tasks if kind_of(t) == k)} {k}" for k in KINDS)


def cmd_status(args: argparse.Namespace) -> int:
    site, suite = _load(args)
    from tabulate import tabulate

    from bench.executors import STATES, make_executor, older_code
    from bench.executors.board import KINDS
    from bench.executors.todo import kind_of
    from bench.plan import make_plan
    from bench.store import Store

    plan, store = make_plan(suite), Store(site.store)
    submitted = (store.root / "slurm" / suite.name / "submissions").is_dir()
    executor = make_executor(args.executor or ("slurm" if submitted else site.executor), site)
    tasks, note = executor.status(plan, store)
    count = lambda items, state: sum(1 for t in items if t.state == state)  # noqa: E731
    print(f"{_named(suite)}, store {site.store}" + (f"; SLURM states from {note}" if note else ""))
    rows = []
    for kind in KINDS:
        items = [t for t in tasks if kind_of(t.task) == kind]
        if items:
            rows.append([kind, len(items)] + [count(items, s) for s in STATES])
    print(tabulate(rows, headers=["stage", "tasks", *STATES]))
    by_cell: dict = {}
    for t in tasks:
        if kind_of(t.task) == "evaluate":
            by_cell.setdefault(t.task.cell, []).append(t)
    print()
    print(tabulate([[c.method, c.dataset, c.ipc, c.arch, f"{count(items, 'done')}/{len(items)}",
                     *(count(items, s) for s in STATES[1:])] for c, items in by_cell.items()],
                   headers=["method", "dataset", "ipc", "arch", "done", *STATES[1:]]))
    for line in older_code(plan, store):
        print(f"\nnote: {line}")
    for t in tasks:
        if t.state == "running" and t.detail:
            print(f"\nrunning {t.task.describe()}: {t.detail}")
    failed = [t for t in tasks if t.state == "failed"]
    for t in failed:
        detail = t.detail.replace("\n", "\n    | ")
        print(f"\nFAILED {t.task.describe()}: job {t.job}\n    log: {t.log}\n    | {detail}")
    if failed:
        print(f"\n{len(failed)} task(s) failed. Fix the cause, then `bench run {args.suite} --executor "
              f"{executor.name}` runs exactly the missing work.")
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    site, suite = _load(args)
    site.check_writable("reports")
    from bench.machine import no_cyclic_gc

    with no_cyclic_gc():  # a tenth of a 100,000-record report was the collector walking its plan, records and rows
        return _report(args, site, suite)


def _report(args: argparse.Namespace, site: Site, suite: Suite) -> int:
    from bench.executors import older_code
    from bench.plan import expected_cells, make_plan, report_options
    from bench.report.aggregate import aggregate
    from bench.report.inputs import RECORD_FIELDS, record_keys
    from bench.report.render import write_report
    from bench.store import Store

    plan, store = make_plan(suite), Store(site.store)
    out_dir = site.reports / suite.name
    if Path(os.path.normpath(out_dir)).parent != Path(os.path.normpath(site.reports)):
        raise ConfigError(f"{suite.path}: the suite's name '{suite.name}' would put its report outside "
                          f"{site.reports}/; give the suite a plain name (letters, digits, '-', '_', '.').")
    expected = expected_cells(plan)
    cells = aggregate(expected, store.read_fields(record_keys(expected), RECORD_FIELDS, rollup=suite.name))
    print(write_report(replace(report_options(suite), older_code=tuple(older_code(plan, store))), cells, out_dir))
    incomplete = cells["n"] + cells["n_diverged"] < cells["n_expected"]  # result cells and whole rows alike
    missing, whole = int(incomplete[cells["group"] != "whole"].sum()), int(incomplete[cells["group"] == "whole"].sum())
    todo = ", ".join(([f"{missing} of {int((cells['group'] != 'whole').sum())} cells incomplete"] if missing else [])
                     + ([f"{whole} whole-dataset row(s) incomplete"] if whole else []))
    print(f"\nwrote {out_dir}/: report.html, table.md, report.tex, results.csv, results.json (all suites: "
          f"{site.reports / 'index.html'})" + (f" ({todo}: run `bench run {args.suite}`)" if todo else ""))
    if args.open:
        page = (out_dir / "report.html").resolve()
        print(page)
        _open_in_browser(page)
    return 0


def _open_in_browser(page: Path) -> None:
    """Show `page` in the default browser (Python's `webbrowser`: $BROWSER, else the desktop's), or say that this
    machine has none (a cluster node, a container): the path printed before is then the way to it."""
    import webbrowser

    try:
        opened = webbrowser.get().open(page.as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        print("note: no web browser is registered here (set BROWSER to one to have --open use it); open the path "
              "above.", file=sys.stderr)


def cmd_verify(args: argparse.Namespace) -> int:
    site = _site(args.config)
    from bench.store import Store

    store, scope = Store(site.store), f"store {site.store}"
    keys = None
    if args.suite:
        from bench.executors.todo import plan_tasks
        from bench.plan import make_plan
        suite = load_suite(_suite_path(args.suite), site)
        keys, scope = [t.key for t in plan_tasks(make_plan(suite))], f"suite '{suite.name}' in {scope}"
    checked = store.verify(keys)
    if not store.quarantined:
        print(f"verified {checked} file(s) of {scope}: all sound.")
        return 0
    print(f"verified {checked} file(s) of {scope}: {len(store.quarantined)} damaged, moved to "
          f"{store.root / 'quarantine'} with the reason beside each (<name>.reason.txt):")
    for q in store.quarantined:
        print(f"  {q.path}: {q.reason}")
    print(f"Their tasks count as not done: `bench run {args.suite or 'SUITE'}` recomputes them.")
    return 1


def cmd_export(args: argparse.Namespace) -> int:
    """Send the suite's records in the store to a tracker of bench.yaml, skipping those it holds already."""
    site, suite = _load(args)
    from bench.plan import make_plan
    from bench.store import Store
    from bench.tracking import TrackerError, export, tracker_for

    tracker, plan = tracker_for(site, args.to), make_plan(suite)
    keys = list(dict.fromkeys([w.key for w in plan.whole] + [e.key for e in plan.evaluate]))
    records = Store(site.store).read_records(keys)
    try:
        sent, there = export(records, tracker)
    except TrackerError as exc:
        print(f"error: {_paragraph(str(exc))}", file=sys.stderr)
        return 1
    print(f"suite '{suite.name}': {len(records)} of its {len(keys)} record(s) are in the store {site.store}; sent "
          f"{sent} to {tracker.where()}, {there} already there.")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.what == "methods":
        from bench.methods.presets import preset_files
        from bench.methods.registry import METHODS, ORIGIN, load_entry_points
        load_entry_points()
        for name, cls in sorted(METHODS.items()):
            params = ", ".join(f"{k}={f.default!r}" if not f.is_required() else f"{k} (required)"
                               for k, f in cls.Params.model_fields.items())
            preset = f"; published settings per data set/IPC: {preset_files(cls.presets)}" if cls.presets else ""
            print(f"{name:12} {cls.description} [{ORIGIN[name]}]\n{'':12} params: {params or '(none)'}{preset}\n"
                  f"{'':12} evaluated with preset '{cls.eval_preset}'")
    elif args.what == "datasets":
        from bench.data import DATASETS
        for name, spec in DATASETS.items():
            print(f"{name:14} {spec.channels}x{spec.image_size}x{spec.image_size}, {spec.num_classes} classes. "
                  f"{spec.description}")
    elif args.what == "archs":
        from bench.nets import NETWORKS
        for name, text in NETWORKS.items():
            print(f"{name:16} {text}")
    else:
        from bench.recipes import PRESETS
        for name, recipe in PRESETS.items():
            print(f"{name:10} {recipe.as_dict()}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """One file or folder made elsewhere, evaluated as a suite of one `import` entry (`bench.single`): its
    records go to the store under the keys a suite importing the same file gives them."""
    site = _site(args.config, args.data_root)
    site.check_writable("store")
    error = (lambda problem: ConfigError(f"--device: {problem}")) if args.device else \
        (lambda problem: site.error(("device",), problem))
    _check_device(args.device or site.device, error, here=True)
    from bench.executors import ExecutorError, make_executor
    from bench.executors.todo import pending
    from bench.plan import make_plan
    from bench.recipes import PRESETS
    from bench.single import file_suite, summary
    from bench.store import Store

    params = {k: v for k, v in {"labels": args.labels, "lr": _number_or_path(args.lr), "soft_labels": args.soft_labels,
                                "space": args.space, "format": args.format}.items() if v is not None}
    suite = file_suite(args.path, args.dataset, ipc=args.ipc, arch=args.arch, seeds=args.seeds, preset=args.preset,
                       epochs=args.epochs, params=params)
    plan, store = make_plan(suite), Store(site.store)
    todo = pending(plan, store)
    entry = suite.methods[0]
    preset = PRESETS[entry.preset].as_dict()
    changed = ", ".join(f"{k} {v}" for k, v in entry.recipe.as_dict().items() if v != preset[k])
    print(f"{args.path}: {args.dataset} IPC {suite.ipcs[0]}, {args.arch}, seeds {' '.join(map(str, args.seeds))}, "
          f"preset '{entry.preset}'{f' with {changed}' if changed else ''}: {todo.total - todo.done} of {todo.total} "
          f"tasks to run (the rest are in the store {site.store})")
    try:
        outcome = make_executor("local", site, device=args.device).run(plan, store, todo)
    except ExecutorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if outcome.failed:
        print(outcome.summary, file=sys.stderr)
        return 1
    print(summary(plan, store))
    return 0


def _number_or_path(text: str | None) -> float | str | None:
    """`--lr`: a number, or the path of a file holding one."""
    try:
        return float(text) if text is not None else None
    except ValueError:
        return text


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got '{text}'")
    return int(text)


DATA_ROOT_HELP = (f"the folder holding the data sets (default: ${DATA_ROOT_ENV}, else bench.yaml's data_root, "
                  f"else ./data)")


def _overrides_and_data_root(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="change a value of the suite by its dotted key, e.g. eval.epochs=50 'ipc=[1]' "
                        "methods.0.params.iterations=20")
    p.add_argument("--data-root", type=Path, help=DATA_ROOT_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Benchmark harness for dataset distillation.")
    parser.add_argument("--config", type=Path, default=None,
                        help="site defaults (default: ./bench.yaml if present, else built-in defaults)")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1, default=0,
                      help="show only failures and the final summary")
    loud.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                      help="also show each epoch and iteration of every task")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run every task of a suite that is not in the store yet")
    p.add_argument("suite", help="suite file, or the name of one in suites/")
    _overrides_and_data_root(p)
    p.add_argument("--dry-run", action="store_true", help="print the plan: tasks, and how many are done")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default: bench.yaml's device)")
    p.add_argument("--executor", choices=["local", "slurm"],
                   help="local: run here, in this process; slurm: submit job arrays and return "
                        "(default: bench.yaml's executor)")
    p.add_argument("--profile", help="bench.yaml executor profile for slurm (default: the suite's `profile:`, "
                                     "then bench.yaml's `profile:`)")
    p.add_argument("--workers", type=_positive, default=None,
                   help="local: run tasks in N processes at once (default: bench.yaml's workers: one per GPU with "
                        "CUDA, else one per two cores)")
    p.add_argument("--threads", type=_positive, default=None,
                   help="torch's threads in each process that computes (default: bench.yaml's threads, else "
                        "$OMP_NUM_THREADS, else the available cores divided by the workers)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="per stage and per cell: done, running, queued, failed (with logs)")
    p.add_argument("suite")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="the overrides the suite was run with")
    p.add_argument("--executor", choices=["local", "slurm"],
                   help="whose view (default: slurm where this suite was submitted to SLURM, else bench.yaml's "
                        "executor)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="render a suite's results: HTML, LaTeX, Markdown, CSV, JSON under reports/")
    p.add_argument("suite")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="the overrides the suite was run with")
    p.add_argument("--open", action="store_true",
                   help="open the HTML report in the default browser ($BROWSER) and print its path")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("validate", help="check suite files (or bench.yaml) without running anything")
    p.add_argument("files", nargs="+", metavar="FILE|KEY=VALUE",
                   help="suite files (or bench.yaml), and overrides applied to each suite")
    p.add_argument("--data-root", type=Path, help=DATA_ROOT_HELP)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("verify", help="check every record, artifact and checkpoint (of a suite, or the whole "
                                      "store); quarantine the damaged ones")
    p.add_argument("suite", nargs="?", help="check only this suite's files (default: the whole store)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("export", help="send a suite's records in the store to W&B or MLflow (`tracking:` in "
                                      "bench.yaml); records already there are skipped")
    p.add_argument("suite")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="the overrides the suite was run with")
    p.add_argument("--to", required=True, choices=["wandb", "mlflow"], help="the tracker of bench.yaml's `tracking:`")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("eval", help="evaluate one synthetic set made elsewhere (a file or an image folder) "
                                    "without a suite; records go to the store")
    p.add_argument("path", help="images_best.pt, res_*.pt, .npz, .npy, or a folder of one sub-folder per class")
    p.add_argument("--dataset", required=True, help="the data set the set was distilled from (digits, cifar10, ...)")
    p.add_argument("--ipc", type=_positive, default=None, help="images per class (default: read from the files)")
    p.add_argument("--arch", default="ConvNet", help="evaluation architecture (default: ConvNet)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="evaluation seeds (default: 0-4)")
    p.add_argument("--preset", help="evaluation preset (default: standard; `bench list presets`)")
    p.add_argument("--epochs", type=_positive, default=None, help="override the preset's epochs")
    p.add_argument("--labels", help="the labels file (default: labels_*.pt beside images_*.pt, or inside the file)")
    p.add_argument("--lr", help="the learned evaluation lr, a number or a file (MTT's lr_best.pt); the networks "
                                "train with it")
    p.add_argument("--soft-labels", help="a file of soft labels or logits, one row per image")
    p.add_argument("--space", choices=["normalized", "pixels", "zca"],
                   help="what the values are (default: normalized; pixels for an image folder)")
    p.add_argument("--format", choices=["tensor", "dc-res", "npz", "npy", "folder"],
                   help="override the detected format")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default: bench.yaml's device)")
    p.add_argument("--data-root", type=Path, help=DATA_ROOT_HELP)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("list", help="what a suite can name")
    p.add_argument("what", choices=["methods", "datasets", "archs", "presets"])
    p.set_defaults(func=cmd_list)
    return parser


def _paragraph(text: str) -> str:
    """`text` as one line a terminal shows as written: a message may quote a file's values, and a value
    with newlines or control characters (a YAML "\\n" or "\\e") must not break it up or drive the terminal."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in " ".join(text.split()))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with `key=value` overrides anywhere after the suite (`bench run demo --dry-run
    eval.epochs=5`: argparse alone takes positionals only before the first option)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in a and not a.startswith("-") for a in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra and hasattr(args, "files") and all("=" in a and not a.startswith("-") for a in extra):
        args.files = [*args.files, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    configure(args.verbosity)
    try:
        return args.func(args)
    except ConfigError as exc:  # each mistake one paragraph, a blank line between two
        print("\n\n".join(f"error: {_paragraph(message)}" for message in exc.messages), file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bench run X --dry-run | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except RecordError as exc:  # a record written by a newer bench: nothing is wrong with the file
        print(f"error: {_paragraph(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a full disk: every file is written atomically, so nothing is left half-written
        print(f"error: {exc.strerror or exc} ({exc.filename or 'no file named'}). Files already written are "
              f"whole; free the space or fix the permission and run the same command again.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: finished tasks are in the store; run the same command again to resume.",
              file=sys.stderr)
        return 130


def command() -> None:
    """The `bench` command: `main`, then exit with the objects left frozen out of the garbage collector, so the
    interpreter's last collections skip them (they took a quarter of a second after a 100,000-record report)."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    command()
