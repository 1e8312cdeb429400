"""`udd`: Dataset Distillation via Mining Underutilized Regions (Wang, Zhang & Cheng, PRCV 2024; arXiv
2408.16268). No public code exists; this follows the paper's Sections 2.2-2.5, Algorithm 1 and
Appendix A, on the base the paper names, IDC (snu-mllab/Efficient-Dataset-Condensation `condense.py`).

IDC base (as its `condense.py` and `misc/reproduce.py`): the synthetic images are optimised in pixel
space [0, 1] (normalised on the fly, clamped to [0, 1] before every outer iteration) with SGD
(momentum 0.5, lr x IPC/10 as IDC's `tune_lr_img`). Every outer iteration draws a fresh network;
`inner_loop` times, each class takes one SGD step matching the gradients of the conv kernels (bias,
norm and classifier gradients are left out, IDC's `--bias False --fc False`) on a real batch and on
the class's synthetic training images, both augmented with one siamese draw of IDC's DiffAug
(`color_crop_cutout`), then the network trains on `n_data` real images (batch 64, DiffAug
`color_crop`, CutMix), after `pretrain_epochs` epochs on the real data (IDC's `--early`, its ImageNet-10
setting). With `factor` 2 (multi-formation) every stored image holds four half-size
sub-images, initialised from four real images and decoded by bilinear x2 upsampling; the stored
set is IDM's `idm-quadrants` format, so evaluation trains on the same decoded images as IDC's. With
`factor` f >= 3 (IDC's ImageNet setting) every stored image holds f x f real images (IDC's `mix` init)
and decodes as IDC's `decode_zoom` does (`zoom_decode`; stored as `ZoomSet`); `decode: bound` is IDC's
`decode_zoom_bound` for the matching batch.

UDD on top:
* candidate regions (Sec. 2.2): three sizes (1/3, 1/2, 2/3 of the side, rounded) at the four corners
  (TL, TR, BL, BR) of each stored image: N = 12;
* scores (Sec. 2.3-2.4), from one forward of the whole image (Fig. 4b): the channel-mean of |activation|
  (or of |d CE / d activation| for the gradient policy) at the input of the network's
  `response_layer`-th convolution, resized bilinearly to the image size and averaged in each region;
  the jitter score is |clean score - mean of the M jittered scores|, the whole image jittered M times;
  `voting` takes the P regions most often among the three policies' lowest P (ties: lowest summed rank);
* the P lowest-scoring regions of every stored image are upsampled bilinearly to full size and added
  to its decoded sub-images to form the class's synthetic training batch (at most `batch_syn_max`,
  randomly subsampled as IDC does);
* CFC loss (Eq. 7-8) on the mean embedding of that batch against moving-average class centres,
  L_syn = L_g + cfc_weight * L_c (Eq. 10; the paper's weight is 1).

Choices the paper leaves open (all parameters, documented at their fields): the response layer, the
jitter noise strengths, jittering the whole image rather than each region, the class centres' start
(a class's first batch mean) and their persistence across networks (Eq. 8 never resets them), the
CFC features (the embedding of the augmented matching batch), and the voting rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.augment import siamese_generator, to_device
from bench.methods import specs
from bench.methods.base import DistillContext, SyntheticSet, class_labels, register_format, sample_per_class
from bench.methods.gradmatch import class_gradient, match_distance
from bench.methods.idm import QuadrantSet, expand, packed_real_init
from bench.methods.loop import IterativeMethod, LoopState
from bench.methods.specs import Jitter, UDDParams
from bench.train import idc_dsa, seeded, train_epoch

Box = tuple[int, int, int, int]  # top, left, height, width


def zoom_decode(images: torch.Tensor, factor: int, fill: torch.Tensor) -> torch.Tensor:
    """IDC's multi-formation decode (`decode_zoom`): (N, C, S, S) -> (factor^2 N, C, S, S), crop-major.

    The images are padded at the bottom and right with `fill` (C values: IDC's grey 0.5, in the images'
    units) to a multiple of `factor`, cut into factor x factor crops of side ceil(S / factor) in row-major
    order, and each crop is upsampled bilinearly (align_corners=False) back to S x S.
    """
    side = images.shape[-1]
    crop = math.ceil(side / factor)
    pad = crop * factor - side
    grey = fill.view(1, -1, 1, 1).to(images)
    padded = torch.cat([images, grey.expand(len(images), -1, side, pad)], 3)
    padded = torch.cat([padded, grey.expand(len(images), -1, pad, side + pad)], 2)
    crops = [padded[:, :, i * crop:(i + 1) * crop, j * crop:(j + 1) * crop]
             for i, j in product(range(factor), repeat=2)]
    return F.interpolate(torch.cat(crops), size=images.shape[-2:], mode="bilinear", align_corners=False)


def bound_decode(images: torch.Tensor, factor: int, fill: torch.Tensor, bound: int) -> torch.Tensor:
    """IDC's `decode_zoom_bound` for one class: the first stored images decode at `factor`, the next at
    factor - 1, ..., the rest at 1 (as stored), taking as many at each factor as keep the total within
    `bound` while every later image still fits."""
    parts, start, decoded = [], 0, 0
    for f in range(factor, 0, -1):
        left = len(images) - start
        n = max(0, min((bound - decoded - left) // f**2, left)) if f > 1 else left
        if n > 0:
            parts.append(zoom_decode(images[start:start + n], f, fill) if f > 1 else images[start:start + n])
        start, decoded = start + n, decoded + n * f**2
        if start == len(images):
            break
    return torch.cat(parts)


def zoom_real_init(real: list[torch.Tensor], ipc: int, factor: int, g: torch.Generator) -> torch.Tensor:
    """IDC's `mix` initialisation for `factor`: each stored image holds factor^2 distinct real images of its
    class (reused only when the class is smaller), each downscaled (nearest, IDC's F.interpolate default)
    into its cell of a factor x factor grid, row-major; the first side % factor rows and columns of cells
    are one pixel larger (IDC's Synthesizer.init)."""
    packed = []
    for x in real:
        side, k = x.shape[-1], factor * factor
        lengths = [side // factor + (i < side % factor) for i in range(factor)]
        cells = list(zip([sum(lengths[:i]) for i in range(factor)], lengths))
        order = torch.cat([torch.randperm(len(x), generator=g) for _ in range(-(-k * ipc // len(x)))])
        out = x.new_empty((ipc, *x.shape[1:]))
        for part, ((top, h), (left, w)) in zip(x[order[:k * ipc].to(x.device)].split(ipc), product(cells, repeat=2)):
            out[:, :, top:top + h, left:left + w] = F.interpolate(part, size=(h, w))
        packed.append(out)
    return torch.cat(packed)


@register_format
@dataclass(kw_only=True)
class ZoomSet(SyntheticSet):
    """IDC's multi-formation set for any factor: IPC stored images per class, each decoding to factor^2
    training images (`zoom_decode`). The factor and the padding value are stored with the images (and
    counted in `nbytes`); decoded labels repeat crop-major."""

    factor: torch.Tensor  # 0-d int64
    fill: torch.Tensor  # (C,): IDC's grey 0.5 in the stored (normalised) units
    format: ClassVar[str] = "idc-zoom"
    not_images: ClassVar[tuple[str, ...]] = ("labels", "lr", "factor", "fill")

    def tensors(self) -> dict[str, torch.Tensor]:
        return {**super().tensors(), "factor": self.factor, "fill": self.fill}

    def training_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        factor = int(self.factor)
        return zoom_decode(self.images, factor, self.fill), self.labels.repeat(factor * factor)


def candidate_boxes(height: int, width: int, scales: list[float]) -> list[Box]:
    """The candidate regions: for each scale, a box of side int(scale * side + 0.5) at the four corners
    in the order TL, TR, BL, BR (UDD Sec. 2.2)."""
    boxes = []
    for s in scales:
        h, w = max(1, int(s * height + 0.5)), max(1, int(s * width + 0.5))
        boxes += [(0, 0, h, w), (0, width - w, h, w), (height - h, 0, h, w), (height - h, width - w, h, w)]
    return boxes


def region_means(maps: torch.Tensor, boxes: list[Box], size: tuple[int, int]) -> torch.Tensor:
    """(N, h, w) response maps -> (N, regions) mean response in each box of an image of `size`.

    A map of another size than the image (a feature map) is resized bilinearly to the image first,
    so every box covers the same part of the map as of the image (Fig. 4b).
    """
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    return torch.stack([maps[:, t:t + h, l:l + w].mean((-2, -1)) for t, l, h, w in boxes], 1)


def jitter_scores(clean: torch.Tensor, jittered: torch.Tensor) -> torch.Tensor:
    """UDD Eq. 3-4: sigma = |Lambda - mean over the M jitters of Lambda_hat|; (N, R) and (M, N, R)."""
    return (clean - jittered.mean(0)).abs()


def lowest(scores: torch.Tensor, p: int) -> torch.Tensor:
    """Indices of the `p` lowest scores per row (ties: the earlier region)."""
    return torch.argsort(scores, dim=1, stable=True)[:, :p]


def vote(scores: list[torch.Tensor], p: int) -> torch.Tensor:
    """The `p` regions most often among the policies' lowest `p`; ties go to the lowest summed rank."""
    ranks = [torch.argsort(torch.argsort(s, dim=1, stable=True), dim=1) for s in scores]
    votes = sum((r < p).long() for r in ranks)
    total_rank = sum(ranks)
    regions = scores[0].shape[1]
    return lowest((total_rank - votes * len(scores) * regions).double(), p)


def upsample_regions(images: torch.Tensor, boxes: list[Box], chosen: torch.Tensor) -> torch.Tensor:
    """Crop the chosen regions (N, P indices into `boxes`) of every image and resize them bilinearly to
    the image size: (N * P, C, H, W), image-major. Differentiable w.r.t. `images`."""
    size = images.shape[-2:]
    crops = torch.stack([F.interpolate(images[:, :, t:t + h, l:l + w], size=size, mode="bilinear",
                                       align_corners=False) for t, l, h, w in boxes])
    rows = torch.arange(len(images), device=images.device).unsqueeze(1).expand_as(chosen)
    return crops[chosen, rows].flatten(0, 1)


def response_maps(net: nn.Module, x: torch.Tensor, layer: int, labels: torch.Tensor | None = None) -> torch.Tensor:
    """(N, h, w) channel-mean of |activation| at the input of the network's `layer`-th convolution, or,
    given `labels`, of |d CE(net(x), labels) / d activation| there (the gradient response)."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if layer >= len(convs):
        raise ValueError(f"response_layer {layer}: the network has only {len(convs)} convolutions")
    captured: list[torch.Tensor] = []
    handle = convs[layer].register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0]))
    try:
        if labels is None:
            with torch.no_grad():
                net(x)
            return captured[0].abs().mean(1)
        loss = F.cross_entropy(net(x), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, captured[0])
        return grad.abs().mean(1)
    finally:
        handle.remove()


def jitter_images(x: torch.Tensor, kind: Jitter, strength: float, m: int, generator: torch.Generator) -> torch.Tensor:
    """`m` jittered copies of (N, C, H, W) pixel images in [0, 1]: (m * N, C, H, W).

    gaussian: + N(0, strength^2); uniform: + U(-a, a) with a = sqrt(3) * strength (the same std);
    salt_pepper: a `strength` fraction of pixel positions set to 0 or 1 (all channels, equal odds).
    """
    shape = (m, *x.shape)
    if kind == "gaussian":
        out = x + strength * torch.randn(shape, generator=generator).to(x.device)
    elif kind == "uniform":
        out = x + math.sqrt(3) * strength * (2 * torch.rand(shape, generator=generator).to(x.device) - 1)
    else:
        where = (m, x.shape[0], 1, *x.shape[2:])
        hit = torch.rand(where, generator=generator).to(x.device) < strength
        salt = (torch.rand(where, generator=generator).to(x.device) < 0.5).to(x.dtype)
        out = torch.where(hit, salt, x.unsqueeze(0))
    return out.flatten(0, 1)


def cfc_loss(mean_feature: torch.Tensor, centres: torch.Tensor, c: int, tau: float,
             known: torch.Tensor) -> torch.Tensor:
    """UDD Eq. 7: -log( exp(sim(f_c, F_c)/tau) / sum_{i != c} exp(sim(f_c, F_i)/tau) ), cosine sim.

    Only centres marked `known` (classes seen so far) enter the denominator; 0 while there is none.
    """
    sims = F.cosine_similarity(mean_feature.unsqueeze(0), centres, dim=1) / tau
    others = known.clone()
    others[c] = False
    if not others.any():
        return mean_feature.new_zeros(())
    return torch.logsumexp(sims[others], 0) - sims[c]


class ClassCentres:
    """Moving-average mean embedding of every class (UDD Eq. 8), kept across networks as Eq. 8 does.

    A class's centre starts at its first batch mean; `state`/`load` make it checkpointable.
    """

    def __init__(self, num_classes: int, momentum: float, centres: torch.Tensor | None = None,
                 known: torch.Tensor | None = None):
        self.momentum = momentum
        self.centres = centres if centres is not None else torch.zeros(num_classes, 0)
        self.known = known if known is not None else torch.zeros(num_classes, dtype=torch.bool)

    def loss(self, mean_feature: torch.Tensor, c: int, tau: float) -> torch.Tensor:
        """The CFC loss of class c against the current centres, then the centre moves (Eq. 8)."""
        f = mean_feature.detach()
        if self.centres.shape[1] != f.shape[0]:
            self.centres = f.new_zeros(len(self.known), f.shape[0])
            self.known = self.known.to(f.device)
        if not self.known[c]:
            self.centres[c] = f
            self.known[c] = True
        loss = cfc_loss(mean_feature, self.centres, c, tau, self.known)
        self.centres = self.centres.clone()  # the loss's graph holds the old tensor: never write into it
        self.centres[c] = self.momentum * self.centres[c] + (1 - self.momentum) * f
        return loss

    def state(self) -> dict[str, torch.Tensor]:
        return {"centres": self.centres.detach().cpu(), "known": self.known.cpu()}

    def load(self, state: dict[str, torch.Tensor], device: torch.device) -> None:
        self.centres, self.known = state["centres"].to(device), state["known"].to(device)


@dataclass
class UDDState(LoopState):
    ctx: DistillContext
    real: list[torch.Tensor]
    pixels: torch.Tensor  # the stored images in pixel space [0, 1], optimised
    opt: torch.optim.Optimizer
    g: torch.Generator
    mean: torch.Tensor
    std: torch.Tensor
    base_lr: float
    milestones: list[int]
    boxes: list[Box]
    centres: ClassCentres
    x_all: torch.Tensor
    y_all: torch.Tensor

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"pixels": self.pixels}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def generators(self) -> dict[str, torch.Generator]:
        return {"g": self.g}

    def extra(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"centres": self.centres.state()}

    def load_extra(self, saved: dict[str, dict[str, torch.Tensor]]) -> None:
        self.centres.load(saved["centres"], self.ctx.device)


def _grey(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """IDC's padding grey, pixel value 0.5, in normalised units: (C,)."""
    return ((0.5 - mean) / std).flatten()


class UDD(specs.UDD, IterativeMethod):
    def init(self, ctx: DistillContext) -> UDDState:
        p: UDDParams = self.params
        g = ctx.generator()
        real = ctx.real_per_class()
        spec = ctx.dataset.spec
        mean = torch.tensor(spec.mean, device=ctx.device).view(1, -1, 1, 1)
        std = torch.tensor(spec.std, device=ctx.device).view(1, -1, 1, 1)
        pixels = (self._init(real, ctx.ipc, g) * std + mean).detach().requires_grad_(True)
        return UDDState(ctx, real, pixels, torch.optim.SGD([pixels], lr=p.lr_img, momentum=p.momentum_img), g,
                        mean, std, p.lr_img * (ctx.ipc / 10 if p.lr_img_ipc_scale else 1.0),
                        [math.floor(f * p.iterations + 1e-9) for f in p.lr_img_decay_at],
                        candidate_boxes(spec.image_size, spec.image_size, p.region_scales),
                        ClassCentres(len(real), p.centre_momentum),
                        ctx.dataset.x_train.to(ctx.device), ctx.dataset.y_train.to(ctx.device))

    def step(self, s: UDDState, iteration: int) -> float:
        """One fresh network: `inner_loop` rounds of one matching step per class, then real training."""
        p: UDDParams = self.params
        ctx, g, ipc = s.ctx, s.g, s.ctx.ipc
        for group in s.opt.param_groups:
            group["lr"] = s.base_lr * p.lr_img_decay_factor ** sum(iteration >= m for m in s.milestones)
        with torch.no_grad():
            s.pixels.clamp_(0, 1)
        net = seeded(int(torch.randint(2**31 - 1, (1,), generator=g)), ctx.make_net).to(ctx.device)
        net.train()
        opt_net = torch.optim.SGD(net.parameters(), lr=p.lr_net, momentum=0.9, weight_decay=5e-4)

        def train_net(steps: int | None) -> None:
            train_epoch(net, s.x_all, s.y_all, opt_net, batch_size=p.net_batch, generator=g, steps=steps,
                        dsa_strategy=p.net_augment, dsa_mode="idc", cutmix_prob=p.net_cutmix_prob,
                        cutmix_beta=p.net_cutmix_beta)

        for _ in range(p.pretrain_epochs):
            train_net(None)
        total = 0.0
        for _ in range(p.inner_loop):
            for c, real in enumerate(s.real):
                loss = self._class_loss(net, s.pixels[c * ipc:(c + 1) * ipc], real, c, s.mean, s.std, s.boxes,
                                        s.centres, g)
                s.opt.zero_grad(set_to_none=True)
                loss.backward(inputs=[s.pixels])
                s.opt.step()
                total += loss.item()
            train_net(math.ceil(p.n_data / p.net_batch))
        return total / (len(s.real) * p.inner_loop)

    def finish(self, s: UDDState) -> SyntheticSet:
        images = ((s.pixels.detach() - s.mean) / s.std).cpu()
        labels = class_labels(len(s.real), s.ctx.ipc)
        factor = self.params.factor
        if factor >= 3:
            return ZoomSet(images, labels, factor=torch.tensor(factor), fill=_grey(s.mean, s.std).cpu())
        return QuadrantSet(images, labels) if factor == 2 else SyntheticSet(images, labels)

    def _class_loss(self, net: nn.Module, pixels: torch.Tensor, real: torch.Tensor, c: int, mean: torch.Tensor,
                    std: torch.Tensor, boxes: list[Box], centres: ClassCentres, g: torch.Generator) -> torch.Tensor:
        """L_g + cfc_weight * L_c for class c (Eq. 10), on its synthetic training batch: the decoded
        images plus the upsampled underutilised regions of each stored image."""
        p: UDDParams = self.params
        x = (pixels - mean) / std
        batch = self._formed(x, _grey(mean, std))
        if p.num_regions:
            chosen = self._underutilised(net, pixels.detach(), c, mean, std, boxes, g)
            batch = torch.cat([batch, upsample_regions(x, boxes, chosen)])
        if len(batch) > p.batch_syn_max:
            batch = batch[to_device(torch.randperm(len(batch), generator=g)[:p.batch_syn_max], batch.device)]
        xr = real[to_device(torch.randperm(len(real), generator=g)[:p.batch_real], real.device)]
        seed = int(torch.randint(2**31 - 1, (1,), generator=g))
        xr = idc_dsa(xr, p.match_augment, siamese_generator(seed), siamese=True)
        xs = idc_dsa(batch, p.match_augment, siamese_generator(seed), siamese=True)
        conv = [w.dim() > 2 for w in net.parameters()]  # IDC matches conv kernels only
        gw_real = [gr.detach() for gr, keep in zip(class_gradient(net, xr, c, create_graph=False), conv) if keep]
        gw_syn = [gs for gs, keep in zip(class_gradient(net, xs, c, create_graph=True), conv) if keep]
        if p.metric == "l1":  # IDC's dist(method='l1'): summed absolute differences of every matched kernel
            loss = sum(((gs - gr).abs().sum() for gs, gr in zip(gw_syn, gw_real)), gw_syn[0].new_zeros(()))
        else:
            loss = match_distance(gw_syn, gw_real, p.metric)
        if p.cfc:
            loss = loss + p.cfc_weight * centres.loss(net.embed(xs).mean(0), c, p.tau)
        return loss

    def _formed(self, x: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
        """A class's multi-formation training images from its stored images (IDC's Synthesizer.decode)."""
        p: UDDParams = self.params
        if p.decode == "bound":
            return bound_decode(x, p.factor, fill, p.batch_syn_max)
        if p.factor == 2:
            return expand(x)
        return zoom_decode(x, p.factor, fill) if p.factor >= 3 else x

    def _underutilised(self, net: nn.Module, pixels: torch.Tensor, c: int, mean: torch.Tensor, std: torch.Tensor,
                       boxes: list[Box], g: torch.Generator) -> torch.Tensor:
        """(N, P) indices of each stored image's underutilised regions under the current network."""
        p: UDDParams = self.params
        x = (pixels - mean) / std
        size = tuple(x.shape[-2:])
        scores = []
        if p.policy in ("activation", "jitter", "voting"):
            batch = x
            if p.policy != "activation":
                jittered = jitter_images(pixels, p.jitter, p.jitter_strength, p.num_jitters, g)
                batch = torch.cat([x, (jittered - mean) / std])
            means = region_means(response_maps(net, batch, p.response_layer), boxes, size).view(-1, len(x), len(boxes))
            if p.policy != "jitter":
                scores.append(means[0])
            if p.policy != "activation":
                scores.append(jitter_scores(means[0], means[1:]))
        if p.policy in ("gradient", "voting"):
            labels = torch.full((len(x),), c, dtype=torch.long, device=x.device)
            scores.append(region_means(response_maps(net, x, p.response_layer, labels), boxes, size))
        return vote(scores, p.num_regions) if p.policy == "voting" else lowest(scores[0], p.num_regions)

    def _init(self, real: list[torch.Tensor], ipc: int, g: torch.Generator) -> torch.Tensor:
        """Real initialisation (UDD Sec. 2.1): IPC real images per class, or with `factor` 2 IDC's 'mix'
        init, four distinct real images of the class (reused only if the class is smaller) downscaled
        into the four quadrants of each stored image, and with `factor` >= 3 `zoom_real_init`."""
        factor = self.params.factor
        if factor >= 3:
            return zoom_real_init(real, ipc, factor, g)
        return sample_per_class(real, ipc, g) if factor == 1 else packed_real_init(real, ipc, g)
