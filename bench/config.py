"""Site defaults (`bench.yaml`) and suites (`suites/*.yaml`): typed, validated, with errors a person can act on.

Every error names the file, the line and the key, says what is wrong and how to fix it, and
suggests the right word for a misspelt method, dataset or architecture. Whatever a run would refuse
(or silently misuse) is refused here, so `bench validate` passing means the suite can run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from bench import data, nets
from bench.methods import MethodSpec, Params, get_method
from bench.methods.presets import preset_files, resolve_params
from bench.methods.registry import PluginError, UnknownMethod, load_entry
from bench.methods.specs import Momentum, NonNegativeFinite, PositiveFinite, Seed
from bench.names import FAIRNESS_COLUMNS, FONT_NAMES, VIEW_NAMES, did_you_mean, is_safe_name, shorten
from bench.recipes import PRESETS, EvalRecipe
from bench.yamlio import Path_, YamlError, line_of, load_yaml, parse_value


class ConfigError(Exception):
    """Configuration mistakes, each a one-paragraph message (`messages`: every mistake found in a file, so one
    `bench validate` lists them all); the CLI prints them without a traceback."""

    def __init__(self, *messages: str):
        super().__init__("\n".join(messages))
        self.messages = messages


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ResourcesSchema(_Schema):
    """What one SLURM job asks for; each key is one sbatch option. Unset keys take the cluster's default."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus_per_task: int | None = Field(default=None, ge=0)
    cpus_per_task: int | None = Field(default=None, gt=0)
    mem_gb: PositiveFinite | None = None
    time: int | str | None = None  # minutes, or SLURM's "HH:MM:SS" / "D-HH:MM:SS" (quoted in YAML)
    array_parallelism: int | None = Field(default=None, gt=0)
    setup: list[str] | None = None  # shell lines before the task runs, e.g. `module load cuda`
    sbatch: dict[str, str | int] | None = None  # any other sbatch option, e.g. {constraint: a100}


class ProfileSchema(ResourcesSchema):
    """A named SLURM executor profile: resources for every job, optionally different per stage."""

    max_requeues: int = Field(default=3, ge=0)  # times a timed-out job is requeued from its checkpoint
    signal_delay_s: int = Field(default=90, gt=0)  # warning before the time limit, to save a checkpoint
    expert: ResourcesSchema | None = None
    distill: ResourcesSchema | None = None
    evaluate: ResourcesSchema | None = None


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")


def check_device(name: str) -> str:
    """`name` if it names a device bench can train on, else ValueError. Whether this machine has it is
    known only to torch, which configuration does not import: `bench run` asks it before a local run."""
    if not _DEVICE.fullmatch(name):
        raise ValueError(f"unknown device {shorten(name)!r}; write auto (cuda where there is one, else cpu), cpu, "
                         f"cuda, cuda:N (N: the GPU's index) or mps")
    return name


def _path_text(text: str) -> str:
    """A path as written; a NUL in it would make every file operation fail (with ValueError, not OSError)."""
    if "\0" in text:
        raise ValueError("a path cannot hold a NUL character")
    return text


PathText = Annotated[str, AfterValidator(_path_text)]


class WandbSchema(_Schema):
    """`tracking: {wandb: ...}`: Weights & Biases, one run per record (bench.tracking)."""

    project: Annotated[str, Field(min_length=1)]
    entity: str | None = None  # None: the logged-in user's default entity
    mode: Literal["online", "offline", "disabled"] | None = None  # None: W&B's own (WANDB_MODE, `wandb offline`)


class MlflowSchema(_Schema):
    """`tracking: {mlflow: ...}`: MLflow, one run per record (bench.tracking)."""

    uri: Annotated[PathText, Field(min_length=1)]  # a tracking URI (http://..., file:///..., databricks) or a folder
    experiment: Annotated[str, Field(min_length=1)] = "bench"


class TrackingSchema(_Schema):
    """Where every record written is also logged; each tracker is an optional extra (`pip install 'bench[wandb]'`)."""

    wandb: WandbSchema | None = None
    mlflow: MlflowSchema | None = None


class SiteSchema(_Schema):
    data_root: PathText = "data"
    store: PathText = "results"
    reports: PathText = "reports"
    device: Annotated[str, AfterValidator(check_device)] = "auto"
    executor: Literal["local", "slurm"] = "local"
    profile: str | None = None
    checkpoint_every: int = Field(default=100, gt=0)
    workers: int | None = Field(default=None, gt=0, le=1024)  # local processes; None: one per GPU, or per 2 cores
    threads: int | None = Field(default=None, gt=0, le=1024)  # torch's per process; None: cores // workers
    profiles: dict[str, ProfileSchema] = Field(default_factory=dict)
    tracking: TrackingSchema = Field(default_factory=TrackingSchema)


class EvalSchema(_Schema):
    preset: str | None = None
    epochs: int | None = Field(default=None, gt=0)
    lr: PositiveFinite | Literal["learned"] | None = None
    momentum: Momentum | None = None
    weight_decay: NonNegativeFinite | None = None
    batch_size: int | None = Field(default=None, gt=0)
    decay_factor: PositiveFinite | None = None
    augment: Literal["dsa", "none"] | None = None
    test_batch_size: int | None = Field(default=None, gt=0)
    decay_at: list[float] | None = None  # fractions of the epochs: IDC's multi-step schedule (EvalRecipe checks)
    extra_epoch: bool | None = None
    dsa_mode: Literal["single", "idc"] | None = None
    cutmix_prob: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    cutmix_beta: PositiveFinite | None = None
    batch_seeds: bool | None = None  # train a cell's seeds together (bench.batched); default: on CUDA
    labels: Literal["hard", "soft", "teacher"] | None = None  # the label regime (bench.recipes.LabelRegime)
    temperature: PositiveFinite | None = None  # of the soft/teacher loss (default: the regime's, TEMPERATURES)
    teacher_arch: str | None = None  # labels: teacher: the teacher's architecture (default: the evaluation one)
    teacher_epochs: int | None = Field(default=None, gt=0)  # labels: teacher: its epochs on the full training set


class MethodSchema(_Schema):
    name: str | None = None
    entry: str | None = None
    label: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    eval: EvalSchema | None = None


class FairnessSchema(_Schema):
    """`report: {fairness: {...}}`: DD-Ranking's weights (its defaults, 0.5 each, on its leaderboard)."""

    lrs_weight: float = Field(default=0.5, ge=0, le=1)  # w in LRS's alpha = w IOR - (1 - w) HLR
    ars_weight: float = Field(default=0.5, ge=0, le=1)  # gamma in ARS's beta = gamma IOR_aug + (1 - gamma) IOR_no-aug
    columns: list[Literal[FAIRNESS_COLUMNS]] = Field(default_factory=list)  # scores the paper table shows per cell


class ReportSchema(_Schema):
    views: list[str] | None = None
    compare_to: str | list[str] | None = None
    tolerance: PositiveFinite = 1.0
    match: dict[str, str] = Field(default_factory=dict)
    ablation: list[str] | None = None
    significance: float = Field(default=0.05, gt=0, lt=1)
    paper_runs: int = Field(default=5, ge=2, le=1000)
    font: Literal[FONT_NAMES] = "cm"  # the figures' typeface (bench.report.plots.FONTS)
    fairness: bool | FairnessSchema = False  # true or a mapping: plan the runs DD-Ranking's scores need


class WholeSchema(_Schema):
    """`whole_dataset:` as a mapping: the Whole Dataset row with fewer epochs or seeds than the suite's."""

    epochs: int | None = Field(default=None, gt=0)
    seeds: list[Seed] | None = Field(default=None, min_length=1)


class SuiteSchema(_Schema):
    name: str | None = None
    description: str = ""
    datasets: list[str] = Field(min_length=1)
    ipc: list[int] = Field(min_length=1)
    eval_archs: list[str] = Field(min_length=1)
    distill_arch: str = "ConvNet"
    methods: list[MethodSchema] = Field(min_length=1)
    seeds: list[Seed] = Field(min_length=1)
    distill_seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    eval: EvalSchema = Field(default_factory=EvalSchema)
    profile: str | None = None  # the bench.yaml SLURM profile this suite's jobs use
    whole_dataset: bool | WholeSchema = False
    report: ReportSchema = Field(default_factory=ReportSchema)
    deviations: dict[str, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)


@dataclass(frozen=True)
class Site:
    """Where things live on this machine; relative paths are relative to bench.yaml's folder.

    Executor profiles are kept as validated structure; the SLURM executor reads their meaning
    (`bench.executors.profiles`), pointing at this file's lines through `error`."""

    path: Path | None
    data_root: Path
    store: Path
    reports: Path
    device: str
    executor: str
    profile: str | None
    checkpoint_every: int
    profiles: dict[str, ProfileSchema]
    workers: int | None = None
    threads: int | None = None
    tracking: TrackingSchema = field(default_factory=TrackingSchema)  # MLflow's folder as a file: URI
    lines: dict = field(default_factory=dict, compare=False, repr=False)

    def error(self, at: Path_, problem: str) -> ConfigError:
        """A ConfigError about the key at `at` in this bench.yaml, with its line."""
        return ConfigError(_message(self.path, self.lines, at, problem))

    def check_writable(self, key: Literal["store", "reports"]) -> None:
        """Refuse a store or reports folder bench cannot write (a file, /proc, a read-only mount) before any
        work starts, not when the first result is saved. Checked by the commands that write there (and
        `bench validate`), so reading a read-only store stays possible. Creates nothing."""
        path = getattr(self, key)
        existing = next(p for p in (path, *path.parents) if os.path.lexists(p))
        if not existing.is_dir():
            raise self.error((key,), f"'{existing}' is not a folder, so {key} '{path}' cannot be created there. "
                                     f"Point `{key}:` at a folder (one that does not exist yet is created).")
        try:
            tempfile.TemporaryFile(dir=existing).close()
        except OSError as exc:
            raise self.error((key,), f"bench cannot create files in '{existing}' ({exc.strerror}), so it cannot "
                                     f"write {key} '{path}'. Point `{key}:` at a folder you can write to.") from None


@dataclass(frozen=True)
class MethodEntry:
    """A method of a suite. Its settings depend on the cell: preset (dataset, IPC) <- suite params."""

    label: str
    cls: type[MethodSpec]
    user_params: dict[str, Any]
    preset: str
    recipe: EvalRecipe
    origin: str = ""  # where the suite declares it ("file, line N, key 'methods[i]'"), for later messages

    def params_for(self, dataset: str, ipc: int) -> Params:
        return resolve_params(self.cls, dataset, ipc, self.user_params)


@dataclass(frozen=True)
class ReportSpec:
    """The suite's `report:` key: which views to render, and which paper tables to compare with."""

    views: tuple[str, ...] | None = None  # None: every view that applies to the suite
    compare_to: tuple[str, ...] = ()  # bench.reference paper keys
    tolerance: float = 1.0  # accuracy points a reproduction may differ from the reported value
    match: dict[str, str] = field(default_factory=dict)  # suite method label -> method name in the paper
    ablation: tuple[str, ...] | None = None  # method labels, baseline first
    significance: float = 0.05  # level of the Welch t-tests behind bold / tied cells and the Δ intervals
    paper_runs: int = 5  # runs assumed behind a paper's printed std
    font: str = "cm"  # the figures' typeface: cm (Computer Modern, as report.tex), times, or sans
    fairness: bool = False  # `report: {fairness: ...}` set: add the random and whole-dataset runs the scores need
    lrs_weight: float = 0.5  # DD-Ranking's w (LRS) and gamma (ARS), `report: {fairness: {lrs_weight, ars_weight}}`
    ars_weight: float = 0.5
    fairness_columns: tuple[str, ...] = ()  # `report: {fairness: {columns}}`: scores beside each paper-table cell


@dataclass(frozen=True)
class WholeDataset:
    """The Whole Dataset row: each eval arch trained on the full training set with the suite's recipe
    and seeds, or, as a named deviation to save time, with fewer `epochs` or other `seeds`."""

    epochs: int | None = None
    seeds: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    datasets: tuple[str, ...]
    ipcs: tuple[int, ...]
    eval_archs: tuple[str, ...]
    distill_arch: str
    methods: tuple[MethodEntry, ...]
    seeds: tuple[int, ...]
    distill_seeds: tuple[int, ...]
    profile: str | None = None
    whole_dataset: WholeDataset | None = None  # also train each eval arch on the full training set
    report: ReportSpec = field(default_factory=ReportSpec)
    deviations: tuple[tuple[str, str], ...] = ()  # (name, why): settings that depart from the paper's text
    overrides: tuple[str, ...] = ()  # `key=value` from the command line, as typed, applied over the file
    resolved: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the file + overrides


def load_site(path: Path | None = None) -> Site:
    """Read bench.yaml (the given path, else ./bench.yaml if present, else built-in defaults)."""
    if path is None and Path("bench.yaml").exists():
        path = Path("bench.yaml")
    raw, lines = _read(path) if path is not None else ({}, {})
    schema = _validate(SiteSchema, raw, path, lines, ())
    if schema.profile is not None and schema.profile not in schema.profiles:
        raise ConfigError(_message(path, lines, ("profile",), _unknown_profile(schema.profile, schema.profiles,
                                                                                path)))
    base = path.parent if path is not None else Path(".")
    return Site(path=path, data_root=base / schema.data_root, store=base / schema.store,
                reports=base / schema.reports, device=schema.device, executor=schema.executor,
                profile=schema.profile, checkpoint_every=schema.checkpoint_every, profiles=schema.profiles,
                workers=schema.workers, threads=schema.threads, tracking=_tracking(schema.tracking, base),
                lines=lines)


_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _tracking(tracking: TrackingSchema, base: Path) -> TrackingSchema:
    """`tracking:` with an MLflow folder as an absolute file: URI: relative to bench.yaml's folder like `store:`,
    and the same folder for a worker or a SLURM job that starts elsewhere."""
    mlflow = tracking.mlflow
    if mlflow is None or _URI.match(mlflow.uri) or mlflow.uri in ("databricks", "databricks-uc"):
        return tracking
    uri = (base / mlflow.uri).resolve().as_uri()
    return tracking.model_copy(update={"mlflow": mlflow.model_copy(update={"uri": uri})})


def _unknown_profile(name: str, profiles: typing.Iterable[str], site_path: Path | None) -> str:
    where = site_path or "the site defaults (no bench.yaml)"
    if not profiles:
        return (f"no executor profile '{shorten(name)}': {where} defines none (`profiles:`). Define it there, or "
                f"remove this key.")
    return (f"unknown executor profile '{shorten(name)}'.{did_you_mean(name, profiles)} The profiles {where} "
            f"defines: {', '.join(profiles)}.")


def load_suite(path: Path, site: Site | None = None, overrides: typing.Sequence[str] = ()) -> Suite:
    """Read and fully validate a suite: structure, types, names, IPC against the data sets, and (given the
    site it runs with) its executor profile. `overrides` (`key=value` from the command line) change the file's
    values first and are validated as the file is, their errors naming the override. Every mistake is reported
    at once: the schema's, else those of the checks below (each check that fails is skipped by the ones that
    depend on it, so one typo makes one error)."""
    raw, lines = _read(path)
    applied, errors = [], []
    for text in overrides:
        try:
            applied.append(_override(raw, lines, path, text))
        except ConfigError as exc:
            errors.extend(exc.messages)
    try:
        s = _validate(SuiteSchema, raw, path, lines, ())
    except ConfigError as exc:
        raise ConfigError(*errors, *exc.messages) from None

    located: dict[str, Path_] = {}  # message -> the key it is about

    def fail(at: Path_, problem: str) -> typing.NoReturn:
        located[message := _message(path, lines, at, problem)] = at
        raise ConfigError(message)

    @contextlib.contextmanager
    def check() -> typing.Iterator[None]:
        """One independent check: its error is kept and the checks after it still run."""
        try:
            yield
        except ConfigError as exc:
            errors.extend(exc.messages)

    suite_name = s.name if s.name is not None else path.stem
    if overrides and ("name",) not in (at for at, _ in applied):  # not to be mistaken for the file's results
        suite_name = f"{suite_name[:80]}-override-{_overrides_hash(applied)}"
    with check():
        if not is_safe_name(suite_name):
            fail(("name",) if s.name is not None else (),
                 f"the suite name {shorten(suite_name)!r} cannot name its folders (reports/<name>/, the store's "
                 f"slurm/<name>/): use up to 100 letters, digits, '-', '_' and '.', starting with a letter, digit or "
                 f"'_'." + (" The suite has no `name:`, so its file name is used: add a `name:` key or rename the "
                            "file." if s.name is None else ""))
    lists = {("datasets",): s.datasets, ("ipc",): s.ipc, ("eval_archs",): s.eval_archs, ("seeds",): s.seeds,
             ("distill_seeds",): s.distill_seeds, ("report", "views"): s.report.views or [],
             ("report", "ablation"): s.report.ablation or [],
             ("report", "fairness", "columns"): getattr(s.report.fairness, "columns", None) or [],
             ("whole_dataset", "seeds"): getattr(s.whole_dataset, "seeds", None) or []}
    for at, values in lists.items():
        with check():
            if (repeat := _repeat(values)) is not None:
                first, again = repeat
                fail(at + (again,), f"{_show(values[again])} is listed twice (entries {first + 1} and {again + 1}). "
                                    f"List each value once.")
    with check():
        if site is not None and s.profile is not None and s.profile not in site.profiles:
            fail(("profile",), _unknown_profile(s.profile, site.profiles, site.path))

    for i, name in enumerate(s.datasets):
        with check():
            if name not in data.DATASETS:
                fail(("datasets", i), unknown_name("data set", name, data.DATASETS, "bench list datasets"))
    archs = [(("eval_archs", i), a) for i, a in enumerate(s.eval_archs)] + [(("distill_arch",), s.distill_arch)]
    for at, arch in archs:
        with check():
            if arch not in nets.NETWORKS:
                fail(at, unknown_name("architecture", arch, nets.NETWORKS, "bench list archs"))
    known = [name for name in s.datasets if name in data.DATASETS]  # the checks below need the data set's facts
    for i, ipc in enumerate(s.ipc):
        with check():
            if ipc <= 0:
                fail(("ipc", i), f"IPC must be a positive number of images per class, got {ipc}.")
            for name in known:
                smallest = data.DATASETS[name].min_class_train
                if ipc > smallest:
                    fail(("ipc", i), f"IPC {ipc} is larger than the smallest class of '{name}' ({smallest} training "
                                     f"images), so there are not enough real images to select or initialise from. "
                                     f"Use an IPC of at most {smallest}.")
    for name in known:
        spec = data.DATASETS[name]
        for at, arch in archs:
            with check():
                if arch in nets.NETWORKS:
                    try:
                        nets.check_input(arch, spec.channels, spec.num_classes, spec.image_size)
                    except nets.IncompatibleInput as exc:
                        fail(at, f"{exc} Pick another architecture for data set '{name}'.")

    methods, labels = [], {}
    for i, m in enumerate(s.methods):
        with check():
            if (label := m.label or m.name) is not None:  # a method that fails below is still a label the report
                labels.setdefault(label, i)               # may name: no second error for one mistake
            cls = _method_class(m, ("methods", i), fail)
            preset, recipe = _recipe(cls, s.eval, m.eval, ("methods", i), fail)
            entry = MethodEntry(m.label or cls.name, cls, m.params, preset, recipe,
                                _message(path, lines, ("methods", i), "").rstrip(": "))
            for dataset in known:
                for ipc in s.ipc:
                    try:
                        params = entry.params_for(dataset, ipc)
                    except ValidationError as exc:  # every error of the first cell that has any
                        found = [_message(path, lines, ("methods", i, "params") + loc, problem + (
                            "" if not loc or loc[0] in m.params else
                            f" This value comes from {preset_files(cls.presets)} for {dataset} at IPC {ipc}; set "
                            f"it under `params:` to override.")) for loc, problem in _errors(cls.Params, exc)]
                        raise ConfigError(*found) from None
                    if (problem := cls.check_recipe(params, recipe)) is not None:
                        fail(("methods", i), problem)
            label = entry.label
            if labels.get(label, i) != i:
                fail(("methods", i), f"two method entries are both called '{label}' (entries {labels[label] + 1} "
                                     f"and {i + 1}). Give one of them a distinct `label:`.")
            labels[label] = i
            methods.append(entry)

    report = _report(s.report, labels, fail, check)
    if errors:  # a suite-wide mistake found once per method entry (its `eval:`) is one error: one per key
        first: dict[Any, str] = {}
        for message in errors:
            first.setdefault(located.get(message, message), message)
        raise ConfigError(*first.values())
    description = s.description
    if applied:
        description = (f"{description} " if description else "") + (
            f"Overrides from the command line, applied over {path}: {', '.join(overrides)}.")
    resolved = {**raw, "name": suite_name, "description": description}
    return Suite(name=suite_name, path=path, description=description, datasets=tuple(s.datasets),
                 ipcs=tuple(s.ipc), eval_archs=tuple(s.eval_archs), distill_arch=s.distill_arch,
                 methods=tuple(methods), seeds=tuple(s.seeds), distill_seeds=tuple(s.distill_seeds),
                 profile=s.profile, whole_dataset=_whole(s.whole_dataset),
                 report=report, deviations=tuple(s.deviations.items()), overrides=tuple(overrides),
                 resolved=resolved)


def _override(raw: dict, lines: dict, path: Path, text: str) -> tuple[Path_, Any]:
    """Apply the command-line override `text` (`eval.epochs=50`, `methods.0.params.iterations=20`,
    `'ipc=[1]'`) to the file's values `raw`, in place, and mark in `lines` that the values under its key come
    from it, so errors there name the override, not a line of the file. Returns (key path, value)."""
    origin = f"override {shorten(text)!r}"
    key, sep, value_text = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"{path}, {origin}: write an override as KEY=VALUE with a dotted key, e.g. "
                          f"eval.epochs=50, 'ipc=[1, 10]' or methods.0.params.iterations=20.")
    try:
        value = parse_value(value_text)
    except YamlError as exc:
        raise ConfigError(f"{path}, {origin}: {exc}") from None
    at: list[str | int] = []
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{path}, {origin}: '{'.'.join(map(str, at))}' is a list of {len(node)}, so "
                                  f"'{part}' names no entry: use an index from 0 to {len(node) - 1}, e.g. "
                                  f"{'.'.join(map(str, at))}.0.")
            index: str | int = int(part)
        elif isinstance(node, dict):
            index = part
            if not last and node.get(part) is None:
                node[part] = {}  # a key the file leaves out (`eval.epochs` with no `eval:`); the schema checks it
                lines[tuple(at) + (part,)] = origin
        else:
            raise ConfigError(f"{path}, {origin}: '{'.'.join(map(str, at))}' is a single value, so it has no key "
                              f"'{part}'. Set {'.'.join(map(str, at))}=VALUE instead.")
        at.append(index)
        if last:
            node[index] = value
        else:
            node = node[index]
    for known in [k for k in lines if k[:len(at)] == tuple(at)]:
        del lines[known]  # the file's lines under this key no longer hold its values
    lines[tuple(at)] = origin
    return tuple(at), value


def _overrides_hash(applied: list[tuple[Path_, Any]]) -> str:
    """A short hash of what the overrides set: the same overrides give the same suite name in any order, unless
    one key lies inside another's, where order decides."""
    nested = any(a != b and a[:len(b)] == b for a, _ in applied for b, _ in applied)
    final = list({at: value for at, value in applied}.items())
    canonical = json.dumps(final if nested else sorted(final, key=lambda kv: json.dumps(kv[0])), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def _report(r: ReportSchema, labels: dict[str, int], fail, check) -> ReportSpec:
    """Check the `report:` key's names (views, papers, method labels) with did-you-mean errors, each name a
    `check` of its own."""
    for i, view in enumerate(r.views or []):
        with check():
            if view not in VIEW_NAMES:
                fail(("report", "views", i), f"unknown view '{view}'.{did_you_mean(view, VIEW_NAMES)} Views: "
                                             f"{', '.join(VIEW_NAMES)}.")
    papers = [r.compare_to] if isinstance(r.compare_to, str) else list(r.compare_to or [])
    if papers:
        from bench.reference import PAPERS
        for i, key in enumerate(papers):
            with check():
                if key not in PAPERS:
                    at = ("report", "compare_to") + ((i,) if isinstance(r.compare_to, list) else ())
                    fail(at, f"unknown paper '{key}'.{did_you_mean(key, PAPERS)} Papers with transcribed tables "
                             f"(bench/reference/): {', '.join(PAPERS)}.")
    used = [(("report", "match", label), label) for label in r.match]
    used += [(("report", "ablation", i), label) for i, label in enumerate(r.ablation or [])]
    for at, label in used:
        with check():
            if label not in labels:
                fail(at, f"no method entry is labelled '{label}'.{did_you_mean(label, labels)} Labels: "
                         f"{', '.join(labels)}.")
    if r.match:
        from bench.reference import PAPERS
        published = sorted({v.method for p in papers if p in PAPERS for v in PAPERS[p].values()})
        for label, name in r.match.items():
            with check():
                if name not in published:
                    fail(("report", "match", label), f"no table of {', '.join(papers) or 'the papers in compare_to'}"
                                                     f" has a method '{name}'.{did_you_mean(name, published)}")
    fairness = r.fairness if isinstance(r.fairness, FairnessSchema) else FairnessSchema()
    return ReportSpec(views=tuple(r.views) if r.views is not None else None, compare_to=tuple(papers),
                      tolerance=r.tolerance, match=dict(r.match),
                      ablation=tuple(r.ablation) if r.ablation is not None else None,
                      significance=r.significance, paper_runs=r.paper_runs, font=r.font,
                      fairness=r.fairness is not False, lrs_weight=fairness.lrs_weight,
                      ars_weight=fairness.ars_weight, fairness_columns=tuple(fairness.columns))


def _repeat(values: list) -> tuple[int, int] | None:
    """The indices of the first value listed twice, or None."""
    first: dict[Any, int] = {}
    for j, value in enumerate(values):
        if value in first:
            return first[value], j
        first[value] = j
    return None


def _whole(schema: bool | WholeSchema) -> WholeDataset | None:
    if isinstance(schema, bool):
        return WholeDataset() if schema else None
    return WholeDataset(schema.epochs, tuple(schema.seeds) if schema.seeds else None)


def _recipe(cls: type[MethodSpec], suite_eval: EvalSchema, method_eval: EvalSchema | None, at: Path_,
            fail) -> tuple[str, EvalRecipe]:
    """The evaluation recipe of the method entry at `at`: its preset (the method's own default, or the one
    the suite or the method entry names), then the suite's `eval:` fields, then the entry's own `eval:` fields."""
    layers = [(at + ("eval",), method_eval or EvalSchema()), (("eval",), suite_eval)]  # most specific first

    def set_at(key: str) -> Path_:
        """Where the value of `key` that applies is written (the method entry where nothing sets it)."""
        return next((where + (key,) for where, layer in layers if getattr(layer, key) is not None), at)

    preset = next((layer.preset for _, layer in layers if layer.preset is not None), cls.eval_preset)
    if preset not in PRESETS:
        fail(set_at("preset"), unknown_name("evaluation preset", preset, PRESETS, "bench list presets"))
    recipe, fields = PRESETS[preset], {}
    for where, layer in reversed(layers):  # the preset, then the fields of both layers at once: a regime's fields
        fields.update(layer.model_dump(exclude={"preset"}, exclude_none=True))  # set by the suite apply to the
        try:                                                                      # entries that choose the regime
            recipe = PRESETS[preset].with_overrides(fields)
        except ValueError as exc:  # EvalRecipe's own checks
            fail(where, f"{exc}.")
    for key in ("temperature", "teacher_arch", "teacher_epochs"):  # the suite's `eval:` may set them for some entries
        if getattr(recipe, key) is None and getattr(layers[0][1], key) is not None:
            fail(set_at(key), f"`{key}` has no effect under `labels: {recipe.labels}` ("
                              f"{'teacher only' if key != 'temperature' else 'soft and teacher only'}); remove it "
                              f"or set `labels:` to the regime it is for.")
    if recipe.teacher_arch is not None and recipe.teacher_arch not in nets.NETWORKS:
        fail(set_at("teacher_arch"), unknown_name("architecture", recipe.teacher_arch, nets.NETWORKS,
                                                  "bench list archs"))
    if recipe.lr == "learned" and not cls.learns_lr:
        from_lr = any(layer.lr is not None for _, layer in layers)
        fail(set_at("lr") if from_lr else set_at("preset"),
             f"'{cls.name}' stores no learned lr with its sets, so it cannot be evaluated with "
             f"{'`lr: learned`' if from_lr else f'preset {preset!r}, which trains with the learned lr'}. Use a "
             f"preset with a numeric lr (e.g. standard) or set a number as `lr:` under this method's `eval:`.")
    return preset, recipe


def _method_class(m: MethodSchema, at: Path_, fail) -> type[MethodSpec]:
    """The class a method entry names: a registered `name`, or a plugin's dotted `entry` path."""
    if m.entry is not None:
        try:
            cls = load_entry(m.entry)
        except PluginError as exc:
            fail(at + ("entry",), str(exc))
        if m.name is not None and m.name != cls.name:
            fail(at + ("name",), f"'{m.entry}' is the method '{cls.name}', not '{m.name}'. Drop `name:` or make "
                                 f"them agree.")
        return cls
    if m.name is None:
        fail(at, "a method entry needs `name:` (a built-in or installed method) or `entry: module:Class`.")
    try:
        return get_method(m.name)
    except UnknownMethod as exc:
        fail(at + ("name",), f"{exc} (`bench list methods` shows them with their parameters.)")
    except PluginError as exc:  # an installed plugin's entry point, loaded to look the name up
        fail(at + ("name",), str(exc))


def _read(path: Path) -> tuple[Any, dict]:
    try:
        raw, lines = load_yaml(path)
    except YamlError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}, line 1: the file must be a mapping of keys to values, got "
                          f"{type(raw).__name__}. See suites/demo.yaml for the layout.")
    return raw, lines


def _validate(schema: type[BaseModel], raw: Any, path: Path | None, lines: dict, prefix: Path_) -> Any:
    try:
        return schema.model_validate(raw)
    except ValidationError as exc:
        found = sorted(_errors(schema, exc), key=lambda e: _line_order(line_of(lines, prefix + e[0])))
        raise ConfigError(*(_message(path, lines, prefix + loc, problem) for loc, problem in found)) from None


def _line_order(line: int | str | None) -> int:
    """Errors in the order a reader meets them: the command line's overrides (`line` is a str), then the file."""
    return line if isinstance(line, int) else -1


def _errors(schema: type[BaseModel], exc: ValidationError) -> list[tuple[Path_, str]]:
    """Every error to show, one per mistake, as (key path in the file, sentence). A misspelt key also makes the
    right one "missing": a missing key is not shown where an unknown key beside it is its misspelling. Where a
    value may have several shapes (`whole_dataset: true` or a mapping), pydantic reports each shape's error:
    only the deepest is shown (the shape the file used gets furthest), one per key."""
    found = [(err, _locate(schema, tuple(err["loc"]))[0]) for err in exc.errors()]
    unknown = [loc for err, loc in found if err["type"] == "extra_forbidden"]
    found = [(err, loc) for err, loc in found if err["type"] != "missing" or not any(
        u[:-1] == loc[:-1] and did_you_mean(str(u[-1]), [str(loc[-1])]) for u in unknown)]
    shown: dict[Path_, str] = {}
    missing: dict[Path_, list[str]] = {}  # the keys missing from one mapping are one mistake: one error
    repeated: dict[tuple, list[Path_]] = {}  # so is one mistake in several entries of a list (`methods: [dm, mtt]`)
    for err, loc in found:
        if err["type"] == "missing":
            missing.setdefault(loc[:-1], []).append(str(loc[-1]))
        elif loc not in shown and not any(other[:len(loc)] == loc and other != loc for _, other in found):
            same = repeated.setdefault((loc[:-1], err["type"]) if loc and isinstance(loc[-1], int) else loc, [])
            same.append(loc)
            if len(same) == 1:
                shown[loc] = _explain(err, loc, _locate(schema, tuple(err["loc"])[:-1])[1])
    for first, *others in repeated.values():
        if others:
            shown[first] += f" The same goes for {', '.join(repr(_key(loc)) for loc in others)}."
    for parent, keys in missing.items():
        shown[parent + (keys[0],) if len(keys) == 1 else parent] = (
            f"required key '{keys[0]}' is missing: add it." if len(keys) == 1 else
            f"required keys {', '.join(repr(k) for k in keys)} are missing: add them.")
    return list(shown.items())


def _explain(err: dict, loc: Path_, parent: Any) -> str:
    """Turn one pydantic error at `loc` (inside `parent`, the annotation holding its key) into a sentence that
    says what to write instead."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx", {})
    if kind == "extra_forbidden":
        valid = sorted(parent.model_fields)
        return (f"unknown key '{shorten(str(loc[-1]))}'.{did_you_mean(str(loc[-1]), valid)} Valid keys here: "
                f"{', '.join(valid) or 'none (remove it)'}.")
    if kind == "invalid_key":
        return f"keys are names, and {_show(value)} is not one. Remove it, or quote it if it is a name."
    if kind == "missing":
        return f"required key '{loc[-1]}' is missing: add it."
    if kind == "value_error":  # a validator's own sentence
        return f"{ctx['error']}."
    if kind == "too_short" and isinstance(value, str):
        return "must not be empty, got ''."
    if kind == "too_short":
        return f"must list at least {ctx['min_length']} value(s), got {_show(value)}."
    if kind == "finite_number":
        return f"must be a finite number, got {_show(value)}."
    if kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        bound = format(ctx[key], ".4g") if isinstance(ctx[key], float) else ctx[key]
        return f"must be {words} {bound}, got {_show(value)}."
    expected = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
                "string_type": "a string", "list_type": "a list", "dict_type": "a mapping",
                "model_type": "a mapping"}.get(kind)
    if expected:
        got = f"{_show(value)} ({type(value).__name__})"
        hint = ""
        if isinstance(value, str) and ":" in value and value.replace(":", "").isdigit():
            hint = (" YAML 1.1 readers silently turn a value like this into a base-60 number; bench refuses "
                    "it. Write the number itself.")
        elif isinstance(value, str) and value.lower() in {"yes", "no", "on", "off", "y", "n"}:
            hint = " Write true or false."
        elif isinstance(value, str):
            hint = " Remove the quotes if you meant a number." if _is_number(value) else ""
        elif isinstance(value, float) and kind == "int_type":
            hint = " Write a whole number without a decimal point or exponent."
        return f"expected {expected}, got {got}.{hint}"
    return f"{err['msg']} (got {_show(value)})."


_BOUNDS = {"greater_than": ("greater than", "gt"), "greater_than_equal": ("at least", "ge"),
           "less_than": ("less than", "lt"), "less_than_equal": ("at most", "le")}


def _show(value: Any) -> str:
    return shorten(repr(value), 80)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _locate(schema: type[BaseModel], loc: tuple) -> tuple[Path_, Any]:
    """pydantic's error location as a key path in the file, and the annotation of the value found there.

    pydantic names the member of a union it tried (`('whole_dataset', 'WholeSchema', 'epochs')`) and marks
    a bad mapping key (`(..., key, '[key]')`); neither is a key of the file."""
    path: list = []
    current: Any = schema
    for part in loc:
        current = _unwrap(current)
        if part == "[key]":
            break
        if typing.get_origin(current) in (typing.Union, types.UnionType):  # `part` names a member
            current = _member(current, str(part))
            continue
        path.append(part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            current = current.model_fields[part].annotation if part in current.model_fields else Any
        elif typing.get_origin(current) in (list, dict):
            current = typing.get_args(current)[-1]
        else:
            current = Any
    return tuple(path), _unwrap(current)


def _member(union: Any, tag: str) -> Any:
    """The member of `union` that pydantic's location `tag` names: a model by its class name, a list or dict by
    its shape (`list[str]`); Any for a scalar, which holds no keys."""
    for member in typing.get_args(union):
        shape = getattr(typing.get_origin(member), "__name__", None)
        if getattr(member, "__name__", None) == tag or (shape and tag.startswith(f"{shape}[")):
            return member
    return Any


def _unwrap(annotation: Any) -> Any:
    """The annotation less `Annotated[...]` and `| None`."""
    if typing.get_origin(annotation) is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(annotation) if m is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation


def unknown_name(what: str, name: str, known: typing.Iterable[str], command: str) -> str:
    known = list(known)
    return (f"unknown {what} '{shorten(name)}'.{did_you_mean(name, known)} `{command}` shows the {len(known)} "
            f"known ones.")


def _message(path: Path | None, lines: dict, at: Path_, problem: str) -> str:
    where = str(path) if path is not None else "(built-in defaults)"
    line = line_of(lines, at)
    if isinstance(line, str):  # a command-line override set this key
        where += f", {line}"
    elif line is not None:
        where += f", line {line}"
    key = _key(at)
    return f"{where}, key '{key}': {problem}" if key else f"{where}: {problem}"


def _key(at: Path_) -> str:
    """A key path as the messages write it: `methods[0].params.iterations`."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{shorten(str(p))}" for p in at).lstrip(".")
