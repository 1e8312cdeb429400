"""Suite -> tasks. Cells (method x dataset x IPC x eval arch) expand into expert, distill and evaluate tasks.

Each task has a content-hashed key: the hash of everything that determines its output. One
distilled artifact (method, params, dataset, IPC, distill arch, distill seed) serves every
evaluation architecture and seed. A task whose output is already in the store is not run again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from typing import Any, Callable, TypeVar

from bench.config import ConfigError, MethodEntry, Suite
from bench.experts import ExpertSpec
from bench.methods.registry import source_hash
from bench.methods.specs import InputError, Params
from bench.recipes import PRESETS, EvalRecipe
from bench.report.inputs import WHOLE, ExpectedCell, MethodOptions, ReportOptions

T = TypeVar("T")

# Bump when the evaluation loop changes what it computes: old records then no longer match.
EVAL_LOOP_VERSION = 1


def content_key(identity: dict[str, Any]) -> str:
    """A stable short hash of a JSON-able identity (sorted keys, so dict order does not matter)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@cache
def _recipe_identity(recipe: EvalRecipe) -> dict[str, Any]:
    """`recipe.as_dict()` once per distinct recipe: a plan has ~100,000 evaluate tasks but few recipes, and
    `dataclasses.asdict` took most of make_plan's time. Shared by the tasks' identities: never mutate it."""
    return recipe.as_dict()


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
        seed = f" seed={self.spec.params['seed']}" if "seed" in self.spec.params else ""
        return f"expert {self.spec.kind} {self.spec.dataset} {self.spec.arch}{' zca' if self.spec.zca else ''}{seed}"


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
    def make(cls, method: MethodEntry, dataset: str, ipc: int, arch: str, seed: int) -> DistillTask:
        params = method.params_for(dataset, ipc)
        spec = method.cls(params)
        arch_used = arch if method.cls.uses_network else None
        experts = tuple(ExpertTask.make(s) for s in planned(method, "experts", lambda: spec.experts(dataset, arch)))
        try:
            inputs = tuple(planned(method, "inputs", lambda: spec.inputs(dataset, ipc, seed)))
        except InputError as exc:
            raise ConfigError(f"{method.origin}: {method.label}: {exc}") from None
        identity = {"kind": "distill", "method": method.cls.name, "version": method.cls.version,
                    "params": planned(method, "key_params", spec.key_params), "dataset": dataset, "ipc": ipc,
                    "arch": arch_used, "seed": seed, "experts": [e.key for e in experts]}
        if inputs:  # only then: the keys of methods that read no outside files stay as they were
            identity["inputs"] = [{"param": i["param"], "sha256": i["sha256"]} for i in inputs]
        if (source := source_hash(method.cls)) is not None:
            identity["source"] = source
        return cls(method, params, dataset, ipc, arch_used, seed, experts, identity, content_key(identity), inputs)

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

    @classmethod
    def make(cls, distill: DistillTask, arch: str, recipe: EvalRecipe, seed: int, cell: Cell) -> EvalTask:
        identity = {"kind": "evaluate", "artifact": distill.key, "arch": arch, "recipe": _recipe_identity(recipe),
                    "seed": seed, "loop_version": EVAL_LOOP_VERSION}
        return cls(distill, arch, recipe, seed, cell, identity, content_key(identity))

    def describe(self) -> str:
        d = self.distill
        return f"evaluate {d.method.label} {d.dataset} ipc={d.ipc} {self.arch} seed={d.seed}/{self.seed}"


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
    evaluate: tuple[EvalTask, ...]
    # Whole-dataset stages (suite `whole_dataset: true`): one per data set x eval arch x recipe x seed.
    whole: tuple[ExpertTask, ...] = ()
    refused: tuple[Refusal, ...] = ()  # cells left out, with their method's reason


WHOLE_KIND = "whole_dataset"  # the stage that trains on the full training set (`bench.whole` computes it)


def whole_recipe(recipe: EvalRecipe) -> EvalRecipe:
    """The recipe the full training set is trained with: the method's own, except that a learned lr
    (MTT's, stored with its synthetic set) does not exist for real data, so the standard preset's lr is used,
    and that its seeds train one at a time (a Whole Dataset run is one task per seed)."""
    recipe = replace(recipe, batch_seeds=False)
    return replace(recipe, lr=PRESETS["standard"].lr) if recipe.lr == "learned" else recipe


def whole_spec(dataset: str, arch: str, recipe: EvalRecipe, seed: int) -> ExpertSpec:
    return ExpertSpec(WHOLE_KIND, dataset, arch, params={"recipe": whole_recipe(recipe).as_dict(), "seed": seed})


def whole_dataset_recipe(suite: Suite, recipe: EvalRecipe) -> EvalRecipe:
    """A method's recipe as the suite's Whole Dataset row uses it (with its `epochs`, if it sets any)."""
    epochs = suite.whole_dataset.epochs if suite.whole_dataset else None
    return recipe.with_overrides({"epochs": epochs}) if epochs else recipe


def make_plan(suite: Suite) -> Plan:
    """Expand the suite's grid, in a stable order (datasets, methods, IPCs, then archs and seeds).

    Cells a method declines are left out and listed; a method entry that declines every cell is a
    configuration error."""
    refused = refusals(suite)
    left_out = {(r.label, r.dataset, r.ipc) for r in refused}
    cells, distill, evaluate = [], {}, []
    for dataset in suite.datasets:
        for method in suite.methods:
            for ipc in suite.ipcs:
                if (method.label, dataset, ipc) in left_out:
                    continue
                for arch in suite.eval_archs:
                    cells.append(Cell(method.label, dataset, ipc, arch))
                for dseed in suite.distill_seeds:
                    task = DistillTask.make(method, dataset, ipc, suite.distill_arch, dseed)
                    distill.setdefault(task.key, task)
                    for arch in suite.eval_archs:
                        for seed in suite.seeds:
                            evaluate.append(EvalTask.make(task, arch, method.recipe, seed,
                                                          Cell(method.label, dataset, ipc, arch)))
    experts = {e.key: e for d in distill.values() for e in d.experts}
    whole: dict[str, ExpertTask] = {}
    if (w := suite.whole_dataset) is not None:
        for dataset in suite.datasets:
            for arch in suite.eval_archs:
                for recipe in dict.fromkeys(whole_dataset_recipe(suite, m.recipe) for m in suite.methods):
                    for seed in w.seeds or suite.seeds:
                        task = ExpertTask.make(whole_spec(dataset, arch, recipe, seed))
                        whole.setdefault(task.key, task)
    return Plan(suite, tuple(cells), tuple(experts.values()), tuple(distill.values()), tuple(evaluate),
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


def refusals(suite: Suite) -> tuple[Refusal, ...]:
    """The cells each method entry declines, with its reason."""
    found = []
    for m in suite.methods:
        own = [Refusal(m.label, dataset, ipc, reason) for dataset in suite.datasets for ipc in suite.ipcs
               if (reason := planned(m, "check_cell", lambda: m.cls.check_cell(
                   dataset, ipc, m.params_for(dataset, ipc)))) is not None]
        if len(own) == len(suite.datasets) * len(suite.ipcs):
            raise ConfigError(f"{m.origin}: '{m.cls.name}' refuses every cell of this suite: {own[0].reason}")
        found += own
    return tuple(found)


def expected_cells(plan: Plan) -> list[ExpectedCell]:
    """What the suite's report shows, in order, with the keys of each row's records: every cell, then one
    Whole Dataset row per data set x eval arch x recipe (named after the first method evaluated with the
    recipe when the suite's methods use several)."""
    keys: dict[Cell, list[str]] = {c: [] for c in plan.cells}
    for e in plan.evaluate:
        keys[e.cell].append(e.key)
    groups = {m.label: m.cls.group for m in plan.suite.methods}
    rows = [ExpectedCell(c.method, groups[c.method], c.dataset, c.ipc, c.arch, tuple(dict.fromkeys(keys[c])))
            for c in plan.cells]
    first_user: dict[str, str] = {}
    for m in plan.suite.methods:
        recipe = whole_recipe(whole_dataset_recipe(plan.suite, m.recipe)).as_dict()
        first_user.setdefault(json.dumps(recipe, sort_keys=True), m.label)
    whole: dict[tuple[str, str, str], list[str]] = {}
    for task in plan.whole:
        spec = task.spec
        recipe = json.dumps(spec.params["recipe"], sort_keys=True)
        whole.setdefault((spec.dataset, spec.arch, recipe), []).append(task.key)
    for (dataset, arch, recipe), task_keys in whole.items():
        label = WHOLE if len(first_user) == 1 else f"{WHOLE} ({first_user[recipe]}'s recipe)"
        rows.append(ExpectedCell(label, "whole", dataset, None, arch, tuple(task_keys)))
    return rows


def report_options(suite: Suite) -> ReportOptions:
    """The suite as its report describes it, as plain data."""
    w, r = suite.whole_dataset, suite.report
    methods = tuple(MethodOptions(m.label, m.cls.name, m.preset, dict(m.user_params),
                                  {**asdict(m.recipe), "passes": m.recipe.passes, "decay_epochs": m.recipe.decay_epochs})
                    for m in suite.methods)
    return ReportOptions(name=suite.name, description=suite.description, datasets=suite.datasets, ipcs=suite.ipcs,
                         eval_archs=suite.eval_archs, distill_arch=suite.distill_arch, seeds=suite.seeds,
                         distill_seeds=suite.distill_seeds, methods=methods, whole_dataset=w is not None,
                         whole_epochs=w.epochs if w else None, whole_seeds=w.seeds if w else None, views=r.views,
                         compare_to=r.compare_to, tolerance=r.tolerance, match=r.match, ablation=r.ablation,
                         significance=r.significance, paper_runs=r.paper_runs, deviations=suite.deviations)
