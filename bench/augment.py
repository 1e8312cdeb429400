"""Differentiable Siamese Augmentation (DSA), single-op mode 'S'.

Semantics follow VICO-UoE/DatasetCondensation (`ParamDiffAug`, `DiffAugment`, `rand_*`):
each call picks one op family uniformly from the '_'-separated strategy and applies it to
the whole batch. All ops are differentiable w.r.t. x.

Randomness comes only from the caller's CPU `torch.Generator`; values are drawn on CPU and
moved to x's device (`to_device`: pinned memory, an asynchronous copy, so a GPU run never waits for its queue to
drain on every batch), and a given generator state gives the same parameters on any device.

Siamese use (matching, `siamese=True`): the reference seeds both calls identically and switches
to "batch mode", where every sample of a batch gets the first sample's parameters. Here: make
`siamese_generator(seed)` twice and call dsa with `siamese=True` on the real batch and on the
synthetic batch; both pick the same family and apply the same single parameter draw to every
image, whatever the two batch sizes.

Evaluation use (`siamese=False`): seed one generator per training run and pass it to every
call; parameters are random per sample.
"""

import functools
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.recipes import FAMILIES


@dataclass(frozen=True)
class DSAParams:
    """Augmentation strengths of the reference `ParamDiffAug`."""

    prob_flip: float = 0.5
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0  # degrees
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5
    # DatasetCondensation relies on the grid_sample default (False); MTT passes True.
    align_corners: bool = False


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """A CPU tensor of random draws on `device`. To a GPU through pinned memory without blocking: a copy from
    ordinary (pageable) memory makes the host wait until the GPU has finished all queued work, once per batch."""
    if device.type != "cuda":
        return t.to(device)
    return t.contiguous().pin_memory().to(device, non_blocking=True)


def siamese_generator(seed: int) -> torch.Generator:
    """A CPU generator; two made from one seed give identical draws."""
    return torch.Generator(device="cpu").manual_seed(seed)


def _shift_bound(size: int, ratio: float) -> int:
    return int(size * ratio + 0.5)


def color(x: Tensor, brightness: Tensor, saturation: Tensor, contrast: Tensor) -> Tensor:
    """Brightness shift, then saturation and contrast scaling, with per-sample (N,) factors."""
    b, s, c = (t.to(x.device, x.dtype).view(-1, 1, 1, 1) for t in (brightness, saturation, contrast))
    x = x + b
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * s + mean_c
    mean_chw = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean_chw) * c + mean_chw


def crop(x: Tensor, shift_h: Tensor, shift_w: Tensor) -> Tensor:
    """out[n, :, i, j] = x[n, :, i + shift_h[n], j + shift_w[n]], zero outside the image.

    Reads go through a 1-pixel zero pad with clamped indices, as in the reference.
    """
    n, ch, h, w = x.shape
    dev = x.device
    rows = (torch.arange(h, device=dev) + shift_h.to(dev).view(-1, 1) + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=dev) + shift_w.to(dev).view(-1, 1) + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, ch, h, w + 2))
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, ch, h, w))


def cutout(x: Tensor, center_h: Tensor, center_w: Tensor, ratio: float = DSAParams.ratio_cutout) -> Tensor:
    """Zero a per-sample box of side int(size*ratio+0.5) starting at center - side//2.

    The box is clipped to the image, matching the reference's clamped index scatter.
    """
    _, _, h, w = x.shape
    dev = x.device

    def inside(center: Tensor, size: int) -> Tensor:
        side = _shift_bound(size, ratio)
        lo = center.to(dev).view(-1, 1) - side // 2
        idx = torch.arange(size, device=dev)
        return (idx >= lo) & (idx < lo + side)

    box = inside(center_h, h).unsqueeze(2) & inside(center_w, w).unsqueeze(1)
    return x * (~box).unsqueeze(1).to(x.dtype)


def flip(x: Tensor, mask: Tensor) -> Tensor:
    """Horizontally flip the samples where the (N,) bool mask is set."""
    return torch.where(mask.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)


def _warp(x: Tensor, theta: Tensor, align_corners: bool) -> Tensor:
    theta = theta.to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, align_corners=align_corners)


def scale(x: Tensor, sx: Tensor, sy: Tensor, align_corners: bool = False) -> Tensor:
    """Affine scale with theta [[sx, 0, 0], [0, sy, 0]] (sx > 1 shrinks the content)."""
    return _warp(x, scale_theta(sx, sy), align_corners)


def scale_theta(sx: Tensor, sy: Tensor) -> Tensor:
    zero = torch.zeros_like(sx)
    return torch.stack([torch.stack([sx, zero, zero], 1), torch.stack([zero, sy, zero], 1)], 1)


def rotate(x: Tensor, angle: Tensor, align_corners: bool = False) -> Tensor:
    """Rotate by angle (radians) with the reference theta [[cos, -sin, 0], [sin, cos, 0]].

    A positive angle turns the image anticlockwise (90 degrees == torch.rot90(x, 1, (2, 3))).
    """
    return _warp(x, rotate_theta(angle), align_corners)


def rotate_theta(angle: Tensor) -> Tensor:
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    return torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)


def pick_family(strategy: str, generator: torch.Generator) -> str | None:
    """Draw the op family for one call; None when the strategy disables augmentation."""
    if strategy.lower() in ("", "none"):
        return None
    names = strategy.split("_")
    unknown = [name for name in names if name not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown DSA ops {unknown} in strategy {strategy!r}")
    return names[int(torch.randint(len(names), (1,), generator=generator))]


def sample_params(
    family: str, shape: torch.Size | tuple[int, ...], generator: torch.Generator, params: DSAParams,
    siamese: bool = False,
) -> dict[str, Tensor]:
    """CPU parameters for `family` on a batch of `shape` (N, C, H, W): one draw per sample, or,
    when `siamese`, one draw repeated for every sample (the reference's batch mode)."""
    if generator.device.type != "cpu":
        raise ValueError("DSA needs a CPU generator so draws match across devices")
    n, _, h, w = shape
    draws = 1 if siamese else n

    def uniform(m: int) -> Tensor:
        return torch.rand(draws, m, generator=generator).expand(n, m)

    def integers(lo_h: int, hi_h: int, lo_w: int, hi_w: int) -> tuple[Tensor, Tensor]:
        return (torch.randint(lo_h, hi_h, (draws,), generator=generator).expand(n),
                torch.randint(lo_w, hi_w, (draws,), generator=generator).expand(n))

    if family == "color":
        u = uniform(3)
        return {
            "brightness": (u[:, 0] - 0.5) * params.brightness,
            "saturation": u[:, 1] * params.saturation,
            "contrast": u[:, 2] + params.contrast,
        }
    if family == "crop":
        bh, bw = _shift_bound(h, params.ratio_crop_pad), _shift_bound(w, params.ratio_crop_pad)
        shift_h, shift_w = integers(-bh, bh + 1, -bw, bw + 1)
        return {"shift_h": shift_h, "shift_w": shift_w}
    if family == "cutout":
        side_h, side_w = _shift_bound(h, params.ratio_cutout), _shift_bound(w, params.ratio_cutout)
        center_h, center_w = integers(0, h + 1 - side_h % 2, 0, w + 1 - side_w % 2)
        return {"center_h": center_h, "center_w": center_w}
    if family == "flip":
        return {"mask": uniform(1)[:, 0] < params.prob_flip}
    if family == "scale":
        r = params.ratio_scale
        u = uniform(2) * (r - 1.0 / r) + 1.0 / r
        return {"sx": u[:, 0], "sy": u[:, 1]}
    if family == "rotate":
        return {"angle": (uniform(1)[:, 0] - 0.5) * 2 * params.ratio_rotate / 180 * math.pi}
    raise ValueError(f"unknown DSA op {family!r}")


def apply_family(family: str, x: Tensor, drawn: dict[str, Tensor], params: DSAParams) -> Tensor:
    """Apply one op family with parameters from `sample_params`."""
    if family == "color":
        return color(x, **drawn)
    if family == "crop":
        return crop(x, **drawn)
    if family == "cutout":
        return cutout(x, **drawn, ratio=params.ratio_cutout)
    if family == "flip":
        return flip(x, **drawn)
    if family == "scale":
        return scale(x, **drawn, align_corners=params.align_corners)
    if family == "rotate":
        return rotate(x, **drawn, align_corners=params.align_corners)
    raise ValueError(f"unknown DSA op {family!r}")


Draw = tuple[str, dict[str, Tensor]]
"""An op family and its CPU parameters (`sample_params`): one call's randomness, drawn before it is applied."""


def draw(strategy: str, shape: torch.Size | tuple[int, ...], generator: torch.Generator,
         params: DSAParams = DSAParams(), siamese: bool = False) -> Draw | None:
    """The family and parameters `dsa` draws for a batch of `shape`; None when the strategy disables augmentation."""
    family = pick_family(strategy, generator)
    return None if family is None else (family, sample_params(family, shape, generator, params, siamese))


def applied(x: Tensor, drawn: Draw, params: DSAParams = DSAParams()) -> Tensor:
    """`x` augmented by one `draw`."""
    family, values = drawn
    return apply_family(family, x, {name: to_device(t, x.device) for name, t in values.items()}, params).contiguous()


def dsa(x: Tensor, strategy: str, generator: torch.Generator, params: DSAParams = DSAParams(),
        siamese: bool = False) -> Tensor:
    """Augment (N, C, H, W) images with one randomly chosen op family (DSA mode 'S')."""
    drawn = draw(strategy, x.shape, generator, params, siamese)
    return x if drawn is None else applied(x, drawn, params)


# Where each family acts in `apply_per_sample`: IDC's order (flip, colour, one geometric op, cutout). Scale and
# rotate are both one affine warp.
STAGES = {"flip": "flip", "color": "color", "crop": "crop", "scale": "warp", "rotate": "warp", "cutout": "cutout"}


def per_sample(draws: Sequence[Sequence[Draw]], n: int) -> dict[str, Tensor]:
    """Every stage's CPU parameters for each of the len(draws) x n images of K batches of n, where batch k takes the
    `draws[k]` in order: the family's values where a draw picked it, identity where none did (no flip, shift or
    cutout box; colour and warp masked off). `apply_per_sample` then augments all K batches with one fixed sequence
    of operations, whatever families were drawn, each image as `applied` would: a sequence of fixed shapes that a
    CUDA graph can capture, and K batches' worth of augmentation in the operations of one. Made on the host at
    every step, so it is a handful of concatenations: crop's and cutout's indices are left to the device."""
    columns = {name: [t] * len(draws) for name, t in _identity(n).items()}
    for k, batch_draws in enumerate(draws):
        for family, values in batch_draws:
            if family in ("scale", "rotate"):
                theta = scale_theta(**values) if family == "scale" else rotate_theta(**values)
                values = {"warp": _identity(n)["on"], "theta": theta}
            elif family == "flip":
                values = {"flip": values["mask"]}
            elif family == "color":
                values = values | {"color": _identity(n)["on"]}
            for name, value in values.items():
                columns[name][k] = value
    return {name: torch.cat(column) for name, column in columns.items() if name != "on"}


@functools.lru_cache(maxsize=8)
def _identity(n: int) -> dict[str, Tensor]:
    """`per_sample`'s values for n images that no draw picked (never written to: only concatenated)."""
    return {"flip": torch.zeros(n, dtype=torch.bool), "color": torch.zeros(n, dtype=torch.bool),
            "brightness": torch.zeros(n), "saturation": torch.ones(n), "contrast": torch.ones(n),
            "shift_h": torch.zeros(n, dtype=torch.long), "shift_w": torch.zeros(n, dtype=torch.long),
            "warp": torch.zeros(n, dtype=torch.bool), "theta": scale_theta(torch.ones(n), torch.ones(n)),
            # A box centre this far outside the image leaves nothing to cut.
            "center_h": torch.full((n,), -2 ** 30), "center_w": torch.full((n,), -2 ** 30),
            "on": torch.ones(n, dtype=torch.bool)}


def apply_per_sample(x: Tensor, t: dict[str, Tensor], families: Iterable[str],
                     params: DSAParams = DSAParams()) -> Tensor:
    """(N, C, H, W) images augmented with `per_sample`'s parameters (on x's device), by the stages of `families`
    (those a strategy can draw) in `STAGES` order. Flip, crop and cutout are exact identities where a sample has
    no draw of theirs; colour and the warp are computed for every sample and kept where it has one."""
    stages = {STAGES[family] for family in families}
    if "flip" in stages:
        x = flip(x, t["flip"])
    if "color" in stages:
        x = torch.where(t["color"].view(-1, 1, 1, 1), color(x, t["brightness"], t["saturation"], t["contrast"]), x)
    if "crop" in stages:
        x = crop(x, t["shift_h"], t["shift_w"])
    if "warp" in stages:
        x = torch.where(t["warp"].view(-1, 1, 1, 1), _warp(x, t["theta"], params.align_corners), x)
    if "cutout" in stages:
        x = cutout(x, t["center_h"], t["center_w"], params.ratio_cutout)
    return x
