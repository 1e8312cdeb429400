"""The one training/evaluation loop, and the evaluation protocol as named presets.

Every accuracy in the store comes from `evaluate_synset`: a fresh network, trained on the
synthetic set with the recipe, tested once after the last epoch (never the best epoch).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.augment import dsa

Progress = Callable[[int, int, str], None]
"""progress(step, total, detail): called by long loops so the executor can show where they are."""

DSAMode = Literal["single", "idc"]
"""How a DSA strategy is applied: "single" draws one op family per call (DatasetCondensation's mode
'S'); "idc" is IDC's DiffAug, where flip, colour and cutout always apply and one op is drawn from the rest."""


@dataclass(frozen=True)
class EvalRecipe:
    """How a network is trained on a synthetic set (DatasetCondensation's `evaluate_synset`).

    By default the loop runs `epochs + 1` passes; after pass `epochs // 2 + 1` (0-based) the lr is
    multiplied by `decay_factor` and a fresh SGD optimiser (empty momentum buffer) is created, as in
    the reference code. The fields after `test_batch_size` describe other papers' protocols (IDC);
    at their defaults they change nothing and `as_dict` leaves them out, so the hashes of recipes
    written before they existed stay valid:
    * `decay_at`: fractions of `epochs`; the lr is multiplied by `decay_factor` after pass
      floor(f * epochs) (1-based) for each f, in place, keeping the momentum buffer (torch's
      MultiStepLR, which IDC uses) instead of the single decay with a fresh optimiser;
    * `extra_epoch`: False runs exactly `epochs` passes (IDC) instead of `epochs + 1`;
    * `dsa_mode`: "idc" applies the DSA strategy as IDC's DiffAug does (see `idc_dsa`);
    * `cutmix_prob`, `cutmix_beta`: IDC's CutMix on each batch with this probability, the box area
      drawn from Beta(beta, beta); with CutMix on, cutout is removed from the DSA strategy, as IDC does.
    """

    epochs: int = 1000
    lr: float | Literal["learned"] = 0.01  # "learned": the lr stored in the artifact (MTT's learned α)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    decay_factor: float = 0.1
    augment: Literal["dsa", "none"] = "dsa"
    test_batch_size: int = 256
    decay_at: tuple[float, ...] | None = None
    extra_epoch: bool = True
    dsa_mode: DSAMode = "single"
    cutmix_prob: float = 0.0
    cutmix_beta: float = 1.0

    def __post_init__(self) -> None:
        if self.decay_at is not None:  # a suite's YAML list; a tuple keeps the recipe hashable
            object.__setattr__(self, "decay_at", tuple(self.decay_at))
            if not all(0 < f <= 1 for f in self.decay_at):
                raise ValueError(f"decay_at holds fractions of the epochs in (0, 1], got {self.decay_at}")

    def as_dict(self) -> dict:
        """All fields, less the optional ones at their defaults (the recipe's hashed identity)."""
        defaults = {f.name: f.default for f in fields(self) if f.name in OPTIONAL_FIELDS}
        return {k: v for k, v in asdict(self).items() if k not in defaults or v != defaults[k]}

    def with_overrides(self, overrides: dict) -> EvalRecipe:
        return replace(self, **overrides)

    @property
    def decay_epoch(self) -> int:
        return self.epochs // 2 + 1

    @property
    def passes(self) -> int:
        return self.epochs + 1 if self.extra_epoch else self.epochs

    @property
    def decay_epochs(self) -> tuple[int, ...]:
        """The 0-based passes after which the lr is multiplied by `decay_factor`."""
        if self.decay_at is None:
            return (self.decay_epoch,)
        # + 1e-9: 2/3 * 300 is 199.99999999999997 in floating point; IDC's milestone is 2 * 300 // 3 = 200.
        return tuple(math.floor(f * self.epochs + 1e-9) - 1 for f in self.decay_at)


OPTIONAL_FIELDS = ("decay_at", "extra_epoch", "dsa_mode", "cutmix_prob", "cutmix_beta")

PRESETS: dict[str, EvalRecipe] = {
    # DC/DSA/DM/IDM reference protocol: SGD 0.01, momentum 0.9, wd 5e-4, batch 256, 1000 epochs, DSA.
    "standard": EvalRecipe(),
    # MTT distill.py: the same loop, trained with the synthetic lr learned during distillation.
    "mtt": EvalRecipe(lr="learned"),
    # DC without DSA (DatasetCondensation main.py): no augmentation, 300 epochs (ConvNet on CIFAR/SVHN/
    # FashionMNIST; the reference's DC-aug for MNIST and BN nets is not implemented).
    "dc": EvalRecipe(epochs=300, augment="none"),
    # IDC train.py/argument.py (non-ImageNet): 1000 epochs, batch 64, SGD 0.01 momentum 0.9 wd 5e-4,
    # MultiStepLR x0.2 at 2/3 and 5/6 of the epochs, DiffAug with the data set's strategy less cutout
    # (color_crop_flip_scale_rotate; no flip for MNIST/SVHN), CutMix with beta 1 on half the batches
    # (mix_p 0.5 for CIFAR, SVHN, MNIST, FashionMNIST). IDC's per-data-set exceptions (no CutMix for
    # MNIST with factor > 1, SVHN IPC 1 factor 1) are not part of the preset.
    "idc": EvalRecipe(batch_size=64, decay_factor=0.2, decay_at=(2 / 3, 5 / 6), extra_epoch=False,
                      dsa_mode="idc", cutmix_prob=0.5, cutmix_beta=1.0),
}

RECIPE_FIELDS = tuple(f.name for f in fields(EvalRecipe))


def idc_dsa(x: torch.Tensor, strategy: str, generator: torch.Generator, siamese: bool = False) -> torch.Tensor:
    """IDC's DiffAug on top of `bench.augment.dsa`: flip, then colour, then one op drawn from the
    strategy's remaining ops (crop, scale, rotate), then cutout, each only if the strategy names it.

    With `siamese`, two generators made from one seed give two batches the same draws, as IDC's
    `batch=True` mode does for the real and synthetic batches it augments together.
    """
    ops = strategy.split("_") if strategy not in ("", "none") else []
    rest = "_".join(op for op in ops if op not in ("flip", "color", "cutout"))
    parts = [op for op in ("flip", "color") if op in ops] + [rest] * bool(rest) + ["cutout"] * ("cutout" in ops)
    for part in parts:
        x = dsa(x, part, generator, siamese=siamese)
    return x


def without_cutout(strategy: str) -> str:
    """The strategy less its cutout op ('none' if nothing is left): IDC's rule when CutMix is on."""
    return "_".join(op for op in strategy.split("_") if op not in ("cutout", "none", "")) or "none"


def cutmix(x: torch.Tensor, y: torch.Tensor, beta: float,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """IDC's CutMix (utils.rand_bbox): paste a box from a shuffled copy of the batch.

    Returns the mixed images, the partner labels and the weight of the own labels (1 - box area
    fraction). The box has sides int(side * sqrt(1 - lam)), lam ~ Beta(beta, beta) (drawn with numpy
    from a seed taken from `generator`), around a uniform centre, clipped to the image.
    """
    lam = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator))).beta(beta, beta)
    n, _, h, w = x.shape
    perm = torch.randperm(n, generator=generator).to(x.device)
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(h, (1,), generator=generator)), int(torch.randint(w, (1,), generator=generator))
    top, bottom = min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h)
    left, right = min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w)
    mixed = x.clone()
    mixed[:, :, top:bottom, left:right] = x[perm, :, top:bottom, left:right]
    return mixed, y[perm], 1.0 - (bottom - top) * (right - left) / (h * w)


def train_epoch(net: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer, *,
                batch_size: int, generator: torch.Generator, dsa_strategy: str = "none",
                steps: int | None = None,
                on_batch: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
                dsa_mode: DSAMode = "single", cutmix_prob: float = 0.0, cutmix_beta: float = 1.0) -> float:
    """One shuffled pass over (x, y) (or its first `steps` batches); returns the mean loss.

    The one place where a network takes SGD steps on data: evaluation, expert trajectories,
    feature networks and methods' inner loops all call it. `on_batch(indices, logits)` lets a
    caller watch per-sample predictions (forgetting events) without a second forward pass.
    Each batch is augmented (`dsa_mode`), then CutMixed with probability `cutmix_prob`, as IDC
    does; with `cutmix_prob` 0 no random number is drawn for it.
    """
    net.train()
    order = torch.randperm(len(x), generator=generator).to(x.device)
    total, batches = 0.0, 0
    for start in range(0, len(x), batch_size):
        if steps is not None and batches == steps:
            break
        idx = order[start:start + batch_size]
        xb, yb = x[idx], y[idx]
        if dsa_strategy not in ("", "none"):
            augment = dsa if dsa_mode == "single" else idc_dsa
            xb = augment(xb, dsa_strategy, generator)
        if cutmix_prob > 0 and float(torch.rand((), generator=generator)) < cutmix_prob:
            xb, partner, keep = cutmix(xb, yb, cutmix_beta, generator)
            logits = net(xb)
            loss = keep * F.cross_entropy(logits, yb) + (1 - keep) * F.cross_entropy(logits, partner)
        else:
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
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
    """Train `net` on (x, y) with the recipe. All randomness (shuffling, DSA, CutMix) comes from `generator`."""
    strategy = dsa_strategy if recipe.augment == "dsa" else "none"
    if recipe.cutmix_prob > 0:
        strategy = without_cutout(strategy)
    lr = recipe.lr
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    for epoch in range(recipe.passes):
        loss = train_epoch(net, x, y, opt, batch_size=recipe.batch_size, generator=generator,
                           dsa_strategy=strategy, dsa_mode=recipe.dsa_mode, cutmix_prob=recipe.cutmix_prob,
                           cutmix_beta=recipe.cutmix_beta)
        if epoch in recipe.decay_epochs:
            lr *= recipe.decay_factor
            if recipe.decay_at is None:
                opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=recipe.momentum,
                                      weight_decay=recipe.weight_decay)
            else:
                for group in opt.param_groups:
                    group["lr"] = lr
        if progress is not None:
            progress(epoch + 1, recipe.passes, f"epoch, loss {loss:.3f}")
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
