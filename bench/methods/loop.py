"""The harness's distillation loop: the one place that iterates, checkpoints, resumes and reports progress.

An iterative method gives only its maths (`IterativeMethod`):

    init(ctx) -> state                  everything the loop carries, built from the context (seeded)
    step(state, iteration) -> loss      one iteration (0-based); what it returns is shown as progress
    finish(state) -> SyntheticSet       the set, from the state after the last iteration

and `iterations` (its `iterations` parameter by default). `run` calls them. Every `checkpoint.every`
iterations it saves what the state declares (`LoopState`) atomically; a rerun of a killed or preempted
job builds the state with `init`, restores what was saved and continues with the next iteration, so
it computes exactly what an uninterrupted run computes. A method never touches the checkpoint.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Mapping

import torch

from bench.methods.base import Checkpoint, DistillContext, Method, SyntheticSet

Loss = float | torch.Tensor | Mapping[str, float | torch.Tensor]
"""What a step returns for progress: its loss, or named values (e.g. {"loss": ..., "lr": ...})."""


class LoopState:
    """What an iterative method carries from one iteration to the next.

    A subclass (usually a dataclass holding the method's tensors, optimisers, generators, networks...)
    declares what a resumed run needs, by name; the harness saves and restores exactly that:
    * `tensors()`: the tensors being learned (restored in place);
    * `optimizers()`: their optimisers (momentum buffers, step counts);
    * `generators()`: every torch.Generator the steps draw from;
    * `extra()` / `load_extra(saved)`: anything else (a queue of networks, moving averages, an order),
      as tensors and plain data. `extra()` is called only when a checkpoint is written, `load_extra`
      only when one is restored (after `init`, which may build placeholders it then replaces).
    """

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def generators(self) -> dict[str, torch.Generator]:
        return {}

    def extra(self) -> dict[str, Any]:
        return {}

    def load_extra(self, saved: dict[str, Any]) -> None:
        """Restore what `extra()` returned."""


class IterativeMethod(Method):
    """A method that improves a synthetic set over iterations; the harness runs the loop (`run`)."""

    @property
    def iterations(self) -> int:
        return self.params.iterations

    @abstractmethod
    def init(self, ctx: DistillContext) -> LoopState:
        """The state before the first iteration. Draw randomness only from generators the state declares."""

    @abstractmethod
    def step(self, state: LoopState, iteration: int) -> Loss:
        """Iteration `iteration` (0-based): update the state in place; return the loss to show."""

    @abstractmethod
    def finish(self, state: LoopState) -> SyntheticSet:
        """The synthetic set the final state stands for (on the CPU)."""

    def distill(self, ctx: DistillContext) -> SyntheticSet:
        """The harness's loop over `init` / `step` / `finish` (not to be overridden)."""
        return run(self, ctx)


def run(method: IterativeMethod, ctx: DistillContext) -> SyntheticSet:
    """Run `method` to its last iteration, resuming from `ctx.checkpoint` and writing it when due."""
    state = method.init(ctx)
    total = method.iterations
    start = restore(ctx.checkpoint, state, total)
    if start is None:  # a checkpoint that did not fit may have been half restored: start from a clean state
        state, start = method.init(ctx), 0
    for iteration in range(start, total):
        ctx.progress(iteration + 1, total, f"iteration, {describe(method.step(state, iteration))}")
        if ctx.checkpoint.due(iteration + 1):
            ctx.checkpoint.save(iteration + 1, snapshot(state))
    return method.finish(state)


def snapshot(state: LoopState) -> dict[str, Any]:
    """What a checkpoint holds of the state (on the CPU, except optimiser buffers, which load back anywhere)."""
    return {"tensors": {k: t.detach().cpu() for k, t in state.tensors().items()},
            "optimizers": {k: o.state_dict() for k, o in state.optimizers().items()},
            "generators": {k: g.get_state() for k, g in state.generators().items()},
            "extra": state.extra()}


def restore(checkpoint: Checkpoint, state: LoopState, total: int) -> int | None:
    """Load the last checkpoint into `state`, in place; the iteration to continue from (0 without one).

    None, with a warning, where the checkpoint does not fit the state (another version of the method's code
    saved other tensors, shapes or optimisers): the caller starts from scratch, as it would without one."""
    saved = checkpoint.load()
    if saved is None:
        return 0
    iteration, snap = saved
    try:
        tensors = state.tensors()
        if not 0 <= iteration <= total or snap["tensors"].keys() != tensors.keys():
            raise ValueError(f"it holds iteration {iteration} of tensors {sorted(snap['tensors'])}; this run has "
                             f"{total} iterations of tensors {sorted(tensors)}")
        with torch.no_grad():
            for k, t in tensors.items():
                if snap["tensors"][k].shape != t.shape:
                    raise ValueError(f"its tensor '{k}' has shape {tuple(snap['tensors'][k].shape)}, this run's "
                                     f"{tuple(t.shape)}")
                t.copy_(snap["tensors"][k])
        for k, o in state.optimizers().items():
            o.load_state_dict(snap["optimizers"][k])
        for k, g in state.generators().items():
            g.set_state(snap["generators"][k])
        state.load_extra(snap["extra"])
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        checkpoint.discard(f"it does not fit this run's state ({type(exc).__name__}: {exc})")
        return None
    return iteration


def describe(loss: Loss) -> str:
    """'loss 1.234', or 'name value, ...' for named values."""
    values = loss if isinstance(loss, Mapping) else {"loss": loss}
    return ", ".join(f"{name} {value.item() if isinstance(value, torch.Tensor) else value:.4g}"
                     for name, value in values.items())
