"""Expert stages: cached, shared work that several distillation tasks need.

Examples: MTT's expert trajectories, the feature network the coresets select with. A method
declares the experts it needs (`Method.experts`); the plan turns each distinct `ExpertSpec`
into one task, keyed by its content, so every cell of the same data set and architecture reuses
it. A builder returns tensors; the store keeps them like any artifact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn as nn

from bench.data import Dataset
from bench.train import Progress


@dataclass(frozen=True)
class ExpertSpec:
    """What to build: `kind` names a registered builder; `params` must be JSON-able (it is hashed)."""

    kind: str
    dataset: str
    arch: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    zca: bool = False

    def identity(self) -> dict[str, Any]:
        return {"kind": "expert", "expert": self.kind, "version": EXPERT_BUILDERS[self.kind].version,
                "dataset": self.dataset, "arch": self.arch, "params": self.params, "zca": self.zca}


@dataclass
class ExpertContext:
    spec: ExpertSpec
    dataset: Dataset  # ZCA-whitened when spec.zca
    device: torch.device
    make_net: Callable[[], nn.Module]
    dsa_strategy: str
    progress: Progress = field(default=lambda step, total, detail: None)


@dataclass(frozen=True)
class ExpertBuilder:
    build: Callable[[ExpertContext], dict[str, torch.Tensor]]
    version: int


EXPERT_BUILDERS: dict[str, ExpertBuilder] = {}


def register_expert(kind: str, version: int = 1):
    """Decorator: `fn(ctx: ExpertContext) -> dict[str, Tensor]` builds experts of `kind`.

    Bump `version` when the builder's output changes, so old cached experts are not reused.
    """
    def wrap(fn: Callable[[ExpertContext], dict[str, torch.Tensor]]):
        EXPERT_BUILDERS[kind] = ExpertBuilder(fn, version)
        return fn
    return wrap
