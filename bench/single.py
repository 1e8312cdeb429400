"""`bench eval PATH`: one set made elsewhere, evaluated without writing a suite.

It is a suite of one `import` entry built in memory and run through the normal plan, executor and store,
so its records have the keys a suite importing the same file (under any path template) gives them, and
that suite reuses them.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench import data, nets
from bench.config import ConfigError, MethodEntry, Suite, unknown_name
from bench.methods.specs import Import
from bench.plan import Plan
from bench.recipes import PRESETS
from bench.store import Store

NAME = "eval"  # the suite name its records carry


def file_suite(path: str, dataset: str, *, ipc: int | None, arch: str, seeds: list[int], preset: str | None,
               epochs: int | None, params: dict[str, Any], label: str | None = None) -> Suite:
    """The suite that evaluates the file or folder at `path` on `dataset` (its IPC read from the file when
    `ipc` is None); `params` are the import's other params (labels, lr, soft_labels, space, format)."""
    preset = preset or Import.eval_preset
    for flag, name, known, command in (("--dataset", dataset, data.DATASETS, "bench list datasets"),
                                       ("--arch", arch, nets.NETWORKS, "bench list archs"),
                                       ("--preset", preset, PRESETS, "bench list presets")):
        if name not in known:
            raise ConfigError(f"bench eval {flag}: {unknown_name(flag[2:], name, known, command)}")
    spec = data.DATASETS[dataset]
    try:
        import_params = Import.Params.model_validate({"path": path, **params})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "PATH" if err["loc"][0] == "path" else f"--{str(err['loc'][0]).replace('_', '-')}"
        raise ConfigError(f"bench eval {where}: {err['msg']} (got {err.get('input')!r}).") from None
    try:
        nets.check_input(arch, spec.channels, spec.num_classes, spec.image_size)
    except nets.IncompatibleInput as exc:
        raise ConfigError(f"bench eval --arch: {exc} Pick another architecture for data set '{dataset}'.") from None
    if ipc is None:
        ipc = _ipc_of(import_params, spec)
    recipe = PRESETS[preset].with_overrides(
        {k: v for k, v in {"epochs": epochs, "lr": "learned" if import_params.lr is not None else None}.items()
         if v is not None})
    if (problem := Import.check_recipe(import_params, recipe)) is not None:
        raise ConfigError(f"bench eval: {problem}")
    entry = MethodEntry(label or path, Import, import_params.model_dump(exclude_none=True), preset,
                        recipe, origin=f"bench eval {path}")
    return Suite(name=NAME, path=Path(path),
                 description=f"bench eval {path}", datasets=(dataset,), ipcs=(ipc,), eval_archs=(arch,),
                 distill_arch="ConvNet", methods=(entry,), seeds=tuple(seeds), distill_seeds=(0,))


def _ipc_of(params: Any, spec: data.DatasetSpec) -> int:
    """The IPC the files hold: their images over the data set's classes (a whole number, or an error)."""
    from bench.methods.imported import count_images
    from bench.methods.specs import InputError
    try:
        count = count_images(params, spec, 0)
    except InputError as exc:
        raise ConfigError(f"bench eval: {exc}") from None
    if count == 0 or count % spec.num_classes:
        raise ConfigError(f"bench eval: {params.path!r} holds {count} images, not a whole number per class of "
                          f"{spec.name}'s {spec.num_classes} classes (IPC {count / spec.num_classes:g}); a set "
                          f"holds the same number of images of each class.")
    return count // spec.num_classes


def summary(plan: Plan, store: Store) -> str:
    """mean ± std (ddof=0, as the reports) of the plan's one cell, with the runs it averages."""
    runs = store.read_records(e.key for e in plan.evaluate)
    accs = [r.accuracy for r in runs if r.accuracy is not None]
    cell = plan.cells[0]
    head = f"{cell.method} on {cell.dataset} IPC {cell.ipc}, {cell.arch}"
    if not accs:
        return f"{head}: no accuracy ({len(runs) - len(accs)} run(s) diverged)"
    diverged = f", {len(runs) - len(accs)} diverged" if len(runs) > len(accs) else ""
    return f"{head}: {statistics.fmean(accs):.2f} ± {statistics.pstdev(accs):.2f} (n={len(accs)}{diverged}, std ddof=0)"
