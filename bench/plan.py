"""Suite -> tasks. Cells (method x dataset x IPC x eval arch) expand into expert, distill and evaluate tasks.

Each task has a content-hashed key: the hash of everything that determines its output. One
distilled artifact (method, params, dataset, IPC, distill arch, distill seed) serves every
evaluation architecture and seed. A task whose output is already in the store is not run again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from functools import cache, cached_property
from typing import Any, Callable, TypeVar

from bench.config import ConfigError, MethodEntry, Suite, WholeDataset
from bench.experts import TEACHER_KIND, ExpertSpec
from bench.machine import no_cyclic_gc
from bench.methods.registry import get_method, source_hash
from bench.methods.specs import InputError, Params
from bench.recipes import PRESETS, EvalRecipe, hard_labels, without_augmentation
from bench.report.inputs import WHOLE, ExpectedCell, MethodOptions, ReportOptions

T = TypeVar("T")

# Bump when the evaluation loop changes what it computes: old records then no longer match.
EVAL_LOOP_VERSION = 1


# The JSON text a content key hashes: sorted keys (dict order does not matter), no spaces. One encoder for all:
# json.dumps builds a new one per call, which was a third of planning 100,000 tasks.
_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def _key_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def content_key(identity: dict[str, Any]) -> str:
    """A stable short hash of a JSON-able identity."""
    return _key_of(_canonical(identity))


@cache
def _recipe_identity(recipe: EvalRecipe) -> tuple[dict[str, Any], str]:
    """`recipe.as_dict()` and its canonical JSON, once per distinct recipe: a plan has ~100,000 evaluate tasks but
    few recipes, and encoding the recipe inside each task's identity was most of make_plan's time. Shared by the
    tasks' identities: never mutate it."""
    identity = recipe.as_dict()
    return identity, _canonical(identity)


@dataclass(frozen=True)
class Cell:
    """One entry of the results table: mean +- std over the seeds of its evaluate tasks."""

    method: str
    dataset: str
    ipc: int
    arch: str


@dataclass(frozen=True)
class ExpertTask:
    """A cached stage (e.g. MTT trajectories) shared by every distill task that declares the same spec."""

    spec: ExpertSpec
    identity: dict[str, Any] = field(compare=False, repr=False)
    key: str = field(compare=False)

    @classmethod
    def make(cls, spec: ExpertSpec) -> ExpertTask:
        identity = spec.identity()
        return cls(spec, identity, content_key(identity))

    def describe(self) -> str:
        """A Whole Dataset run reads "whole DATASET ARCH seed=S", any other stage "expert KIND DATASET ARCH"."""
        seed = f" seed={self.spec.params['seed']}" if "seed" in self.spec.params else ""
        what = "whole" if self.spec.kind == WHOLE_KIND else f"expert {self.spec.kind}"
        return f"{what} {self.spec.dataset} {self.spec.arch}{' zca' if self.spec.zca else ''}{seed}"


@dataclass(frozen=True)
class DistillTask:
    method: MethodEntry
    params: Params
    dataset: str
    ipc: int
    arch: str | None
    seed: int
    experts: tuple[ExpertTask, ...]
    identity: dict[str, Any] = field(compare=False, repr=False)
    key: str = field(compare=False)
    inputs: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)  # files read from outside

    @classmethod
    def make(cls, method: MethodEntry, dataset: str, ipc: int, arch: str, seeds: tuple[int, ...]
             ) -> list[DistillTask]:
        """The distillations of one cell, one per seed: its parameters, experts and key parameters are worked out
        once for all seeds (validating the parameters is most of the cost)."""
        params = method.params_for(dataset, ipc)
        spec = method.cls(params)
        arch_used = arch if method.cls.uses_network else None
        experts = tuple(ExpertTask.make(s) for s in planned(method, "experts", lambda: spec.experts(dataset, arch)))
        key_params = planned(method, "key_params", spec.key_params)
        source = source_hash(method.cls)
        tasks = []
        for seed in seeds:
            try:
                inputs = tuple(planned(method, "inputs", lambda: spec.inputs(dataset, ipc, seed)))
            except InputError as exc:
                raise ConfigError(f"{method.origin}: {method.label}: {exc}") from None
            identity = {"kind": "distill", "method": method.cls.name, "version": method.cls.version,
                        "params": key_params, "dataset": dataset, "ipc": ipc, "arch": arch_used, "seed": seed,
                        "experts": [e.key for e in experts]}
            if inputs:  # only then: the keys of methods that read no outside files stay as they were
                identity["inputs"] = [{"param": i["param"], "sha256": i["sha256"]} for i in inputs]
            if source is not None:
                identity["source"] = source
            tasks.append(cls(method, params, dataset, ipc, arch_used, seed, experts, identity, content_key(identity),
                             inputs))
        return tasks

    @property
    def zca(self) -> bool:
        """ZCA whitening is a data option that methods switch on with a `zca` parameter (MTT's presets)."""
        return bool(getattr(self.params, "zca", False))

    def describe(self) -> str:
        return f"distill {self.method.label} {self.dataset} ipc={self.ipc} seed={self.seed}"

    @property
    def lineage(self) -> str | None:
        """For a plugin method, the key of this task's identity less the hash of the plugin's code: the same
        for every version of the code, so the store can say which sets an older version made. None for a
        built-in method."""
        if "source" not in self.identity:
            return None
        return content_key({k: v for k, v in self.identity.items() if k != "source"})


@dataclass(frozen=True)
class EvalTask:
    distill: DistillTask
    arch: str
    recipe: EvalRecipe
    seed: int
    cell: Cell
    identity: dict[str, Any] = field(compare=False, repr=False)
    key: str = field(compare=False)
    teacher: ExpertTask | None = field(default=None, compare=False)  # `labels: teacher`: the network relabelling

    def describe(self) -> str:
        d = self.distill
        return f"evaluate {d.method.label} {d.dataset} ipc={d.ipc} {self.arch} seed={d.seed}/{self.seed}"


@dataclass(frozen=True)
class EvalGroup:
    """The evaluations of one distilled set on one architecture with one recipe, one per seed: a cell's runs of
    one of its distillations. Planned as keys; its `EvalTask`s are made when asked for (`tasks`): a report needs
    only the keys, and making 100,000 task objects was half of planning its suite."""

    distill: DistillTask
    arch: str
    recipe: EvalRecipe
    seeds: tuple[int, ...]
    cell: Cell
    identity: dict[str, Any] = field(compare=False, repr=False)  # each task's, less its "seed"
    keys: tuple[str, ...] = field(compare=False)  # one per seed
    teacher: ExpertTask | None = field(default=None, compare=False)

    @classmethod
    def make(cls, distill: DistillTask, arch: str, recipe: EvalRecipe, seeds: tuple[int, ...], cell: Cell
             ) -> EvalGroup:
        """Each key is `content_key(identity)`, computed from one JSON text per group with the recipe (encoded once
        per recipe) and each seed put in place of a 0: a string value cannot contain '"seed":0' unescaped, so the
        text holds each exactly once, and "recipe" sorts before "seed". Encoding each of a plan's 100,000
        identities whole was most of its time."""
        recipe_identity, recipe_json = _recipe_identity(recipe)
        identity = {"kind": "evaluate", "artifact": distill.key, "arch": arch, "recipe": 0, "seed": 0,
                    "loop_version": EVAL_LOOP_VERSION}
        teacher = teacher_task(distill.dataset, arch, recipe, distill.zca) if recipe.labels == "teacher" else None
        if teacher is not None:  # only then: the keys of hard- and soft-label evaluations stay as they were
            identity["teacher"] = teacher.key
        head, tail = _canonical(identity).split('"seed":0', 1)
        head = head.replace('"recipe":0', f'"recipe":{recipe_json}', 1)
        del identity["seed"]
        identity["recipe"] = recipe_identity
        keys = tuple(_key_of(f'{head}"seed":{seed:d}{tail}') for seed in seeds)
        return cls(distill, arch, recipe, seeds, cell, identity, keys, teacher)

    def tasks(self) -> list[EvalTask]:
        return [EvalTask(self.distill, self.arch, self.recipe, seed, self.cell, {**self.identity, "seed": seed}, key,
                         self.teacher) for seed, key in zip(self.seeds, self.keys)]


@dataclass(frozen=True)
class Refusal:
    """A cell of the grid that its method declines (`MethodSpec.check_cell`), and the method's reason."""

    label: str
    dataset: str
    ipc: int
    reason: str


@dataclass(frozen=True)
class Plan:
    suite: Suite
    cells: tuple[Cell, ...]
    experts: tuple[ExpertTask, ...]
    distill: tuple[DistillTask, ...]
    evaluations: tuple[EvalGroup, ...]
    # Whole-dataset stages (suite `whole_dataset: true`): one per data set x eval arch x recipe x seed.
    whole: tuple[ExpertTask, ...] = ()
    refused: tuple[Refusal, ...] = ()  # cells left out, with their method's reason

    @cached_property
    def evaluate(self) -> tuple[EvalTask, ...]:
        """Every evaluation task, in plan order (made on first use: see `EvalGroup`)."""
        return tuple(task for group in self.evaluations for task in group.tasks())


WHOLE_KIND = "whole_dataset"  # the stage that trains on the full training set (`bench.whole` computes it)


def whole_recipe(recipe: EvalRecipe) -> EvalRecipe:
    """The recipe the full training set is trained with: the method's own, except that a learned lr
    (MTT's, stored with its synthetic set) does not exist for real data, so the standard preset's lr is used,
    that real data has its hard labels (DD-Ranking's full-data accuracy is a hard-label one, whatever the
    regime)."""
    recipe = hard_labels(recipe)
    return replace(recipe, lr=PRESETS["standard"].lr) if recipe.lr == "learned" else recipe


def whole_spec(dataset: str, arch: str, recipe: EvalRecipe, seed: int) -> ExpertSpec:
    return ExpertSpec(WHOLE_KIND, dataset, arch, params={"recipe": whole_recipe(recipe).as_dict(), "seed": seed})


TEACHER_SEED = 0  # the teacher's initialisation and data order: one teacher per data set, architecture and recipe


@cache
def teacher_task(dataset: str, arch: str, recipe: EvalRecipe, zca: bool) -> ExpertTask:
    """The teacher stage of a `labels: teacher` evaluation on `arch`: the recipe's `teacher_arch` (else `arch`)
    trained on the full training set (ZCA-whitened like the set it relabels) with the evaluation's protocol under
    hard labels (`whole_recipe`) for `teacher_epochs`."""
    trained = whole_recipe(recipe).with_overrides({"epochs": recipe.teacher_epochs})
    return ExpertTask.make(ExpertSpec(TEACHER_KIND, dataset, recipe.teacher_arch or arch,
                                      params={"recipe": trained.as_dict(), "seed": TEACHER_SEED}, zca=zca))


def whole_dataset_recipe(suite: Suite, recipe: EvalRecipe) -> EvalRecipe:
    """A method's recipe as the suite's Whole Dataset row uses it (with its `epochs`, if it sets any)."""
    epochs = suite.whole_dataset.epochs if suite.whole_dataset else None
    return recipe.with_overrides({"epochs": epochs}) if epochs else recipe


def make_plan(suite: Suite) -> Plan:
    """Expand the suite's grid, in a stable order (datasets, methods, IPCs, then archs and seeds).

    Cells a method declines are left out and listed; a method entry that declines every cell is a
    configuration error. Every method entry whose planning fails is one error, all raised together. With
    `report: {fairness: ...}` the suite gets the runs DD-Ranking's scores need first (`with_fairness_runs`)."""
    with no_cyclic_gc():
        return _make_plan(with_fairness_runs(suite))


def _make_plan(suite: Suite) -> Plan:
    refused, errors = refusals(suite)
    failed: set[str] = set()  # origins of the method entries whose planning failed: one error each
    left_out = {(r.label, r.dataset, r.ipc) for r in refused}
    cells, distill, evaluations = [], {}, []
    for dataset in suite.datasets:
        for method in suite.methods:
            for ipc in suite.ipcs:
                if (method.label, dataset, ipc) in left_out or method.origin in failed:
                    continue
                row = [Cell(method.label, dataset, ipc, arch) for arch in suite.eval_archs]
                cells += row
                try:
                    tasks = DistillTask.make(method, dataset, ipc, suite.distill_arch, suite.distill_seeds)
                except ConfigError as exc:
                    errors.extend(exc.messages)
                    failed.add(method.origin)
                    continue
                for task in tasks:
                    distill.setdefault(task.key, task)
                    for cell in row:
                        evaluations.append(EvalGroup.make(task, cell.arch, method.recipe, suite.seeds, cell))
    experts = {e.key: e for d in distill.values() for e in d.experts}
    experts.update((g.teacher.key, g.teacher) for g in evaluations if g.teacher is not None)
    whole: dict[str, ExpertTask] = {}
    if (w := suite.whole_dataset) is not None:
        for dataset in suite.datasets:
            for arch in suite.eval_archs:
                for recipe in dict.fromkeys(whole_dataset_recipe(suite, m.recipe) for m in suite.methods):
                    for seed in w.seeds or suite.seeds:
                        task = ExpertTask.make(whole_spec(dataset, arch, recipe, seed))
                        whole.setdefault(task.key, task)
    if errors:
        raise ConfigError(*errors)
    return Plan(suite, tuple(cells), tuple(experts.values()), tuple(distill.values()), tuple(evaluations),
                tuple(whole.values()), refused)


def planned(method: MethodEntry, hook: str, call: Callable[[], T]) -> T:
    """A method's own planning code (`check_cell`, `experts`), run for the plan: where a plugin's raises, one
    paragraph naming the method and its module, not a traceback."""
    try:
        return call()
    except (ConfigError, InputError):
        raise
    except Exception as exc:  # noqa: BLE001 - anything a plugin's code raises
        raise ConfigError(f"{method.origin}: method '{method.cls.name}' ({method.cls.__module__}) raised "
                          f"{type(exc).__name__} in its {hook}() while the suite was planned: {exc}. Fix the "
                          f"method; nothing has run.") from None


def refusals(suite: Suite) -> tuple[tuple[Refusal, ...], list[str]]:
    """The cells each method entry declines, with its reason; and an error for each entry that declines every
    cell or whose `check_cell` fails (each starting with the entry's `origin`)."""
    found, errors = [], []
    for m in suite.methods:
        try:
            own = [Refusal(m.label, dataset, ipc, reason) for dataset in suite.datasets for ipc in suite.ipcs
                   if (reason := planned(m, "check_cell", lambda: m.cls.check_cell(
                       dataset, ipc, m.params_for(dataset, ipc))) or _no_soft_labels(m, dataset, ipc)) is not None]
        except ConfigError as exc:
            errors.extend(exc.messages)
            continue
        if len(own) == len(suite.datasets) * len(suite.ipcs):
            errors.append(f"{m.origin}: '{m.cls.name}' refuses every cell of this suite: {own[0].reason}")
        found += own
    return tuple(found), errors


def _no_soft_labels(m: MethodEntry, dataset: str, ipc: int) -> str | None:
    """Why the entry's sets cannot be evaluated under `labels: soft` (they store no soft labels), or None.

    Refused at plan time rather than at every evaluation: the method says before it runs whether its sets will
    carry soft labels, and a `soft` cell without them has no meaning (training on one-hot targets would be the
    hard regime under another name)."""
    if m.recipe.labels != "soft" or m.cls.stores_soft_labels(m.params_for(dataset, ipc)):
        return None
    return (f"'{m.cls.name}' stores no soft labels with its sets, so `labels: soft` has nothing to train on; "
            f"evaluate it under `labels: hard` or `labels: teacher` (a teacher relabels its images), or give it "
            f"soft labels (import's `soft_labels:` file)")


def expected_cells(plan: Plan) -> list[ExpectedCell]:
    """What the suite's report shows, in order, with the keys of each row's records: every cell, then one
    Whole Dataset row per data set x eval arch x recipe (named after the first method evaluated with the
    recipe when the suite's methods use several)."""
    keys: dict[Cell, list[str]] = {c: [] for c in plan.cells}
    for group in plan.evaluations:
        keys[group.cell] += group.keys
    groups = {m.label: m.cls.group for m in plan.suite.methods}
    rows = [ExpectedCell(c.method, groups[c.method], c.dataset, c.ipc, c.arch, tuple(dict.fromkeys(keys[c])))
            for c in plan.cells]
    label_of = whole_labels(plan.suite)
    whole: dict[tuple[str, str, str], list[str]] = {}
    for task in plan.whole:
        spec = task.spec
        recipe = json.dumps(spec.params["recipe"], sort_keys=True)
        whole.setdefault((spec.dataset, spec.arch, recipe), []).append(task.key)
    for (dataset, arch, recipe), task_keys in whole.items():
        rows.append(ExpectedCell(label_of[recipe], "whole", dataset, None, arch, tuple(task_keys)))
    return rows


def _whole_json(suite: Suite, recipe: EvalRecipe) -> str:
    """The recipe of the Whole Dataset row a method's cells compare with, as JSON (sorted keys)."""
    return json.dumps(whole_recipe(whole_dataset_recipe(suite, recipe)).as_dict(), sort_keys=True)


def whole_labels(suite: Suite) -> dict[str, str]:
    """The label of each Whole Dataset row, by its recipe (`_whole_json`): "Whole Dataset" where the suite's
    methods share one, else named after the first method evaluated with it."""
    first_user: dict[str, str] = {}
    for m in suite.methods:
        first_user.setdefault(_whole_json(suite, m.recipe), m.label)
    return {recipe: WHOLE if len(first_user) == 1 else f"{WHOLE} ({label}'s recipe)"
            for recipe, label in first_user.items()}


def with_fairness_runs(suite: Suite) -> Suite:
    """With `report: {fairness: ...}`, the suite plus the runs DD-Ranking's scores need that it lacks: a `random`
    entry evaluated with each recipe the other entries use (IOR), a hard-label entry of each set evaluated under
    another regime, and the Whole Dataset row (HLR, LRS). Without it, the suite as written."""
    if not suite.report.fairness:
        return suite
    labels = {m.label for m in suite.methods}
    randoms = {m.recipe for m in suite.methods if m.cls.name == "random"}
    sets = {(m.cls.name, json.dumps(m.user_params, sort_keys=True), m.recipe) for m in suite.methods}
    added: list[MethodEntry] = []

    def add(label: str, entry: MethodEntry) -> None:
        while label in labels:
            label += "'"
        labels.add(label)
        added.append(replace(entry, label=label, origin=f"{entry.origin} (added by `report: {{fairness: ...}}`)"))

    def random_for(m: MethodEntry) -> None:
        """A random entry under `m`'s recipe, unless it has one, or the regime needs soft labels random lacks."""
        random = get_method("random")
        lacks = m.recipe.labels == "soft" and not random.stores_soft_labels(random.Params())
        if m.recipe not in randoms and not lacks:
            randoms.add(m.recipe)
            add(f"random ({m.recipe.labels})", replace(m, cls=get_method("random"), user_params={}))

    for m in [m for m in suite.methods if m.cls.name != "random"]:
        random_for(m)
        hard = (m.cls.name, json.dumps(m.user_params, sort_keys=True), hard_labels(m.recipe))
        if hard not in sets:
            sets.add(hard)
            add(f"{m.label} (hard)", replace(m, recipe=hard_labels(m.recipe)))
            random_for(added[-1])
    return replace(suite, methods=suite.methods + tuple(added), whole_dataset=suite.whole_dataset or WholeDataset())


def report_options(suite: Suite) -> ReportOptions:
    """The suite as its report describes it, as plain data (with the runs `report: {fairness: ...}` adds)."""
    suite = with_fairness_runs(suite)
    w, r = suite.whole_dataset, suite.report
    whole = whole_labels(suite)
    methods = tuple(MethodOptions(m.label, m.cls.name, m.preset, dict(m.user_params),
                                  {**asdict(m.recipe), "passes": m.recipe.passes, "decay_epochs": m.recipe.decay_epochs},
                                  recipe_key=content_key(m.recipe.as_dict()),
                                  hard_key=content_key(hard_labels(m.recipe).as_dict()),
                                  bare_key=content_key(without_augmentation(m.recipe).as_dict()),
                                  whole=whole[_whole_json(suite, m.recipe)] if w is not None else "")
                    for m in suite.methods)
    return ReportOptions(name=suite.name, description=suite.description, datasets=suite.datasets, ipcs=suite.ipcs,
                         eval_archs=suite.eval_archs, distill_arch=suite.distill_arch, seeds=suite.seeds,
                         distill_seeds=suite.distill_seeds, methods=methods, whole_dataset=w is not None,
                         whole_epochs=w.epochs if w else None, whole_seeds=w.seeds if w else None, views=r.views,
                         compare_to=r.compare_to, tolerance=r.tolerance, match=r.match, ablation=r.ablation,
                         significance=r.significance, paper_runs=r.paper_runs, font=r.font, deviations=suite.deviations,
                         fairness=r.fairness, lrs_weight=r.lrs_weight, ars_weight=r.ars_weight,
                         fairness_columns=r.fairness_columns)
