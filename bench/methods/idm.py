"""`idm`: Improved Distribution Matching (Zhao et al., CVPR 2023), as in uitrbn/IDM `IDM_cifar10.py`.

Three changes to DM (bench.methods.dm), all as in the reference code:
* partition and expansion (`--aug`): each stored image holds four half-size sub-images, decoded
  by cropping the quadrants and upsampling them x2, so the set trains on 4 x IPC images per class
  while storing IPC full-size images (`QuadrantSet`);
* a queue of networks trained on real data replaces DM's fresh random network: each iteration
  matches with one net from the queue and then trains two queue nets a few SGD steps;
* a cross-entropy term on the synthetic images, weighted by the matching net's running training
  accuracy (in percent), so better-trained nets push harder towards class-discriminative images.
The synthetic images take one SGD step per class, as the reference does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.augment import dsa, siamese_generator, to_device
from bench.methods import specs
from bench.methods.base import DistillContext, SyntheticSet, class_labels, initial_images, register_format
from bench.methods.dm import ExtraLoss, MatchingState, mean_embedding_distance, watch_all, with_terms
from bench.methods.loop import IterativeMethod
from bench.methods.specs import IDMParams
from bench.train import seeded, train_epoch

INITIAL_QUEUE = 3  # the reference builds 3 nets before its first iteration


def _quadrant_slices(h: int, w: int) -> list[tuple[slice, slice]]:
    """Row/column slices of the quadrants in the reference order: TL, BL, TR, BR.

    For an odd side the bottom (right) half takes the extra pixel, as the reference's
    `[:h // 2]` / `[h // 2:]` crops do."""
    top, left = h // 2, w // 2
    return [(slice(None, top), slice(None, left)), (slice(top, None), slice(None, left)),
            (slice(None, top), slice(left, None)), (slice(top, None), slice(left, None))]


def expand(images: torch.Tensor) -> torch.Tensor:
    """Partition and expansion: (N, C, H, W) -> (4N, C, H, W), quadrant-major (all TL, all BL, ...).

    Each quadrant is upsampled bilinearly (align_corners=False) back to H x W. For even sides
    this is exactly the reference's x2 upsampling; for odd sides the halves differ by one pixel
    and both are resized to the full side, so every decoded image has the stored size.
    """
    h, w = images.shape[-2:]
    return torch.cat([F.interpolate(images[:, :, rows, cols], size=(h, w), mode="bilinear", align_corners=False)
                      for rows, cols in _quadrant_slices(h, w)])


def pack(quadrants: list[torch.Tensor]) -> torch.Tensor:
    """The inverse layout of `expand` for initialisation: four (N, C, H, W) batches, each
    downscaled bilinearly (x0.5 for even sides) into its quadrant (TL, BL, TR, BR) of one image."""
    n, ch, h, w = quadrants[0].shape
    out = quadrants[0].new_empty((n, ch, h, w))
    for x, (rows, cols) in zip(quadrants, _quadrant_slices(h, w)):
        size = out[:, :, rows, cols].shape[-2:]
        out[:, :, rows, cols] = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return out


@register_format
@dataclass
class QuadrantSet(SyntheticSet):
    """IDM's parametrised set: IPC stored images per class, each decoding to 4 training images.

    `nbytes` counts the stored compact images (and labels), not the decoded ones; decoded labels
    repeat with the quadrant-major layout.
    """

    format: ClassVar[str] = "idm-quadrants"

    def training_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return expand(self.images), self.labels.repeat(4)


@dataclass
class QueueNet:
    """A queue network with its own optimiser and its running training accuracy on real batches."""

    net: nn.Module
    opt: torch.optim.Optimizer
    correct: int = 0
    seen: int = 0

    @property
    def accuracy(self) -> float:
        """Percent (0-100) correct since the last reset; 0 before any training, as the reference."""
        return 100.0 * self.correct / self.seen if self.seen else 0.0

    def reset(self) -> None:
        self.correct, self.seen = 0, 0


def class_loss(net: nn.Module, xr: torch.Tensor, xs: torch.Tensor, label: int, ce_scale: float) -> torch.Tensor:
    """||mean f(xr) - mean f(xs)||^2 + ce_scale * CE(net(xs), label) for one class.

    IDM passes ce_scale = ce_weight * the net's training accuracy in percent. The logits reuse
    the synthetic features (forward == classifier(embed) for every bench network).
    """
    with torch.no_grad():
        fr = net.embed(xr)
    fs = net.embed(xs)
    loss = mean_embedding_distance(fr, fs)
    if ce_scale:
        target = torch.full((len(xs),), label, dtype=torch.long, device=xs.device)
        loss = loss + ce_scale * F.cross_entropy(net.classifier(fs), target)
    return loss


def packed_real_init(real: list[torch.Tensor], ipc: int, g: torch.Generator) -> torch.Tensor:
    """IPC stored images per class, each holding 4 distinct real images of the class (reused only when
    the class is smaller) downscaled into its quadrants: IDM's and IDC's real initialisation."""
    packed = []
    for x in real:
        order = torch.cat([torch.randperm(len(x), generator=g) for _ in range(-(-4 * ipc // len(x)))])
        packed.append(pack(list(x[order[:4 * ipc].to(x.device)].split(ipc))))
    return torch.cat(packed)


def new_queue_net(ctx: DistillContext, p: IDMParams, g: torch.Generator) -> QueueNet:
    net = seeded(int(torch.randint(2**31 - 1, (1,), generator=g)), ctx.make_net).to(ctx.device)
    return QueueNet(net, torch.optim.SGD(net.parameters(), lr=p.lr_net, momentum=0.9, weight_decay=5e-4))


def restore_queue_net(ctx: DistillContext, p: IDMParams, saved: dict) -> QueueNet:
    """A queue net as a checkpoint saved it (weights, optimiser momentum, accuracy counts)."""
    net = ctx.make_net().to(ctx.device)
    net.load_state_dict(saved["net"])
    q = QueueNet(net, torch.optim.SGD(net.parameters(), lr=p.lr_net, momentum=0.9, weight_decay=5e-4),
                 saved["correct"], saved["seen"])
    q.opt.load_state_dict(saved["opt"])
    return q


def train_queue_net(q: QueueNet, x: torch.Tensor, y: torch.Tensor, p: IDMParams, g: torch.Generator) -> None:
    """`model_train_steps` SGD steps, each on a fresh random real batch (all classes, no aug),
    counting the batch predictions into the net's running accuracy."""
    def count(indices: torch.Tensor, logits: torch.Tensor) -> None:
        q.correct += int((logits.argmax(1) == y[indices]).sum())
        q.seen += len(indices)

    for _ in range(p.model_train_steps):
        train_epoch(q.net, x, y, q.opt, batch_size=p.trained_bs, generator=g, steps=1, on_batch=count)


@dataclass
class IDMState(MatchingState):
    ctx: DistillContext
    p: IDMParams
    real: list[torch.Tensor]
    syn: torch.Tensor
    opt: torch.optim.Optimizer
    g: torch.Generator
    strategy: str
    x_all: torch.Tensor
    y_all: torch.Tensor
    queue: list[QueueNet]
    terms: list[ExtraLoss]

    def extra(self) -> dict:
        return {"queue": [{"net": q.net.state_dict(), "opt": q.opt.state_dict(), "correct": q.correct,
                           "seen": q.seen} for q in self.queue]}

    def load_extra(self, saved: dict) -> None:
        self.queue = [restore_queue_net(self.ctx, self.p, q) for q in saved["queue"]]


class IDM(specs.IDM, IterativeMethod):

    def extra_losses(self, ctx: DistillContext) -> list[ExtraLoss]:
        """Terms added to each class's loss (`bench.methods.dm.ExtraLoss`): none; a method built on IDM
        returns its own."""
        return []

    def init(self, ctx: DistillContext) -> IDMState:
        p: IDMParams = self.params
        terms = self.extra_losses(ctx)
        g = ctx.generator()
        real = ctx.real_per_class()
        syn = (packed_real_init(real, ctx.ipc, g).requires_grad_(True) if p.aug and p.init == "real"
               else initial_images(real, ctx.ipc, p.init, g))
        opt = torch.optim.SGD([syn], lr=p.lr_img, momentum=p.momentum)
        x_all, y_all = ctx.dataset.x_train.to(ctx.device), ctx.dataset.y_train.to(ctx.device)
        queue = [new_queue_net(ctx, p, g) for _ in range(INITIAL_QUEUE)]
        return IDMState(ctx, p, real, syn, opt, g, ctx.dsa_strategy if p.dsa else "none", x_all, y_all, queue,
                        terms)

    def step(self, s: IDMState, iteration: int) -> float:
        """Refresh the queue; per matched net, one SGD step per class; then train a few queue nets."""
        p: IDMParams = self.params
        ctx, g, ipc, queue = s.ctx, s.g, s.ctx.ipc, s.queue
        if p.acc_reset_interval and iteration and iteration % p.acc_reset_interval == 0:
            for q in queue:
                q.reset()
        if iteration % p.net_generate_interval == 0:
            if len(queue) == p.net_num:
                queue.pop(0)
            queue.append(new_queue_net(ctx, p, g))

        total = 0.0
        for q in [queue[i] for i in torch.randperm(len(queue), generator=g)[:p.train_net_num].tolist()]:
            q.net.eval().requires_grad_(False)
            watched = watch_all(s.terms, q.net)
            for c, real in enumerate(s.real):
                idx = to_device(torch.randperm(len(real), generator=g)[:p.batch_real], ctx.device)
                xs = s.syn[c * ipc:(c + 1) * ipc]
                if p.aug:
                    xs = expand(xs)
                aug_seed = int(torch.randint(2**31 - 1, (1,), generator=g))
                xr = dsa(real[idx], s.strategy, siamese_generator(aug_seed), siamese=True)
                xs = dsa(xs, s.strategy, siamese_generator(aug_seed), siamese=True)
                loss = with_terms(class_loss(watched, xr, xs, c, p.ce_weight * q.accuracy), s.terms, watched,
                                  [xr], [xs])
                s.opt.zero_grad(set_to_none=True)
                loss.backward()
                s.opt.step()
                total += loss.item()
            q.net.requires_grad_(True)

        for i in torch.randperm(len(queue), generator=g)[:p.fetch_net_num].tolist():
            train_queue_net(queue[i], s.x_all, s.y_all, p, g)
        return total / len(s.real)

    def finish(self, s: IDMState) -> SyntheticSet:
        labels = class_labels(len(s.real), s.ctx.ipc)
        images = s.syn.detach().cpu()
        return QuadrantSet(images, labels) if self.params.aug else SyntheticSet(images, labels)
