"""Benchmark: the K seeds of one evaluation cell trained one at a time (`evaluate_synset`) against together
(`bench.batched.evaluate_synset_batched`), to decide whether `eval: {batch_seeds: true}` should be on by default
on a device.

CIFAR-10-shaped random tensors: a synthetic set of IPC x 10 images 32x32x3, a test set of --test images, the
ConvNet (width 128, depth 3, instance norm), the `standard` recipe with --epochs and CIFAR's DSA strategy. The two
ways alternate in one process (after one untimed warm-up of each), so drift of the machine hits both alike.
Prints each round's seconds, the medians and their ratio (one at a time / together: above 1, batching is faster),
and the largest per-seed accuracy difference.

With --graphs (CUDA only), a third way: together, with the step captured once and replayed as a CUDA graph.

Usage: python benchmarks/batched_seeds.py [--device cpu|cuda] [--seeds 5] [--ipc 10] [--epochs 20] [--rounds 3]
       [--graphs]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from bench import nets
from bench.batched import evaluate_synset_batched
from bench.recipes import PRESETS
from bench.train import evaluate_synset

STRATEGY = "color_crop_cutout_flip_scale_rotate"


def timed(run: Callable[[], list[float]], device: torch.device) -> tuple[float, list[float]]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    accs = run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, accs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--graphs", action="store_true", help="also together with the step replayed as a CUDA graph")
    args = parser.parse_args()
    device, seeds = torch.device(args.device), list(range(args.seeds))
    if args.graphs and device.type != "cuda":
        parser.error("--graphs replays a CUDA graph: it needs --device cuda")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(args.ipc * 10, 3, 32, 32, generator=gen), torch.arange(10).repeat_interleave(args.ipc)
    x_test, y_test = torch.randn(args.test, 3, 32, 32, generator=gen), torch.randint(10, (args.test,), generator=gen)
    recipe = PRESETS["standard"].with_overrides({"epochs": args.epochs})
    build = lambda: nets.get_network("ConvNet", 3, 10, 32)  # noqa: E731
    ways = {
        "one at a time": lambda r: [evaluate_synset(build, x, y, x_test, y_test, r, seed=s, dsa_strategy=STRATEGY,
                                                    device=device) for s in seeds],
        "together": lambda r: [acc for acc, _ in evaluate_synset_batched(build, x, y, x_test, y_test, r, seeds,
                                                                         STRATEGY, device, graphs=False)],
    }
    if args.graphs:
        ways["together, graph"] = lambda r: [acc for acc, _ in evaluate_synset_batched(
            build, x, y, x_test, y_test, r, seeds, STRATEGY, device, graphs=True)]
    warm = recipe.with_overrides({"epochs": 1})
    for run in ways.values():
        timed(lambda: run(warm), device)
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    accs: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for name, run in ways.items():
            s, accs[name] = timed(lambda: run(recipe), device)
            seconds[name].append(s)
            print(f"round {round_ + 1}: {name:13s} {s:8.2f} s", flush=True)
    one = statistics.median(seconds["one at a time"])
    print(f"{args.seeds} seeds, IPC {args.ipc}, {recipe.passes} passes, ConvNet 32x32x3 on {args.device} "
          f"({torch.get_num_threads()} threads): one at a time {one:.2f} s")
    for name in list(ways)[1:]:
        median = statistics.median(seconds[name])
        print(f"{name}: {median:.2f} s, ratio {one / median:.2f}x; largest per-seed accuracy difference from one at "
              f"a time: {max(abs(a - b) for a, b in zip(accs['one at a time'], accs[name])):.2f} points")


if __name__ == "__main__":
    main()
