"""The seeds of one evaluation cell trained together (issue 13): K fresh networks, one forward and backward per
step for all of them.

Why: at small IPC a ConvNet's batch is a few hundred images, which leaves a GPU mostly idle; K networks
stacked with `torch.func` fill it with one kernel per layer instead of K. Each network keeps everything
`evaluate_synset` gives it: its initialisation (`seeded(seed)`), its generator (seeded `seed + 1`) with the
same draws in the same order (permutation, DSA, CutMix), its own loss and SGD (the summed loss gives each
network its own gradient; SGD is elementwise on the stacked tensors), the same schedule and the same test.
Vmapped kernels may round differently from one network's kernels, so accuracies agree with the
one-at-a-time loop within float tolerance, not bit for bit, as a GPU's agree with a CPU's (`EvalRecipe.batch_seeds`).

How the K networks become one: a ConvNet whose blocks are convolutions, GroupNorm (instance norm) or none,
element-wise activations and pooling is written as one ConvNet of grouped convolutions (`grouped`): each conv
with `groups=K`, each norm one `group_norm` over K x width channels, the K classifiers one batched matmul. It
dispatches 2.6x fewer operations per step than `torch.func`'s vmap and is 1.4x faster on a CPU
(benchmarks/grouped_vs_vmap.py); on a GPU, where a step on a few hundred small images is bound by its operations
(benchmarks/step_ops.py), that is the lever. Every other network of `bench.nets` vmaps (`vmapped`), BatchNorm ones
included: the buffers are stacked too, so each network's running statistics are updated in place in its own
slice. There is no fallback to the one-at-a-time loop, and CutMix needs none (each network's batch is mixed, and
its loss weighed, as in `train_epoch`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from bench.augment import to_device
from bench.nets.convnet import ConvNet
from bench.recipes import EvalRecipe
from bench.train import Progress, accuracy, augmented_batch, batch_loss, decayed, seeded, sgd, train_strategy


@dataclass(frozen=True)
class Together:
    """K networks of one architecture as one function of their stacked parameters."""

    leaves: list[torch.Tensor]  # what SGD steps: elementwise, so each network's slice steps as on its own
    forward: Callable[[torch.Tensor], torch.Tensor]  # (K, N, ...) images -> (K, N, classes) logits
    state: Callable[[], dict[str, torch.Tensor]]  # each parameter and buffer's name -> (K, *its shape)


def vmapped(nets: Sequence[nn.Module]) -> Together:
    """Any architecture: `torch.func`'s vmap over the networks' stacked parameters and buffers."""
    params, buffers = stack_module_state(list(nets))
    base = copy.deepcopy(nets[0]).to("meta").train()
    forward = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)))
    return Together(list(params.values()), lambda x: forward(params, buffers, x), lambda: params | buffers)


# Layers that act on each channel alone, so on K networks' channels side by side as on each network's.
CHANNELWISE = (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.SiLU, nn.AvgPool2d, nn.MaxPool2d)


def grouped(nets: Sequence[nn.Module]) -> Together | None:
    """K ConvNets as one ConvNet of grouped convolutions: network k reads and writes channels k*C ... (k+1)*C - 1
    of each block, so each conv is one `conv2d` with `groups=K`, each GroupNorm one `group_norm` with K times its
    groups, and the classifiers one `baddbmm`. None where a layer does not allow it (BatchNorm's running
    statistics, LayerNorm over a whole block): those vmap."""
    net = nets[0]
    if not isinstance(net, ConvNet) or next(net.buffers(), None) is not None or not all(
            isinstance(layer, CHANNELWISE) or (isinstance(layer, nn.GroupNorm) and layer.affine)
            or (isinstance(layer, nn.Conv2d) and layer.groups == 1 and layer.bias is not None
                and layer.padding_mode == "zeros") for layer in net.features):
        return None
    k, shapes = len(nets), {name: p.shape for name, p in net.named_parameters()}
    each = [dict(n.named_parameters()) for n in nets]
    stacked = {name: torch.cat([params[name].detach() for params in each]).requires_grad_() for name in shapes}
    # Each block's layer with its stacked weight and bias (None for a layer without), looked up once, not per step.
    blocks = [(layer, stacked.get(f"features.{i}.weight"), stacked.get(f"features.{i}.bias"))
              for i, layer in enumerate(net.features)]

    def forward(x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(0, 1).flatten(1, 2)  # (N, K * C, H, W)
        for layer, weight, bias in blocks:
            if isinstance(layer, nn.Conv2d):
                h = F.conv2d(h, weight, bias, layer.stride, layer.padding, layer.dilation, groups=k)
            elif isinstance(layer, nn.GroupNorm):
                h = F.group_norm(h, k * layer.num_groups, weight, bias, layer.eps)
            else:
                h = layer(h)
        h = h.reshape(h.shape[0], k, -1).transpose(0, 1)  # (K, N, features): each network's flattened block
        weight = stacked["classifier.weight"].view(k, *shapes["classifier.weight"])
        return torch.baddbmm(stacked["classifier.bias"].view(k, 1, -1), h, weight.transpose(1, 2))

    return Together(list(stacked.values()), forward,
                    lambda: {name: t.view(k, *shapes[name]) for name, t in stacked.items()})


def fit_batched(nets: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, recipe: EvalRecipe, *,
                dsa_strategy: str, generators: Sequence[torch.Generator],
                progress: Progress | None = None) -> list[str | None]:
    """`fit` for each of `nets` (same architecture) with its own generator, all stepped together; the trained
    parameters are written back into `nets`. Returns, per network, why its training diverged, or None."""
    together = grouped(nets) or vmapped(nets)
    leaves = together.leaves
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
            logits = together.forward(torch.stack([xb for xb, *_ in batches]))
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
    stacked = together.state()
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
