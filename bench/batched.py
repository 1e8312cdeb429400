"""The seeds of one evaluation cell trained together (issue 13): K fresh networks, one vmapped forward and
backward per step for all of them.

Why: at small IPC a ConvNet's batch is a few hundred images, which leaves a GPU mostly idle; K networks
stacked with `torch.func` fill it with one kernel per layer instead of K. Each network keeps everything
`evaluate_synset` gives it: its initialisation (`seeded(seed)`), its generator (seeded `seed + 1`) with the
same draws in the same order (permutation, DSA, CutMix), its own loss and SGD (the summed loss gives each
network its own gradient; SGD is elementwise on the stacked tensors), the same schedule and the same test.
Vmapped kernels may round differently from one network's kernels, so accuracies agree with the
one-at-a-time loop within float tolerance, not bit for bit, as a GPU's agree with a CPU's (`EvalRecipe.batch_seeds`).

Every network of `bench.nets` vmaps, BatchNorm ones included: the buffers are stacked too, so each network's
running statistics are updated in place in its own slice. There is no fallback to the one-at-a-time loop, and
CutMix needs none (each network's batch is mixed, and its loss weighed, as in `train_epoch`).
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap

from bench.augment import to_device
from bench.recipes import EvalRecipe
from bench.train import Progress, accuracy, augmented_batch, batch_loss, decayed, seeded, sgd, train_strategy


def fit_batched(nets: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, recipe: EvalRecipe, *,
                dsa_strategy: str, generators: Sequence[torch.Generator],
                progress: Progress | None = None) -> list[str | None]:
    """`fit` for each of `nets` (same architecture) with its own generator, all stepped together; the trained
    parameters are written back into `nets`. Returns, per network, why its training diverged, or None."""
    params, buffers = stack_module_state(list(nets))
    base = copy.deepcopy(nets[0]).to("meta").train()
    forward = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)))
    leaves = list(params.values())
    strategy, lr = train_strategy(recipe, dsa_strategy), recipe.lr
    opt = sgd(leaves, lr, recipe)
    why: list[str | None] = [None] * len(nets)
    for epoch in range(recipe.passes):
        orders = [to_device(torch.randperm(len(x), generator=g), x.device) for g in generators]
        total, steps = torch.zeros(len(nets), device=x.device), 0
        for start in range(0, len(x), recipe.batch_size):
            batches = [augmented_batch(x[order[start:start + recipe.batch_size]],
                                       y[order[start:start + recipe.batch_size]], g, dsa_strategy=strategy,
                                       dsa_mode=recipe.dsa_mode, cutmix_prob=recipe.cutmix_prob,
                                       cutmix_beta=recipe.cutmix_beta) for order, g in zip(orders, generators)]
            logits = forward(params, buffers, torch.stack([xb for xb, *_ in batches]))
            losses = torch.stack([batch_loss(out, yb, partner, keep)
                                  for out, (_, yb, partner, keep) in zip(logits, batches)])
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()  # each network's loss reaches only its own parameters
            opt.step()
            total += losses.detach()
            steps += 1
        means = [t / steps for t in total.tolist()]  # one host sync per pass, as in train_epoch
        for k, mean in enumerate(means):
            if why[k] is None and not math.isfinite(mean):
                why[k] = f"the training loss became {mean} in epoch {epoch + 1}/{recipe.passes} (lr {recipe.lr})"
        opt, lr = decayed(opt, leaves, lr, recipe, epoch)
        if progress is not None:
            progress(epoch + 1, recipe.passes, f"epoch, loss {sum(means) / len(means):.3f} ({len(nets)} seeds)")
    stacked = params | buffers
    with torch.no_grad():
        for k, net in enumerate(nets):
            for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
                tensor.copy_(stacked[name][k])
    return why


def evaluate_synset_batched(build: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor,
                            x_test: torch.Tensor, y_test: torch.Tensor, recipe: EvalRecipe, seeds: Sequence[int],
                            dsa_strategy: str, device: torch.device,
                            progress: Progress | None = None) -> list[tuple[float | None, str | None]]:
    """`evaluate_synset` for each of `seeds`, trained together: per seed (accuracy, None), or (None, why) where its
    training diverged (where `evaluate_synset` raises `Diverged`); the others are trained on unaffected."""
    nets = [seeded(seed, build).to(device) for seed in seeds]
    why = fit_batched(nets, x.to(device), y.to(device), recipe, dsa_strategy=dsa_strategy,
                      generators=[torch.Generator().manual_seed(seed + 1) for seed in seeds], progress=progress)
    x_test, y_test = x_test.to(device), y_test.to(device)
    return [(None, diverged) if diverged else (accuracy(net, x_test, y_test, recipe.test_batch_size), None)
            for net, diverged in zip(nets, why)]
