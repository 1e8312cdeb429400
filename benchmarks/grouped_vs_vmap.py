"""Benchmark: K ConvNets trained together two ways, `torch.func` (`stack_module_state` + `vmap`: `bench.batched`'s
`vmapped`, what it does for other networks) against grouped convolutions (the K networks written as one: each conv
with `groups=K`, instance norm as one `group_norm` over the K x width channels, the classifiers as one batched
matmul; `bench.batched.grouped` is the same, for any ConvNet whose layers allow it).

Issue 13 asked which of the two to use. On a GPU a training step on a few hundred 32x32 images is bound by the
operations it dispatches (kernel launches and their host-side cost), not by arithmetic, so this prints, for one
step (forward, cross-entropy, backward and a foreach SGD step, no augmentation) of K seeds:
  ops       the aten operations dispatched (a `TorchDispatchMode` count; the same on every device)
  time      the median seconds per step on --device, the two ways alternating in one process
and checks that both compute the same: the logits and the updated parameters of each network agree within float
tolerance (same initial networks, same batches).

Usage: python benchmarks/grouped_vs_vmap.py [--device cpu|cuda] [--seeds 5] [--images 100] [--steps 20]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils._python_dispatch import TorchDispatchMode

from bench import nets
from bench.train import seeded

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class OpCount(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.n += 1
        return func(*args, **(kwargs or {}))


def vmapped(models: list[nn.Module]) -> tuple[Step, Callable[[], list[dict[str, torch.Tensor]]]]:
    """`bench.batched`'s way: one vmapped functional call over the stacked parameters."""
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    forward = vmap(lambda p, b, xb: functional_call(base, (p, b), (xb,)))
    opt = torch.optim.SGD(list(params.values()), lr=0.01, momentum=0.9, weight_decay=5e-4, foreach=True)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # x: (K, N, C, H, W), y: (K, N)
        logits = forward(params, buffers, x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / x.shape[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return logits.detach()

    return step, lambda: [{k: v[i] for k, v in params.items()} for i in range(len(models))]


def grouped(models: list[nn.Module]) -> tuple[Step, Callable[[], list[dict[str, torch.Tensor]]]]:
    """The K ConvNets (conv -> instance norm -> relu -> avg pool blocks, then a linear layer) as one network."""
    k = len(models)
    layers = list(models[0].features)
    stacked = {name: torch.cat([dict(m.named_parameters())[name].detach() for m in models]).requires_grad_()
               for name, _ in models[0].named_parameters()}
    opt = torch.optim.SGD(list(stacked.values()), lr=0.01, momentum=0.9, weight_decay=5e-4, foreach=True)

    def forward(x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(0, 1).flatten(1, 2)  # (N, K * C, H, W): network i reads channels i*C ... (i+1)*C - 1
        for i, layer in enumerate(layers):
            if isinstance(layer, nn.Conv2d):
                h = F.conv2d(h, stacked[f"features.{i}.weight"], stacked[f"features.{i}.bias"],
                             padding=layer.padding, groups=k)
            elif isinstance(layer, nn.GroupNorm):
                h = F.group_norm(h, k * layer.num_groups, stacked[f"features.{i}.weight"],
                                 stacked[f"features.{i}.bias"], layer.eps)
            else:
                h = layer(h)
        h = h.view(h.shape[0], k, -1).transpose(0, 1)  # (K, N, features)
        weight = stacked["classifier.weight"].view(k, -1, h.shape[-1])
        return torch.baddbmm(stacked["classifier.bias"].view(k, 1, -1), h, weight.transpose(1, 2))

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = forward(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / x.shape[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return logits.detach()

    def per_network() -> list[dict[str, torch.Tensor]]:
        return [{name: t.view(k, *dict(models[0].named_parameters())[name].shape)[i] for name, t in stacked.items()}
                for i in range(k)]

    return step, per_network


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.seeds, args.images, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(10, (args.seeds, args.images), generator=gen).to(device)
    models = [seeded(s, lambda: nets.get_network("ConvNet", 3, 10, 32)).to(device) for s in range(args.seeds)]
    ways = {"vmap": vmapped(models), "grouped": grouped(models)}

    logits = {name: step(x, y) for name, (step, _) in ways.items()}  # one step each, from the same networks
    after = {name: params() for name, (_, params) in ways.items()}
    print(f"largest difference after one step: logits {(logits['vmap'] - logits['grouped']).abs().max():.2e}, "
          f"parameters {max((a[n] - b[n]).abs().max().item() for a, b in zip(after['vmap'], after['grouped']) for n in a):.2e}")

    ops = {}
    for name, (step, _) in ways.items():
        with OpCount() as counter:
            step(x, y)
        ops[name] = counter.n
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.steps):
        for name, (step, _) in ways.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step(x, y)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(s) for name, s in seconds.items()}
    print(f"{args.seeds} ConvNets (width 128, depth 3, instance norm), {args.images} images each, 32x32x3, "
          f"on {args.device}: one step (forward, loss, backward, SGD)")
    for name in ways:
        print(f"  {name:8s} {ops[name]:5d} ops   {median[name] * 1e3:8.2f} ms per step")
    print(f"grouped: {ops['vmap'] / ops['grouped']:.2f}x fewer ops, {median['vmap'] / median['grouped']:.2f}x the "
          f"speed of vmap")


if __name__ == "__main__":
    main()
