"""Expert stages: cached, shared work that several distillation tasks need.

Examples: MTT's expert trajectories, the feature network the coresets select with. A method
declares the experts it needs (`Method.experts`); the plan turns each distinct `ExpertSpec`
into one task, keyed by its content, so every cell of the same data set and architecture reuses
it. A builder returns tensors; the store keeps them like any artifact, except the large ones a
builder names as `parts` (read a row at a time: MTT's trajectories, one row per expert; the
coresets' features, one row per class), which it keeps one file per row, so a distillation reads
the rows it uses, not the stage.

The spec is plain data (planning needs no torch); builders, which do, register themselves with
`register_expert` from the modules that define them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from bench.data import Dataset
    from bench.train import Progress


@dataclass(frozen=True)
class ExpertSpec:
    """What to build: `kind` names a registered builder; `params` must be JSON-able (it is hashed).

    Bump `version` where a builder's output changes, so old cached experts are not reused."""

    kind: str
    dataset: str
    arch: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    zca: bool = False
    version: int = 1

    def identity(self) -> dict[str, Any]:
        return {"kind": "expert", "expert": self.kind, "version": self.version,
                "dataset": self.dataset, "arch": self.arch, "params": self.params, "zca": self.zca}


@dataclass
class ExpertContext:
    spec: ExpertSpec
    dataset: Dataset  # ZCA-whitened when spec.zca
    device: torch.device
    make_net: Callable[[], nn.Module]
    dsa_strategy: str
    progress: Progress = field(default=lambda step, total, detail: None)


TEACHER_KIND = "teacher"  # the `labels: teacher` regime's teacher network (built by `bench.teacher`)

Builder = Callable[[ExpertContext], "dict[str, torch.Tensor | list[torch.Tensor]]"]  # a list: rows stored apart
EXPERT_BUILDERS: dict[str, Builder] = {}
EXPERT_PARTS: dict[str, tuple[str, ...]] = {}  # kind: the tensors stored one file per row (`bench.store.Parts`)


def register_expert(kind: str, parts: tuple[str, ...] = ()):
    """Decorator: `fn(ctx: ExpertContext) -> dict[str, Tensor]` builds experts of `kind`. The tensors named in
    `parts` (or lists of tensors of different shapes) are stored one file per row and reach a distillation as
    `bench.store.Parts`, which reads a row when it is indexed: for a stage too large to load whole."""
    def wrap(fn: Builder) -> Builder:
        EXPERT_BUILDERS[kind] = fn
        EXPERT_PARTS[kind] = parts
        return fn
    return wrap
