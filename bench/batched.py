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

How a step stays one fixed sequence of operations: the host makes every draw (each seed's own DSA family and
parameters, CutMix), and the device applies every augmentation stage to every image with per-image parameters
that are an identity where a seed did not draw that stage (`bench.augment.per_sample`), the K losses in one
cross-entropy, and a foreach SGD whose lr is a tensor on the device (`MomentumSGD`). That sequence depends on no
draw and reads nothing back from the device, so it can be captured once and replayed as a CUDA graph (`Replayed`,
`cuda_graph`; BENCH_CUDA_GRAPHS=1 until a GPU has checked it: `graphs_wanted`). Run eagerly, a step skips the
stages no image drew: 194 operations for 5 ConvNets at CIFAR shape instead of 320 (benchmarks/step_ops.py).
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from bench.augment import apply_per_sample, per_sample, to_device
from bench.nets.convnet import ConvNet
from bench.recipes import FAMILIES, EvalRecipe
from bench.train import Mix, Progress, accuracy, batch_draws, seeded, train_strategy


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


class MomentumSGD:
    """`bench.train.sgd` (torch's SGD: momentum, weight decay, no dampening) on the stacked leaves as a few foreach
    operations, with the lr a tensor on their device: a step reads nothing from the host, so it can be captured.
    The momentum buffers start at zero, which makes the first step torch's (buffer = gradient)."""

    def __init__(self, leaves: list[torch.Tensor], recipe: EvalRecipe) -> None:
        self.leaves, self.recipe, self.lr_value = leaves, recipe, float(recipe.lr)
        self.lr = torch.tensor(self.lr_value, device=leaves[0].device)
        self.buffers = [torch.zeros_like(leaf) for leaf in leaves]

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        directions = torch._foreach_add(grads, self.leaves, alpha=self.recipe.weight_decay)
        torch._foreach_mul_(self.buffers, self.recipe.momentum)
        torch._foreach_add_(self.buffers, directions)
        torch._foreach_sub_(self.leaves, torch._foreach_mul(self.buffers, self.lr))

    def after_pass(self, epoch: int) -> None:
        """`bench.train.decayed`: at a decay pass the lr is multiplied by the decay factor, with fresh (zero)
        momentum buffers (the reference's single decay) or keeping them (`decay_at`)."""
        if epoch not in self.recipe.decay_epochs:
            return
        self.lr_value *= self.recipe.decay_factor
        self.lr.fill_(self.lr_value)
        if self.recipe.decay_at is None:
            torch._foreach_zero_(self.buffers)


def mix_per_sample(mixes: Sequence[Mix | None], n: int, h: int, w: int) -> dict[str, torch.Tensor]:
    """K batches' CutMix draws (None: not mixed) as fixed-shape CPU tensors over their K x n images: each image's
    partner as an index into all of them (itself where not mixed), each batch's box (empty where not mixed) and
    the weight of its own labels (1 where not mixed)."""
    k = len(mixes)
    partner, box, keep = torch.arange(k * n).view(k, n), torch.zeros(k, 1, 1, h, w, dtype=torch.bool), torch.ones(k)
    for i, mix in enumerate(mixes):
        if mix is not None:
            partner[i] = i * n + mix.perm
            box[i, ..., mix.top:mix.bottom, mix.left:mix.right] = True
            keep[i] = mix.keep
    return {"partner": partner.flatten(), "box": box, "keep": keep}


def by_dtype(tensors: dict[str, torch.Tensor]) -> dict[torch.dtype, torch.Tensor]:
    """CPU tensors flattened into one tensor per dtype, so that a device gets them in one copy each."""
    return {dtype: torch.cat([t.reshape(-1) for t in tensors.values() if t.dtype == dtype])
            for dtype in dict.fromkeys(t.dtype for t in tensors.values())}


def unpacked(flats: dict[torch.dtype, torch.Tensor], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`like`'s tensors as views of the `by_dtype` tensors `flats` (on any device)."""
    out, offsets = {}, dict.fromkeys(flats, 0)
    for name, t in like.items():
        start = offsets[t.dtype]
        offsets[t.dtype] += t.numel()
        out[name] = flats[t.dtype][start:start + t.numel()].view(t.shape)
    return out


def moved(tensors: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """CPU tensors on `device` in one copy per dtype (`to_device`), not one per tensor."""
    if device.type == "cpu":
        return tensors
    return unpacked({dtype: to_device(flat, device) for dtype, flat in by_dtype(tensors).items()}, tensors)


Capture = Callable[[Callable[[], torch.Tensor]], Callable[[], torch.Tensor]]
"""capture(fn) -> replay: `fn` (a step on fixed input buffers) recorded once, `replay()` runs it again and returns
its output. Capturing may call `fn` to warm up; `Replayed` undoes what that did to the networks."""


def cuda_graph(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """`fn` as a CUDA graph, after three warm-up calls on a side stream (cuDNN's algorithm search, the caching
    allocator), as torch's whole-network capture does: a replay launches the step's hundreds of kernels as one."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()

    def replay() -> torch.Tensor:
        graph.replay()
        return out
    return replay


class Replayed:
    """`step(inputs)` captured once per shape of its inputs (the last batch of a pass may be smaller) and
    replayed. Each call copies its CPU inputs into the captured buffers on `device` first, one copy per dtype
    (`by_dtype`). The capture's warm-up calls train the networks; `state` (every tensor a step changes) is put back
    as it was before them."""

    def __init__(self, step: Callable[[dict[str, torch.Tensor]], torch.Tensor], state: list[torch.Tensor],
                 capture: Capture, device: torch.device) -> None:
        self.step, self.state, self.capture, self.device = step, state, capture, device
        self.replays: dict[tuple, tuple[dict[torch.dtype, torch.Tensor], Callable[[], torch.Tensor]]] = {}

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        shapes, flats = tuple((name, t.shape) for name, t in inputs.items()), by_dtype(inputs)
        known = shapes in self.replays
        static = self.replays[shapes][0] if known else {dtype: torch.empty_like(flat, device=self.device)
                                                        for dtype, flat in flats.items()}
        for dtype, flat in flats.items():
            static[dtype].copy_(flat.pin_memory() if static[dtype].is_cuda else flat, non_blocking=True)
        if not known:
            saved, views = [t.clone() for t in self.state], unpacked(static, inputs)
            replay = self.capture(lambda: self.step(views))
            with torch.no_grad():
                torch._foreach_copy_(self.state, saved)
            self.replays[shapes] = static, replay
        return self.replays[shapes][1]()


def graphs_wanted(device: torch.device) -> bool:
    """Whether batched seeds on `device` replay their step as a CUDA graph: off unless BENCH_CUDA_GRAPHS=1, until
    benchmarks/cuda_checks.sh has compared it with the eager step on a GPU (no GPU has run it yet)."""
    return device.type == "cuda" and os.environ.get("BENCH_CUDA_GRAPHS") == "1"


# How often, at most, the loop reads the networks' losses back to the host (progress and divergence): reading
# waits for the device to finish all queued work, which would otherwise overlap the host's next draws.
READ_EVERY_S = 1.0


def fit_batched(nets: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, recipe: EvalRecipe, *,
                dsa_strategy: str, generators: Sequence[torch.Generator], progress: Progress | None = None,
                capture: Capture | None = None) -> list[str | None]:
    """`fit` for each of `nets` (same architecture) with its own generator, all stepped together; the trained
    parameters are written back into `nets`. Returns, per network, why its training diverged, or None. With
    `capture` (`cuda_graph`), the step is captured once and replayed (`Replayed`).

    Each step, the host makes every network's draws as `augmented_batch` would (`batch_draws`) and hands the
    device one fixed-shape set of inputs (`train_step`): which images, every augmentation stage's per-image
    parameters (`bench.augment.per_sample`) and CutMix's. The losses stay on the device; they are read at most
    once a second and after the last pass, and the first pass where a network's loss was not finite is named."""
    together = grouped(nets) or vmapped(nets)
    strategy = train_strategy(recipe, dsa_strategy)
    families = set(strategy.split("_")) & set(FAMILIES)
    opt, k, n_steps = MomentumSGD(together.leaves, recipe), len(nets), math.ceil(len(x) / recipe.batch_size)
    losses = torch.zeros(recipe.passes, k, device=x.device)
    why: list[str | None] = [None] * k
    read_at = time.monotonic()

    def train_step(t: dict[str, torch.Tensor], stages: set[str]) -> torch.Tensor:
        """One SGD step of every network on its batch, augmented by the stages of the families `stages`; returns
        the networks' losses (K,)."""
        index = t["index"].flatten()
        xb = apply_per_sample(x[index], t, stages)
        yb = y[index]
        if recipe.cutmix_prob > 0:
            shape = (k, -1, *xb.shape[1:])
            xb = torch.where(t["box"], xb[t["partner"]].view(shape), xb.view(shape)).flatten(0, 1)
        logits = together.forward(xb.view(k, -1, *xb.shape[1:])).flatten(0, 1)
        loss = F.cross_entropy(logits, yb, reduction="none").view(k, -1).mean(1)
        if recipe.cutmix_prob > 0:
            partner = F.cross_entropy(logits, yb[t["partner"]], reduction="none").view(k, -1).mean(1)
            loss = t["keep"] * loss + (1 - t["keep"]) * partner
        opt.step(torch.autograd.grad(loss.sum(), together.leaves))  # each loss reaches only its network
        return loss.detach()

    # A captured step goes through every stage of the strategy; an eager one skips those no image drew.
    replayed = capture and Replayed(lambda t: train_step(t, families), [*together.state().values(), *opt.buffers],
                                    capture, x.device)
    for epoch in range(recipe.passes):
        orders = [torch.randperm(len(x), generator=g) for g in generators]
        for start in range(0, len(x), recipe.batch_size):
            index = torch.stack([order[start:start + recipe.batch_size] for order in orders])
            shape = (index.shape[1], *x.shape[1:])
            draws = [batch_draws(shape, g, dsa_strategy=strategy, dsa_mode=recipe.dsa_mode,
                                 cutmix_prob=recipe.cutmix_prob, cutmix_beta=recipe.cutmix_beta) for g in generators]
            inputs = per_sample([dsa_draws for dsa_draws, _ in draws], shape[0]) | {"index": index}
            if recipe.cutmix_prob > 0:
                inputs |= mix_per_sample([mix for _, mix in draws], shape[0], *shape[2:])
            if replayed:
                losses[epoch] += replayed(inputs)
            else:
                drawn = {family for dsa_draws, _ in draws for family, _ in dsa_draws}
                losses[epoch] += train_step(moved(inputs, x.device), drawn)
        opt.after_pass(epoch)
        last = epoch + 1 == recipe.passes
        if last or time.monotonic() - read_at >= READ_EVERY_S:  # one host sync
            means = (losses[:epoch + 1] / n_steps).tolist()
            read_at = time.monotonic()
            for i in range(k):
                bad = next((e for e, row in enumerate(means) if not math.isfinite(row[i])), None)
                if why[i] is None and bad is not None:
                    why[i] = (f"the training loss became {means[bad][i]} in epoch {bad + 1}/{recipe.passes} "
                              f"(lr {recipe.lr})")
            if progress is not None:
                progress(epoch + 1, recipe.passes, f"epoch, loss {sum(means[-1]) / k:.3f} ({k} seeds)")
    stacked = together.state()
    with torch.no_grad():
        for i, net in enumerate(nets):
            for name, tensor in [*net.named_parameters(), *net.named_buffers()]:
                tensor.copy_(stacked[name][i])
    return why


def evaluate_synset_batched(build: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor,
                            x_test: torch.Tensor, y_test: torch.Tensor, recipe: EvalRecipe, seeds: Sequence[int],
                            dsa_strategy: str, device: torch.device, progress: Progress | None = None,
                            graphs: bool | None = None) -> list[tuple[float | None, str | None]]:
    """`evaluate_synset` for each of `seeds`, trained together: per seed (accuracy, None), or (None, why) where its
    training diverged (where `evaluate_synset` raises `Diverged`); the others are trained on unaffected. `graphs`:
    whether the step is a CUDA graph (None: `graphs_wanted`)."""
    nets = [seeded(seed, build).to(device) for seed in seeds]
    why = fit_batched(nets, x.to(device), y.to(device), recipe, dsa_strategy=dsa_strategy,
                      generators=[torch.Generator().manual_seed(seed + 1) for seed in seeds], progress=progress,
                      capture=cuda_graph if (graphs_wanted(device) if graphs is None else graphs) else None)
    x_test, y_test = x_test.to(device), y_test.to(device)
    return [(None, diverged) if diverged else (accuracy(net, x_test, y_test, recipe.test_batch_size), None)
            for net, diverged in zip(nets, why)]
