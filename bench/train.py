"""The one training/evaluation loop, and the evaluation protocol as named presets.

Every accuracy in the store comes from `evaluate_synset`: a fresh network, trained on the
synthetic set with the recipe, tested once after the last epoch (never the best epoch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Callable, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.augment import dsa

Progress = Callable[[int, int, str], None]
"""progress(step, total, detail): called by long loops so the executor can show where they are."""


@dataclass(frozen=True)
class EvalRecipe:
    """How a network is trained on a synthetic set (DatasetCondensation's `evaluate_synset`).

    The loop runs `epochs + 1` passes; at epoch `epochs // 2 + 1` the lr is multiplied by
    `decay_factor` and a fresh SGD optimiser (empty momentum buffer) is created, as in the
    reference code.
    """

    epochs: int = 1000
    lr: float | Literal["learned"] = 0.01  # "learned": the lr stored in the artifact (MTT's learned α)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    decay_factor: float = 0.1
    augment: Literal["dsa", "none"] = "dsa"
    test_batch_size: int = 256

    def as_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, overrides: dict) -> EvalRecipe:
        return replace(self, **overrides)

    @property
    def decay_epoch(self) -> int:
        return self.epochs // 2 + 1


PRESETS: dict[str, EvalRecipe] = {
    # DC/DSA/DM/IDM reference protocol: SGD 0.01, momentum 0.9, wd 5e-4, batch 256, 1000 epochs, DSA.
    "standard": EvalRecipe(),
    # MTT distill.py: the same loop, trained with the synthetic lr learned during distillation.
    "mtt": EvalRecipe(lr="learned"),
    # DC without DSA (DatasetCondensation main.py): no augmentation, 300 epochs (ConvNet on CIFAR/SVHN/
    # FashionMNIST; the reference's DC-aug for MNIST and BN nets is not implemented).
    "dc": EvalRecipe(epochs=300, augment="none"),
}

RECIPE_FIELDS = tuple(f.name for f in fields(EvalRecipe))


def train_epoch(net: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer, *,
                batch_size: int, generator: torch.Generator, dsa_strategy: str = "none",
                steps: int | None = None,
                on_batch: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> float:
    """One shuffled pass over (x, y) (or its first `steps` batches); returns the mean loss.

    The one place where a network takes SGD steps on data: evaluation, expert trajectories,
    feature networks and methods' inner loops all call it. `on_batch(indices, logits)` lets a
    caller watch per-sample predictions (forgetting events) without a second forward pass.
    """
    net.train()
    order = torch.randperm(len(x), generator=generator).to(x.device)
    total, batches = 0.0, 0
    for start in range(0, len(x), batch_size):
        if steps is not None and batches == steps:
            break
        idx = order[start:start + batch_size]
        xb = x[idx]
        if dsa_strategy not in ("", "none"):
            xb = dsa(xb, dsa_strategy, generator)
        logits = net(xb)
        loss = F.cross_entropy(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_batch is not None:
            on_batch(idx, logits.detach())
        total += loss.item()
        batches += 1
    return total / max(batches, 1)


def fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: EvalRecipe, *, dsa_strategy: str,
        generator: torch.Generator, progress: Progress | None = None) -> nn.Module:
    """Train `net` on (x, y) with the recipe. All randomness (shuffling, DSA) comes from `generator`."""
    strategy = dsa_strategy if recipe.augment == "dsa" else "none"
    lr = recipe.lr
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    for epoch in range(recipe.epochs + 1):
        loss = train_epoch(net, x, y, opt, batch_size=recipe.batch_size, generator=generator,
                           dsa_strategy=strategy)
        if epoch == recipe.decay_epoch:
            lr *= recipe.decay_factor
            opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=recipe.momentum,
                                  weight_decay=recipe.weight_decay)
        if progress is not None:
            progress(epoch + 1, recipe.epochs + 1, f"epoch, loss {loss:.3f}")
    return net


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent, net in eval mode."""
    net.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        correct += (net(x[start:start + batch_size]).argmax(1) == y[start:start + batch_size]).sum().item()
    return 100.0 * correct / len(x)


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """Build a network from an explicit seed without disturbing the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def evaluate_synset(build: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor,
                    x_test: torch.Tensor, y_test: torch.Tensor, recipe: EvalRecipe, *, seed: int,
                    dsa_strategy: str, device: torch.device, progress: Progress | None = None) -> float:
    """Train a fresh network (initialised from `seed`) on (x, y); return final-epoch test accuracy (%)."""
    net = seeded(seed, build).to(device)
    generator = torch.Generator().manual_seed(seed + 1)
    fit(net, x.to(device), y.to(device), recipe, dsa_strategy=dsa_strategy, generator=generator,
        progress=progress)
    return accuracy(net, x_test.to(device), y_test.to(device), recipe.test_batch_size)
