"""Benchmark: the operations bench's evaluation loop dispatches per training step, by phase, for a cell's seeds
trained one at a time (`bench.train`) and together (`bench.batched`).

Why count them: on a GPU, a ConvNet step on a few hundred 32x32 images is bound by its operations (each a kernel
launch and its host-side dispatch, a few microseconds), not by their arithmetic. Their number per step, which
any CPU can count, is what a GPU's time per step follows there, and what fusing (CUDA graphs, torch.compile)
would have to cut. Each aten operation that reaches the dispatcher is counted once (a `TorchDispatchMode`; a
view counts like a kernel, a fused foreach op as one), in steady state: the counts of a run of --epochs + 1
passes less those of a run of 1 pass, over the steps between them, so the one-off stacking, copies and test are
left out.

Phases: the host's random draws for the batch (DSA's and CutMix's parameters, on small CPU tensors: no kernel on
a GPU, but host time), applying DSA (and CutMix) to the images, the loss, backward, the optimiser step, and the
rest (the forward, the batch's indexing and stacking). SGD is counted as this device runs it: torch's per-tensor loop on a CPU (4
operations per parameter tensor), its foreach kernels on CUDA (a handful per step).

Usage: python benchmarks/step_ops.py [--seeds 5] [--ipc 10] [--epochs 2]
"""

from __future__ import annotations

import argparse
import collections
import functools
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench import batched, nets, train
from bench.batched import fit_batched
from bench.recipes import PRESETS, EvalRecipe
from bench.train import seeded

STRATEGY = "color_crop_cutout_flip_scale_rotate"
PHASES = ("draws", "dsa", "loss", "backward", "optimiser", "forward and rest")


class Counter(TorchDispatchMode):
    """Counts the operations dispatched while it is active, under the phase set at the time."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self.phase = PHASES[-1]

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.counts[self.phase] += 1
        return func(*args, **(kwargs or {}))


def in_phase(counter: Counter, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        before, counter.phase = counter.phase, phase
        try:
            return fn(*args, **kwargs)
        finally:
            counter.phase = before
    return wrapped


def count(run: Callable[[EvalRecipe], None], recipe: EvalRecipe) -> tuple[collections.Counter[str], int]:
    """The operations per phase, and the optimiser steps, of `run(recipe)`."""
    counter, steps = Counter(), [0]

    step, sgd_step = torch.optim.SGD.step, batched.MomentumSGD.step

    def counted_step(*args: Any, **kwargs: Any) -> Any:
        steps[0] += 1
        return step(*args, **kwargs)

    def counted_sgd(*args: Any, **kwargs: Any) -> Any:
        steps[0] += 1
        return sgd_step(*args, **kwargs)

    patches = {(train, "draw"): train.draw, (train, "draw_cutmix"): train.draw_cutmix,
               (batched, "batch_draws"): batched.batch_draws, (batched, "per_sample"): batched.per_sample,
               (batched, "mix_per_sample"): batched.mix_per_sample,
               (train, "applied"): train.applied, (train, "mixed"): train.mixed,
               (batched, "apply_per_sample"): batched.apply_per_sample,
               (torch.nn.functional, "cross_entropy"): torch.nn.functional.cross_entropy,
               (train, "batch_loss"): train.batch_loss,
               (torch.Tensor, "backward"): torch.Tensor.backward, (torch.autograd, "grad"): torch.autograd.grad,
               (torch.optim.SGD, "step"): counted_step, (batched.MomentumSGD, "step"): counted_sgd}
    phase_of = {"draw": "draws", "draw_cutmix": "draws", "batch_draws": "draws", "per_sample": "draws",
                "mix_per_sample": "draws", "applied": "dsa", "mixed": "dsa", "apply_per_sample": "dsa",
                "cross_entropy": "loss", "batch_loss": "loss", "backward": "backward", "grad": "backward",
                "step": "optimiser"}
    try:
        for (owner, name), fn in patches.items():
            setattr(owner, name, in_phase(counter, phase_of[name], fn))
        with counter:
            run(recipe)
    finally:
        for (owner, name), fn in patches.items():
            setattr(owner, name, {counted_step: step, counted_sgd: sgd_step}.get(fn, fn))
    return counter.counts, steps[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(args.ipc * 10, 3, 32, 32, generator=gen), torch.arange(10).repeat_interleave(args.ipc)
    build = lambda: nets.get_network("ConvNet", 3, 10, 32)  # noqa: E731
    generators = lambda: [torch.Generator().manual_seed(s + 1) for s in seeds]  # noqa: E731
    ways = {
        "one at a time": lambda r: [train.fit(seeded(s, build), x, y, r, generator=g, dsa_strategy=STRATEGY)
                                    for s, g in zip(seeds, generators())],
        "together": lambda r: fit_batched([seeded(s, build) for s in seeds], x, y, r, dsa_strategy=STRATEGY,
                                          generators=generators()),
    }
    base = PRESETS["standard"]
    print(f"ConvNet 32x32x3, IPC {args.ipc} ({args.ipc * 10} images), {args.seeds} seeds, CIFAR's DSA, "
          f"batch {base.batch_size}: operations per step of all {args.seeds} seeds")
    print(f"{'':15s}" + "".join(f"{p:>18s}" for p in PHASES) + f"{'total':>10s}")
    totals = {}
    for name, run in ways.items():
        short, s1 = count(run, base.with_overrides({"epochs": 1}))
        long, s2 = count(run, base.with_overrides({"epochs": args.epochs + 1}))
        per_step = {p: (long[p] - short[p]) / (s2 - s1) for p in PHASES}
        if name == "one at a time":  # a step of each seed makes one step of the cell
            per_step = {p: n * args.seeds for p, n in per_step.items()}
        totals[name] = sum(per_step.values())
        print(f"{name:15s}" + "".join(f"{per_step[p]:18.0f}" for p in PHASES) + f"{totals[name]:10.0f}")
    print(f"together dispatches {totals['one at a time'] / totals['together']:.2f}x fewer operations per step")


if __name__ == "__main__":
    main()
