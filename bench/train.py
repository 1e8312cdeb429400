"""The one training/evaluation loop (the protocol it follows is `bench.recipes`).

Every accuracy in the store comes from `evaluate_synset`: a fresh network, trained on the
synthetic set with the recipe, tested once after the last epoch (never the best epoch). Every
network trained from scratch, on a synthetic set or on real data (expert trajectories, the
coresets' feature network, IID's bank, the Whole Dataset row), is trained by `train_fresh`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.augment import Draw, applied, draw, dsa, to_device
from bench.recipes import DSAMode, EvalRecipe

class Diverged(ArithmeticError):
    """A training loss that became NaN or Inf. An evaluation that diverges has no accuracy: it is recorded as
    diverged (excluded from means, counted in every view), never as the chance-level score of a broken net."""


Progress = Callable[[int, int, str], None]
"""progress(step, total, detail): called by long loops so the executor can show where they are."""


def part_progress(progress: Progress, index: int, count: int, what: str) -> Progress:
    """The progress of run `index` of `count` equal runs (e.g. one expert of several), as steps of all of them."""
    return lambda step, total, detail: progress(index * total + step, count * total,
                                                f"{detail} ({what} {index + 1}/{count})")

def idc_parts(strategy: str) -> list[str]:
    """The strategies IDC's DiffAug draws from in turn: flip, then colour, then one op of the strategy's remaining
    ops (crop, scale, rotate), then cutout, each only if the strategy names it."""
    ops = strategy.split("_") if strategy not in ("", "none") else []
    rest = "_".join(op for op in ops if op not in ("flip", "color", "cutout"))
    return [op for op in ("flip", "color") if op in ops] + [rest] * bool(rest) + ["cutout"] * ("cutout" in ops)


def idc_dsa(x: torch.Tensor, strategy: str, generator: torch.Generator, siamese: bool = False) -> torch.Tensor:
    """IDC's DiffAug on top of `bench.augment.dsa`: one `dsa` call per part of `idc_parts`.

    With `siamese`, two generators made from one seed give two batches the same draws, as IDC's
    `batch=True` mode does for the real and synthetic batches it augments together.
    """
    for part in idc_parts(strategy):
        x = dsa(x, part, generator, siamese=siamese)
    return x


def without_cutout(strategy: str) -> str:
    """The strategy less its cutout op ('none' if nothing is left): IDC's rule when CutMix is on."""
    return "_".join(op for op in strategy.split("_") if op not in ("cutout", "none", "")) or "none"


@dataclass(frozen=True)
class Mix:
    """One batch's CutMix draw (IDC's utils.rand_bbox): the partner of each image (a permutation, on the CPU), the
    box pasted from it, and the weight of the own labels (1 - box area fraction)."""

    perm: torch.Tensor
    top: int
    bottom: int
    left: int
    right: int
    keep: float


def draw_cutmix(n: int, h: int, w: int, beta: float, generator: torch.Generator) -> Mix:
    """The box has sides int(side * sqrt(1 - lam)), lam ~ Beta(beta, beta) (drawn with numpy from a seed taken from
    `generator`), around a uniform centre, clipped to the image."""
    lam = np.random.default_rng(int(torch.randint(2**62, (1,), generator=generator))).beta(beta, beta)
    perm = torch.randperm(n, generator=generator)
    cut = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(h, (1,), generator=generator)), int(torch.randint(w, (1,), generator=generator))
    top, bottom = min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h)
    left, right = min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w)
    return Mix(perm, top, bottom, left, right, 1.0 - (bottom - top) * (right - left) / (h * w))


def mixed(x: torch.Tensor, y: torch.Tensor, mix: Mix) -> tuple[torch.Tensor, torch.Tensor]:
    """The images with `mix`'s box pasted from each one's partner, and the partner labels."""
    perm = to_device(mix.perm, x.device)
    out = x.clone()
    out[:, :, mix.top:mix.bottom, mix.left:mix.right] = x[perm, :, mix.top:mix.bottom, mix.left:mix.right]
    return out, y[perm]


def batch_draws(shape: torch.Size | tuple[int, ...], generator: torch.Generator, *, dsa_strategy: str,
                dsa_mode: DSAMode, cutmix_prob: float, cutmix_beta: float) -> tuple[list[Draw], Mix | None]:
    """Every random draw of one training batch of `shape`, in the order `augmented_batch` makes them: DSA
    (`dsa_mode`), then whether to CutMix and how. A loop that trains several networks at once draws through it."""
    parts = [dsa_strategy] if dsa_mode == "single" else idc_parts(dsa_strategy)
    draws = [drawn for part in parts if (drawn := draw(part, shape, generator)) is not None]
    if cutmix_prob > 0 and float(torch.rand((), generator=generator)) < cutmix_prob:
        return draws, draw_cutmix(shape[0], shape[2], shape[3], cutmix_beta, generator)
    return draws, None


def augmented_batch(xb: torch.Tensor, yb: torch.Tensor, generator: torch.Generator, *, dsa_strategy: str,
                    dsa_mode: DSAMode, cutmix_prob: float,
                    cutmix_beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, float]:
    """One training batch as `train_epoch` feeds it: augmented (`dsa_mode`), then CutMixed with probability
    `cutmix_prob`. Returns (images, labels, CutMix partner labels or None, weight of the own labels); the draws
    from `generator` come in this order, so a loop that trains several networks draws as this one does."""
    draws, mix = batch_draws(xb.shape, generator, dsa_strategy=dsa_strategy, dsa_mode=dsa_mode,
                             cutmix_prob=cutmix_prob, cutmix_beta=cutmix_beta)
    for drawn in draws:
        xb = applied(xb, drawn)
    if mix is None:
        return xb, yb, None, 1.0
    xb, partner = mixed(xb, yb, mix)
    return xb, yb, partner, mix.keep


Criterion = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""criterion(logits, images, targets) -> loss of a batch: how a label regime (`bench.recipes.LabelRegime`) scores
the network's outputs on the (augmented) images against the batch's targets."""


def hard_cross_entropy(logits: torch.Tensor, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`labels: hard`: cross-entropy against class indices (the images are not needed)."""
    return F.cross_entropy(logits, targets)


# Both soft losses are multiplied by T^2 (Hinton et al.'s scaling, DD-Ranking's `scale_loss: true`). DD-Ranking's
# configs leave it off because they train with AdamW, whose steps do not depend on the loss's scale; bench's loop is
# SGD, where the gradient of the unscaled loss shrinks ~T^2-fold: at T 20 a ConvNet on digits IPC 10 random images
# stayed at chance (10.0%, 300 epochs, a 98.5% teacher) and reached 97.4% with the scaling (hard labels: 97.0%).


def soft_cross_entropy(logits: torch.Tensor, target_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """DD-Ranking's SoftCrossEntropyLoss with scale_loss: -T^2 sum softmax(t/T) * log_softmax(s/T), mean over the
    batch."""
    target = F.softmax(target_logits / temperature, dim=1)
    return -temperature ** 2 * (target * F.log_softmax(logits / temperature, dim=1)).sum() / len(logits)


def kd_divergence(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """DD-Ranking's KLDivergenceLoss (SRe2L's relabelling loss) with scale_loss: T^2 KL(softmax(t/T) ||
    softmax(s/T)), batchmean."""
    return temperature ** 2 * F.kl_div(F.log_softmax(logits / temperature, dim=1),
                                       F.softmax(teacher_logits / temperature, dim=1), reduction="batchmean")


def soft_criterion(temperature: float) -> Criterion:
    """`labels: soft`: the targets are the set's stored soft labels (logits) of the batch's images."""
    return lambda logits, images, targets: soft_cross_entropy(logits, targets, temperature)


def teacher_criterion(teacher: nn.Module, temperature: float) -> Criterion:
    """`labels: teacher`: a teacher (in eval mode, no gradient) relabels each augmented batch; the targets are
    not used."""
    teacher.eval()

    def loss(logits: torch.Tensor, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            relabelled = teacher(images)
        return kd_divergence(logits, relabelled, temperature)
    return loss


def batch_loss(logits: torch.Tensor, yb: torch.Tensor, partner: torch.Tensor | None, keep: float,
               criterion: Criterion = hard_cross_entropy, xb: torch.Tensor | None = None) -> torch.Tensor:
    """The loss of a batch from `augmented_batch` (images `xb`): CutMix weighs the own and the partner targets."""
    if partner is None:
        return criterion(logits, xb, yb)
    return keep * criterion(logits, xb, yb) + (1 - keep) * criterion(logits, xb, partner)


def train_epoch(net: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer, *,
                batch_size: int, generator: torch.Generator, dsa_strategy: str = "none",
                steps: int | None = None,
                on_batch: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
                dsa_mode: DSAMode = "single", cutmix_prob: float = 0.0, cutmix_beta: float = 1.0,
                criterion: Criterion = hard_cross_entropy) -> float:
    """One shuffled pass over (x, y) (or its first `steps` batches); returns the mean loss.

    The one place where a network takes SGD steps on data: evaluation, expert trajectories,
    feature networks and methods' inner loops all call it. `on_batch(indices, logits)` lets a
    caller watch per-sample predictions (forgetting events) without a second forward pass.
    Each batch is augmented (`dsa_mode`), then CutMixed with probability `cutmix_prob`, as IDC
    does; with `cutmix_prob` 0 no random number is drawn for it. `y` holds the targets `criterion` scores (class
    indices, or soft labels). The loss is summed on the device and read once per pass, where a NaN or Inf raises
    `Diverged`.
    """
    net.train()
    order = to_device(torch.randperm(len(x), generator=generator), x.device)
    total, batches = torch.zeros((), device=x.device), 0
    for start in range(0, len(x), batch_size):
        if steps is not None and batches == steps:
            break
        idx = order[start:start + batch_size]
        xb, yb, partner, keep = augmented_batch(x[idx], y[idx], generator, dsa_strategy=dsa_strategy,
                                                dsa_mode=dsa_mode, cutmix_prob=cutmix_prob, cutmix_beta=cutmix_beta)
        logits = net(xb)
        loss = batch_loss(logits, yb, partner, keep, criterion, xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_batch is not None:
            on_batch(idx, logits.detach())
        total += loss.detach()  # summed on the device: no host sync per batch
        batches += 1
    mean = total.item() / max(batches, 1)
    if not math.isfinite(mean):
        raise Diverged(f"the training loss became {mean}")
    return mean


OnEpoch = Callable[[nn.Module, int, float], None]
"""on_epoch(net, epoch, loss): called after each pass (0-based epoch, its mean loss), e.g. to snapshot parameters."""


def train_strategy(recipe: EvalRecipe, dsa_strategy: str) -> str:
    """The DSA strategy `fit` trains with: none unless the recipe augments with DSA, less cutout under CutMix."""
    strategy = dsa_strategy if recipe.augment == "dsa" else "none"
    return without_cutout(strategy) if recipe.cutmix_prob > 0 else strategy


def sgd(params: list[torch.Tensor], lr: float, recipe: EvalRecipe) -> torch.optim.Optimizer:
    """The recipe's SGD; elementwise, so on stacked parameters it steps each network as on its own."""
    return torch.optim.SGD(params, lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)


def decayed(opt: torch.optim.Optimizer, params: list[torch.Tensor], lr: float, recipe: EvalRecipe,
            epoch: int) -> tuple[torch.optim.Optimizer, float]:
    """The optimiser and lr after pass `epoch` (0-based): at a decay pass the lr is multiplied by `decay_factor`,
    with a fresh optimiser (the reference's single decay) or in place, keeping momentum (`decay_at`)."""
    if epoch not in recipe.decay_epochs:
        return opt, lr
    lr *= recipe.decay_factor
    if recipe.decay_at is None:
        return sgd(params, lr, recipe), lr
    for group in opt.param_groups:
        group["lr"] = lr
    return opt, lr


def fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, recipe: EvalRecipe, *, dsa_strategy: str,
        generator: torch.Generator, progress: Progress | None = None,
        on_batch: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
        on_epoch: OnEpoch | None = None, criterion: Criterion = hard_cross_entropy) -> nn.Module:
    """Train `net` on (x, y) with the recipe. All randomness (shuffling, DSA, CutMix) comes from `generator`.
    `on_batch` and `criterion` are `train_epoch`'s; `on_epoch` sees the network after each pass."""
    strategy = train_strategy(recipe, dsa_strategy)
    params = list(net.parameters())
    lr = recipe.lr
    opt = sgd(params, lr, recipe)
    for epoch in range(recipe.passes):
        try:
            loss = train_epoch(net, x, y, opt, batch_size=recipe.batch_size, generator=generator,
                               dsa_strategy=strategy, on_batch=on_batch, dsa_mode=recipe.dsa_mode,
                               cutmix_prob=recipe.cutmix_prob, cutmix_beta=recipe.cutmix_beta,
                               criterion=criterion)
        except Diverged as exc:
            raise Diverged(f"{exc} in epoch {epoch + 1}/{recipe.passes} (lr {recipe.lr})") from None
        opt, lr = decayed(opt, params, lr, recipe, epoch)
        if on_epoch is not None:
            on_epoch(net, epoch, loss)
        if progress is not None:
            progress(epoch + 1, recipe.passes, f"epoch, loss {loss:.3f}")
    return net


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy in percent, net in eval mode; counted on the device and read once."""
    net.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, len(x), batch_size):
        correct += (net(x[start:start + batch_size]).argmax(1) == y[start:start + batch_size]).sum()
    return 100.0 * correct.item() / len(x)


def seeded(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """Build a network from an explicit seed without disturbing the caller's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def constant_lr(epochs: int, lr: float, momentum: float, weight_decay: float, batch_size: int,
                augment: Literal["dsa", "none"] = "none") -> EvalRecipe:
    """The recipe expert stages train on real data with: plain SGD at a constant lr for exactly `epochs` passes."""
    return EvalRecipe(epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay, batch_size=batch_size,
                      augment=augment, decay_at=(), extra_epoch=False)


def train_fresh(build: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, recipe: EvalRecipe, *,
                seed: int, dsa_strategy: str, device: torch.device, generator: torch.Generator | None = None,
                progress: Progress | None = None,
                on_batch: Callable[[torch.Tensor, torch.Tensor], None] | None = None,
                on_epoch: OnEpoch | None = None, criterion: Criterion = hard_cross_entropy) -> nn.Module:
    """A fresh network, initialised from `seed`, trained on (x, y) with the recipe (`fit`).

    Shuffling and augmentation draw from `generator`, by default a new one seeded with `seed + 1`;
    a caller training several networks from one stream passes its own.
    """
    net = seeded(seed, build).to(device)
    fit(net, x.to(device), y.to(device), recipe, dsa_strategy=dsa_strategy,
        generator=generator if generator is not None else torch.Generator().manual_seed(seed + 1),
        progress=progress, on_batch=on_batch, on_epoch=on_epoch, criterion=criterion)
    return net


def evaluate_synset(build: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor,
                    x_test: torch.Tensor, y_test: torch.Tensor, recipe: EvalRecipe, *, seed: int,
                    dsa_strategy: str, device: torch.device, progress: Progress | None = None,
                    criterion: Criterion = hard_cross_entropy) -> float:
    """Train a fresh network (initialised from `seed`) on (x, y) (targets as `criterion` scores them); return
    final-epoch test accuracy (%). `Diverged` where the training loss became NaN or Inf."""
    net = train_fresh(build, x, y, recipe, seed=seed, dsa_strategy=dsa_strategy, device=device,
                      progress=progress, criterion=criterion)
    return accuracy(net, x_test.to(device), y_test.to(device), recipe.test_batch_size)
