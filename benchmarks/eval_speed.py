"""Benchmark: bench's evaluation of a synthetic set (`bench.train.evaluate_synset`) against DatasetCondensation's
own loop (`reference_loop.py`, rewritten op for op), interleaved in one process, on one device.

Cases: the ConvNet on digits (8x8x1: real digits, IPC images per class drawn at random, tested on digits' test
split, DSA without flip) and on CIFAR-10 shapes (32x32x3 random tensors, a random test set: accuracies are chance,
only the time means something), at IPC 1, 10 and 50. Both loops train the same network from the same seeded
initialisation with the standard recipe (lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, `--epochs` + 1
passes, one decay) and the data set's DSA strategy. Per seed the order of the two alternates, so drift of a
shared machine hits both alike. Time is CPU time of this process on a CPU (the machines are shared; with one
thread it is what the run costs) and wall time on CUDA (synchronised).

`--variants` adds ways to run bench's loop, each timed in the same rotation: `channels_last` (network and input
in NHWC), `compile` (`torch.compile` of the network; its compile time is in the first seed, so read the
median), `batched` (the seeds of a cell trained together, `bench.batched`; its time is per seed), `graphed` (CUDA
only: `batched` with its step replayed as a CUDA graph).

Prints, per case and way: median seconds per evaluation, the ratio reference / way (above 1: faster than the
reference), and mean ± std accuracy over the seeds (the same seeds for every way).

Usage: python benchmarks/eval_speed.py [--device cpu|cuda] [--epochs 20] [--seeds 0 1 2]
           [--cases digits:1 digits:10 digits:50 cifar:1 cifar:10 cifar:50] [--variants channels_last compile batched graphed]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reference_loop  # noqa: E402

from bench import nets  # noqa: E402
from bench.batched import evaluate_synset_batched  # noqa: E402
from bench.data import DATASETS, load_dataset  # noqa: E402
from bench.recipes import PRESETS, EvalRecipe  # noqa: E402
from bench.train import evaluate_synset, seeded  # noqa: E402

Case = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]
Way = Callable[[int], float]


def make_case(shape: str, ipc: int) -> Case:
    """(x, y, x_test, y_test, DSA strategy) of a case; the synthetic set is drawn with a fixed seed."""
    gen = torch.Generator().manual_seed(ipc)
    if shape == "digits":
        data = load_dataset("digits", "data")
        picks = [idx[torch.randperm(len(idx), generator=gen)[:ipc]] for idx in data.class_indices()]
        chosen = torch.cat(picks)
        return data.x_train[chosen], data.y_train[chosen], data.x_test, data.y_test, DATASETS["digits"].dsa_strategy
    x, y = torch.randn(ipc * 10, 3, 32, 32, generator=gen), torch.arange(10).repeat_interleave(ipc)
    x_test, y_test = torch.randn(500, 3, 32, 32, generator=gen), torch.randint(10, (500,), generator=gen)
    return x, y, x_test, y_test, DATASETS["cifar10"].dsa_strategy


class ChannelsLast(nn.Module):
    """A network whose weights and input are NHWC (no parameters of its own: the seeded initialisation is kept)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last))


def ways_for(case: Case, recipe: EvalRecipe, device: torch.device, variants: list[str],
             seeds: list[int]) -> dict[str, Way]:
    x, y, x_test, y_test, strategy = case
    channels, side = x.shape[1], x.shape[2]
    build = lambda: nets.get_network("ConvNet", channels, 10, side)  # noqa: E731

    def reference(seed: int) -> float:
        net = seeded(seed, build)
        torch.manual_seed(seed + 1)
        return reference_loop.evaluate_synset(net, x, y, x_test, y_test, epochs=recipe.epochs, lr=recipe.lr,
                                              batch_size=recipe.batch_size, strategy=strategy, device=device)

    def bench_with(make: Callable[[], nn.Module]) -> Way:
        return lambda seed: evaluate_synset(make, x, y, x_test, y_test, recipe, seed=seed, dsa_strategy=strategy,
                                            device=device)

    ways: dict[str, Way] = {"reference": reference, "bench": bench_with(build)}
    if "channels_last" in variants:
        ways["bench channels_last"] = bench_with(lambda: ChannelsLast(build()))
    if "compile" in variants:
        ways["bench compile"] = bench_with(lambda: torch.compile(build()))

    def batched(graphs: bool) -> Way:
        results: dict[int, float] = {}

        def way(seed: int) -> float:
            """All seeds of the cell at the first call (time shared equally), then each seed's accuracy."""
            if not results:
                accs = evaluate_synset_batched(build, x, y, x_test, y_test, recipe, seeds, strategy, device,
                                               graphs=graphs)
                results.update((seed, math.nan if acc is None else acc) for seed, (acc, _) in zip(seeds, accs))
            return results[seed]
        return way

    if "batched" in variants:
        ways["bench batched"] = batched(graphs=False)
    if "graphed" in variants:
        ways["bench batched graph"] = batched(graphs=True)
    return ways


def cost(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def measure(ways: dict[str, Way], seeds: list[int], device: torch.device) -> dict[str, tuple[list[float], list]]:
    """Seconds and accuracy of every way for every seed, the order of the ways rotating from seed to seed."""
    out: dict[str, tuple[list[float], list]] = {name: ([], []) for name in ways}
    names = list(ways)
    for i, seed in enumerate(seeds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = cost(device)
            acc = ways[name](seed)
            out[name][0].append(cost(device) - start)
            out[name][1].append(acc)
    for name in [name for name in out if name.startswith("bench batched")]:  # its first call trained every seed:
        times = out[name][0]                                                  # share that time equally
        out[name] = ([sum(times) / len(times)] * len(times), out[name][1])
    return out


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):6.2f} ± {sd:5.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cases", nargs="+",
                        default=["digits:1", "digits:10", "digits:50", "cifar:1", "cifar:10", "cifar:50"])
    parser.add_argument("--variants", nargs="*", default=[], choices=("channels_last", "compile", "batched", "graphed"))
    args = parser.parse_args()
    device = torch.device(args.device)
    if "graphed" in args.variants and device.type != "cuda":
        parser.error("--variants graphed replays a CUDA graph: it needs --device cuda")
    recipe = PRESETS["standard"].with_overrides({"epochs": args.epochs})
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.epochs} epochs, seeds {args.seeds}",
          flush=True)
    print(f"{'case':<10} {'way':<20} {'s/eval':>8} {'ref/way':>8}   accuracy (%)", flush=True)
    for spec in args.cases:
        shape, ipc = spec.split(":")
        ways = ways_for(make_case(shape, int(ipc)), recipe, device, args.variants, args.seeds)
        results = measure(ways, args.seeds, device)
        ref = statistics.median(results["reference"][0])
        for name, (times, accs) in results.items():
            median = statistics.median(times)
            print(f"{spec:<10} {name:<20} {median:8.2f} {ref / median:7.2f}x   {spread(accs)}", flush=True)


if __name__ == "__main__":
    main()
