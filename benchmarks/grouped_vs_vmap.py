"""Benchmark: K ConvNets trained together the two ways `bench.batched` has, `vmapped` (torch.func's
`stack_module_state` + `vmap`, what it uses for networks other than ConvNets) against `grouped` (the K networks
written as one: each conv with `groups=K`, instance norm as one `group_norm` over the K x width channels, the
classifiers as one batched matmul; what it uses for ConvNets).

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
import statistics
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from bench import nets
from bench.batched import Together, grouped, vmapped
from bench.train import seeded

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class OpCount(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.n += 1
        return func(*args, **(kwargs or {}))


def stepper(together: Together) -> Step:
    """One training step of the K networks on (K, N, C, H, W) images and (K, N) labels; returns the logits."""
    opt = torch.optim.SGD(together.leaves, lr=0.01, momentum=0.9, weight_decay=5e-4, foreach=True)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = together.forward(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / x.shape[1]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return logits.detach()

    return step


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
    together = {"vmap": vmapped(models), "grouped": grouped(models)}
    ways = {name: stepper(t) for name, t in together.items()}

    logits = {name: step(x, y) for name, step in ways.items()}  # one step each, from the same networks
    a, b = (together[name].state() for name in ways)
    print(f"largest difference after one step: logits {(logits['vmap'] - logits['grouped']).abs().max():.2e}, "
          f"parameters {max((a[n] - b[n]).abs().max().item() for n in b):.2e}")

    ops = {}
    for name, step in ways.items():
        with OpCount() as counter:
            step(x, y)
        ops[name] = counter.n
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.steps):
        for name, step in ways.items():
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
