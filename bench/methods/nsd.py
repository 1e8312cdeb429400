"""`nsd`: Neural Spectral Decomposition (Yang et al., ECCV 2024), from the paper (no public code exists).

The synthetic set is stored as spectrum tensors T (Eq. 1) and separable kernels K (Eq. 2). A
spectrum tensor T in R^{t1 x t2 x t3 x t4} (batch, channel, height, width) decodes with one
kernel set K = (K1 in R^{u1 x t1}, K2 in R^{C x t2}, K3 in R^{H x t3}, K4 in R^{W x t4}) by mode
products, x = T x1 K1 x2 K2 x3 K3 x4 K4, into u1 images of C x H x W. Every one of the N_T tensors
of a class pairs with each of the N_K kernel sets (x_{j+(i-1)N_K} = T_i K_j), so a class decodes to
N_T * N_K * u1 images from N_T tensors and N_K kernel sets. Both are learned with MTT's trajectory
matching plus the real-guided loss gamma * CE(theta_N; real batch) of the student's end point
(Alg. 1), and stored with MTT's learned lr.

Sizes (paper, Sec. 4.1 "Model details" and Eq. 3), chosen from the cell automatically:
* t2 = C (the paper: t2 = 3 on RGB in all experiments); t3 = t4 = H/2 for IPC <= 10 and 7H/8 for
  IPC > 10 (floored); `spatial` overrides.
* the stored values (spectrum tensors + stored kernels) stay within Eq. 3's budget,
  IPC x classes x C x H x W; `bench.methods.budget` computes it. Labels and the lr are outside it.
* Not in the paper, chosen here: u1 = `batch_ratio` * t1 with batch_ratio 2 (the paper only says
  t1 < u1); N_T = N_K = 2 (the smallest counts that make pairwise combinations), lowered to
  N_T = 1, then N_K = 1, when the budget then leaves t1 < 2 (a rank-1 batch mode only rescales one
  image); t1 = the largest rank within the budget. `n_tensors`, `n_kernels`, `rank` override.
* Not in the paper: kernels are shared by all classes (`share_kernels`; the paper treats the
  whole data set as one low-rank tensor, and per-class kernels do not fit Eq. 3 at IPC 1 on
  28 px grey images); tensors belong to one class, which labels its decoded images.
* Random initialisation (paper), scaled here: each kernel gets random orthonormal columns (QR of a
  Gaussian), so a decoded set has exactly the norm of its tensor and an lr on the tensors acts in
  image space as MTT's lr_img does; tensor entries are Gaussian, scaled so decoded pixels have the
  real data's standard deviation.

Variants (`decomposition`, Sec. 4.4 and Table 2), all within the same budget and t sizes:
* `learned` (default, "ours"): all four kernels learned, random init.
* `dct` / `ldct`: per-image spatial transform (K1, K2 identity), K3/K4 the first t3/t4 columns of
  the orthonormal DCT-IV of Eq. 4 (cos(pi/n (i+0.5)(k+0.5)), scaled by sqrt(2/n)); fixed and
  recomputed from the image size (not stored), or learned from that init (stored). Tensors start
  as the DCT coefficients of real images.
* `svd` / `lsvd`: kernels from the SVD of real data, as a Tucker/HOSVD of u1 real images per class
  (the paper's (B, CHW) SVD is its batch mode; the spatial modes are truncated like every other
  variant); K1 = leading left singular vectors of the batch unfolding, K3/K4 of the height/width
  unfoldings, tensors = the projected cores. Fixed (`svd`, stored: they depend on the data) or
  learned (`lsvd`).
* `dwt`: an orthonormal multi-level Haar synthesis basis, ordered coarse to fine, truncated to
  t3/t4 columns (fixed, not stored). Each iteration drops each 2-D band but the approximation band
  with probability `band_drop` (0.5; the paper "randomly samples some frequency bands" per inverse
  transform, without a rate); evaluation decodes all bands.
* `none`: pixels (all kernels identity, t = image size, real init): MTT plus the guided loss,
  the "decomposition off" row of the ablation.

Stored (format `nsd-spectral`; `nsd-dct` / `nsd-haar` for fixed bases): the spectrum tensors, one int64
label per tensor, the learned lr and the stored kernels; `nbytes` counts exactly these. Eq. 3 counts
the spectrum tensors and stored kernels (`SpectralSet.parameter_values`). Identity modes and the
fixed DCT/Haar bases are not stored: they follow from the tensor's shape and the image side (one
int32 in the fixed-basis formats), as a decoder can recompute them. SVD kernels are stored: they
come from the data.

Other defaults not in the paper:
* gamma = 1, the plain sum of Alg. 1's two losses (on digits the guided term's gradient on the images
  is then about a tenth of the matching term's: a regulariser, as the paper's small Table 6 gains
  suggest), on a real batch of 256 (`guide_batch`) without augmentation; the
  lr alpha follows the total loss (MTT: the matching loss alone; one backward pass here).
* `batch_syn` = IPC x classes decoded images per unrolled step (MTT's per-step cost), all when fewer.
* the lrs of tensors and kernels (`lr_tensor`, `lr_kernel`: see the presets for how they were set).
  Variants that start from real images (all but `learned`) fine-tune them as MTT does and take both
  lrs times `real_init_lr_scale` = 0.02: on digits, randomly initialised tensors want about 10 x MTT's
  lr_img (under momentum 0.9), real-initialised ones MTT's step, lr_img / 5 under momentum 0.9.
From the paper: 10k iterations, SGD with momentum 0.9 on tensors and kernels (alpha keeps MTT's 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Sequence

import torch
import torch.nn.functional as F

from bench.methods import specs
from bench.methods.base import DistillContext, SyntheticSet, register_format
from bench.methods.budget import storage_budget_values
from bench.methods.loop import IterativeMethod, LoopState
from bench.methods.mtt import (ExpertOrder, Forward, Trajectories, matching_distance, next_segment, trajectory_student,
                               unroll_student)
from bench.methods.specs import NSDParams

Kind = Literal["stored", "fixed", "identity"]

MODES = ("batch", "channel", "height", "width")
KINDS: dict[str, tuple[Kind, Kind, Kind, Kind]] = {
    "learned": ("stored", "stored", "stored", "stored"),
    "svd": ("stored", "identity", "stored", "stored"),
    "lsvd": ("stored", "identity", "stored", "stored"),
    "dct": ("identity", "identity", "fixed", "fixed"),
    "ldct": ("identity", "identity", "stored", "stored"),
    "dwt": ("identity", "identity", "fixed", "fixed"),
    "none": ("identity", "identity", "identity", "identity"),
}
LEARNED_KERNELS = {"learned", "ldct", "lsvd"}


# ----------------------------------------------------------------------------------------------
# Bases


def dct_basis(n: int) -> torch.Tensor:
    """(n, n) orthonormal DCT-IV synthesis matrix of Eq. 4: column k = sqrt(2/n) cos(pi/n (i+0.5)(k+0.5)).

    DCT-IV is its own inverse, so the same matrix analyses (transposed) and synthesises."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    return math.sqrt(2.0 / n) * torch.cos(math.pi / n * i[:, None] * i[None, :])


def haar_basis(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, n) orthonormal multi-level Haar synthesis matrix, columns coarse to fine, and each column's band.

    Band 0 is the approximation, 1 the coarsest detail level, and so on; the recursion halves the
    length while it is even (28 -> 14 -> 7: seven approximation columns)."""
    if n % 2:
        return torch.eye(n, dtype=torch.float64), torch.zeros(n, dtype=torch.long)
    half = n // 2
    idx = torch.arange(half)
    low = torch.zeros(half, n, dtype=torch.float64)
    high = torch.zeros(half, n, dtype=torch.float64)
    low[idx, 2 * idx] = low[idx, 2 * idx + 1] = high[idx, 2 * idx] = 1 / math.sqrt(2)
    high[idx, 2 * idx + 1] = -1 / math.sqrt(2)
    coarse, coarse_band = haar_basis(half)
    analysis = torch.cat([coarse.T @ low, high])
    return analysis.T, torch.cat([coarse_band, torch.full((half,), int(coarse_band.max()) + 1)])


def fixed_basis(name: str, n: int, t: int) -> torch.Tensor:
    """The first t synthesis columns (n, t) of the fixed basis `name` ('dct' or 'dwt'), float32."""
    full = dct_basis(n) if name == "dct" else haar_basis(n)[0]
    return full[:, :t].float()


# ----------------------------------------------------------------------------------------------
# Sizes (Eq. 3)


@dataclass(frozen=True)
class Layout:
    """The sizes of one NSD set: N_T tensors per class, N_K kernel sets in `groups` groups (1: shared
    by all classes, else one per class), tensor sizes t and decoded sizes u per mode (batch, channel,
    height, width), and each mode's kernel kind: stored, fixed (recomputed from the shape) or identity."""

    decomposition: str
    num_classes: int
    n_tensors: int
    n_kernels: int
    groups: int
    t: tuple[int, int, int, int]
    u: tuple[int, int, int, int]
    kinds: tuple[Kind, Kind, Kind, Kind]

    @property
    def tensor_values(self) -> int:
        return self.num_classes * self.n_tensors * math.prod(self.t)

    @property
    def kernel_values(self) -> int:
        return self.groups * self.n_kernels * sum(u * t for u, t, k in zip(self.u, self.t, self.kinds)
                                                  if k == "stored")

    @property
    def values(self) -> int:
        """What Eq. 3 counts: spectrum tensors plus stored kernels."""
        return self.tensor_values + self.kernel_values

    @property
    def images_per_class(self) -> int:
        return self.n_tensors * self.n_kernels * self.u[0]


def default_spatial(ipc: int, image_size: int) -> int:
    """t3 = t4: half the image side for IPC <= 10, seven eighths above (paper, Sec. 4.1)."""
    return max(1, image_size // 2 if ipc <= 10 else 7 * image_size // 8)


def plan_layout(p: NSDParams, ipc: int, num_classes: int, channels: int, image_size: int) -> Layout:
    """The sizes for this cell: the largest rank t1 whose stored values fit Eq. 3's budget.

    Raises ValueError when nothing fits or an explicit size breaks the budget."""
    budget = storage_budget_values(ipc, num_classes, channels, image_size)
    kinds = KINDS[p.decomposition]
    if p.decomposition != "learned" and (p.n_tensors or p.n_kernels):
        raise ValueError(f"n_tensors and n_kernels apply to decomposition 'learned' only; "
                         f"'{p.decomposition}' uses one tensor and one kernel set per class")
    if p.decomposition == "none":
        if p.spatial not in (None, image_size):
            raise ValueError("decomposition 'none' stores full-size images; leave `spatial` unset")
        spatial = image_size
    else:
        spatial = p.spatial or default_spatial(ipc, image_size)
    if spatial > image_size:
        raise ValueError(f"spatial {spatial} exceeds the image side {image_size}")
    groups = 1 if p.share_kernels else num_classes
    ratio = p.batch_ratio if kinds[0] == "stored" else 1

    def layout(n_t: int, n_k: int, t1: int) -> Layout:
        return Layout(p.decomposition, num_classes, n_t, n_k, groups, (t1, channels, spatial, spatial),
                      (ratio * t1, channels, image_size, image_size), kinds)

    def largest_rank(n_t: int, n_k: int) -> int:
        t1 = 0
        while layout(n_t, n_k, t1 + 1).values <= budget:
            t1 += 1
        return t1

    if p.decomposition == "learned":
        counts = [(n_t, n_k) for n_k in ([p.n_kernels] if p.n_kernels else [2, 1])
                  for n_t in ([p.n_tensors] if p.n_tensors else [2, 1])]
    else:
        counts = [(1, 1)]
    if p.rank is not None:
        for n_t, n_k in counts:
            if layout(n_t, n_k, p.rank).values <= budget:
                return layout(n_t, n_k, p.rank)
        raise ValueError(f"rank {p.rank} exceeds the storage budget of {budget} values (Eq. 3, IPC {ipc}): "
                         f"it needs {layout(*counts[-1], p.rank).values}; lower `rank` or `spatial`")
    ranks = [(largest_rank(n_t, n_k), n_t, n_k) for n_t, n_k in counts]
    for least in (2, 1):
        for t1, n_t, n_k in ranks:
            if t1 >= least:
                return layout(n_t, n_k, t1)
    raise ValueError(f"the storage budget of {budget} values (Eq. 3, IPC {ipc}) cannot hold one spectrum tensor "
                     f"and its kernels with t3 = t4 = {spatial}; lower `spatial`")


# ----------------------------------------------------------------------------------------------
# Decoding (Eq. 1-2)


def _mode_product(x: torch.Tensor, kernel: torch.Tensor, mode: int) -> torch.Tensor:
    """x (R, K, t1, t2, t3, t4) times kernel (R, K, u, t) along `mode`: that size t becomes u."""
    src = "rkabcd"
    out = src.replace("abcd"[mode], "u")
    return torch.einsum(f"{src},rku{'abcd'[mode]}->{out}", x, kernel)


def decode(spectra: torch.Tensor, labels: torch.Tensor,
           kernels: Sequence[torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1-2: every spectrum tensor (R, t1, t2, t3, t4) with every kernel set of its group.

    `kernels` holds per mode (batch, channel, height, width) a (G, N_K, u, t) tensor, G = 1 (shared)
    or one group per class (picked by the tensor's label), or None for the identity. Returns
    (R * N_K * u1, C, H, W) images, ordered tensor, then kernel set, then batch index (the paper's
    x_{j+(i-1)N_K}), and their labels."""
    n_k = max((k.shape[1] for k in kernels if k is not None), default=1)
    r = len(spectra)
    x = spectra.unsqueeze(1).expand(r, n_k, *spectra.shape[1:])
    for mode, k in enumerate(kernels):
        if k is None:
            continue
        per_tensor = k[labels] if len(k) > 1 else k.expand(r, *k.shape[1:])
        x = _mode_product(x, per_tensor.expand(r, n_k, *k.shape[2:]), mode)
    return x.reshape(-1, *x.shape[-3:]), labels.repeat_interleave(n_k * x.shape[2])


# ----------------------------------------------------------------------------------------------
# Stored formats

KERNEL_NAMES = tuple(f"k_{mode}" for mode in MODES)


@register_format
@dataclass
class SpectralSet(SyntheticSet):
    """NSD's stored form: `images` holds the spectrum tensors (R, t1, t2, t3, t4), `labels` their
    classes (R,), `k_<mode>` the stored kernels (G, N_K, u, t) or None for the identity.

    Stored under the names `spectra`, `labels`, `lr` and the kernel names; `nbytes` counts exactly
    those. `training_data` decodes them (Eq. 1-2)."""

    k_batch: torch.Tensor | None = None
    k_channel: torch.Tensor | None = None
    k_height: torch.Tensor | None = None
    k_width: torch.Tensor | None = None
    format: ClassVar[str] = "nsd-spectral"

    def kernels(self) -> list[torch.Tensor | None]:
        return [self.k_batch, self.k_channel, self.k_height, self.k_width]

    def tensors(self) -> dict[str, torch.Tensor]:
        stored = super().tensors()
        stored = {"spectra": stored.pop("images"), **stored}
        stored.update({name: k for name, k in zip(KERNEL_NAMES, [self.k_batch, self.k_channel, self.k_height,
                                                                  self.k_width]) if k is not None})
        return stored

    @property
    def parameter_values(self) -> int:
        """The values Eq. 3 counts: spectrum tensors and stored kernels (not labels, lr or sizes)."""
        return self.images.numel() + sum(getattr(self, name).numel() for name in KERNEL_NAMES
                                         if getattr(self, name) is not None)

    def training_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return decode(self.images, self.labels, self.kernels())

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> SpectralSet:
        fields = dict(tensors)
        fields["images"] = fields.pop("spectra")
        return cls(**fields)


@dataclass
class FixedBasisSet(SpectralSet):
    """Spatial kernels from a fixed basis, recomputed from the image side and the tensor's t3/t4
    instead of stored: only the side (one int32) is stored with the tensors."""

    image_size: torch.Tensor | None = None
    basis: ClassVar[str]

    def kernels(self) -> list[torch.Tensor | None]:
        n = int(self.image_size)
        t3, t4 = self.images.shape[-2:]
        return [None, None, fixed_basis(self.basis, n, t3)[None, None], fixed_basis(self.basis, n, t4)[None, None]]

    not_images: ClassVar[tuple[str, ...]] = ("labels", "lr", "image_size")

    def tensors(self) -> dict[str, torch.Tensor]:
        return {**super().tensors(), "image_size": self.image_size}


@register_format
@dataclass
class DCTSet(FixedBasisSet):
    format: ClassVar[str] = "nsd-dct"
    basis: ClassVar[str] = "dct"


@register_format
@dataclass
class HaarSet(FixedBasisSet):
    format: ClassVar[str] = "nsd-haar"
    basis: ClassVar[str] = "dwt"


# ----------------------------------------------------------------------------------------------
# Initialisation


def _pick(real: list[torch.Tensor], count: int, g: torch.Generator) -> torch.Tensor:
    """(classes, count, C, H, W): distinct random real images of each class (repeated only when the
    class is smaller than `count`)."""
    out = []
    for x in real:
        order = torch.cat([torch.randperm(len(x), generator=g) for _ in range(-(-count // len(x)))])
        out.append(x[order[:count].to(x.device)])
    return torch.stack(out)


def _leading_vectors(gram: torch.Tensor, k: int) -> torch.Tensor:
    """(G, n, k): the eigenvectors of the k largest eigenvalues of each symmetric (n, n) Gram matrix."""
    _, vectors = torch.linalg.eigh(gram)
    return vectors[..., -k:].flip(-1)


def hosvd(x: torch.Tensor, t1: int, t3: int, t4: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Truncated HOSVD of real images x (G, M, u1, C, H, W): G kernel groups of M classes each.

    Returns the cores (G*M, t1, C, t3, t4) and the factors K1 (G, u1, t1), K3 (G, H, t3),
    K4 (G, W, t4): leading left singular vectors of the batch, height and width unfoldings."""
    x = x.double()
    k1 = _leading_vectors(torch.einsum("gmachw,gmbchw->gab", x, x), t1)
    k3 = _leading_vectors(torch.einsum("gmachw,gmacjw->ghj", x, x), t3)
    k4 = _leading_vectors(torch.einsum("gmachw,gmachv->gwv", x, x), t4)
    core = torch.einsum("gmachw,gai,ghj,gwk->gmicjk", x, k1, k3, k4)
    return core.reshape(-1, *core.shape[2:]).float(), [k1.float(), k3.float(), k4.float()]


def initialise(layout: Layout, real: list[torch.Tensor],
               g: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """Spectrum tensors (classes * N_T, t1, t2, t3, t4) and per-mode kernels (G, N_K, u, t) for the
    stored modes (None elsewhere), on the device of `real`. See the module docstring per variant."""
    classes, (t1, _, t3, t4), (u1, _, height, width) = layout.num_classes, layout.t, layout.u
    device = real[0].device
    kernels: list[torch.Tensor | None] = [None] * 4
    d = layout.decomposition
    if d == "learned":
        count = sum(x.numel() for x in real)
        mean = sum(float(x.sum()) for x in real) / count
        std = math.sqrt(sum(float(((x - mean) ** 2).sum()) for x in real) / (count - 1))  # class by class: no copy
        scale = std * math.sqrt(math.prod(layout.u) / math.prod(layout.t))
        spectra = torch.randn((classes * layout.n_tensors, *layout.t), generator=g) * scale
        for mode in range(4):
            gaussian = torch.randn((layout.groups, layout.n_kernels, layout.u[mode], layout.t[mode]), generator=g)
            q, r = torch.linalg.qr(gaussian)
            kernels[mode] = q * torch.diagonal(r, dim1=-2, dim2=-1).sign().unsqueeze(-2)
        return spectra.to(device), [k.to(device) for k in kernels]
    if d == "none":
        return _pick(real, t1, g).reshape(classes, *layout.t), kernels
    if d in ("svd", "lsvd"):
        x = _pick(real, u1, g)
        core, (k1, k3, k4) = hosvd(x.reshape(layout.groups, -1, *x.shape[1:]), t1, t3, t4)
        kernels[0], kernels[2], kernels[3] = k1[:, None], k3[:, None], k4[:, None]
        return core, kernels
    basis = "dct" if d in ("dct", "ldct") else "dwt"
    b3, b4 = fixed_basis(basis, height, t3).to(device), fixed_basis(basis, width, t4).to(device)
    x = _pick(real, layout.n_tensors * t1, g)
    coefficients = torch.einsum("nmchw,hj,wk->nmcjk", x, b3, b4)
    if d == "ldct":
        kernels[2], kernels[3] = b3[None, None].clone(), b4[None, None].clone()
    return coefficients.reshape(classes * layout.n_tensors, *layout.t), kernels


def band_mask(image_size: int, t3: int, t4: int, drop: float, g: torch.Generator) -> torch.Tensor:
    """(t3, t4) 0/1 mask over the Haar coefficients: each 2-D band (row level x column level) is
    dropped with probability `drop`, except the approximation band, which is always kept."""
    bands = haar_basis(image_size)[1]
    rows, cols = bands[:t3], bands[:t4]
    keep = torch.rand((int(rows.max()) + 1, int(cols.max()) + 1), generator=g) >= drop
    keep[0, 0] = True
    return keep[rows][:, cols].float()


# ----------------------------------------------------------------------------------------------
# Losses


def guided_loss(forward: Forward, theta: torch.Tensor, x_real: torch.Tensor, y_real: torch.Tensor) -> torch.Tensor:
    """The real-guided loss L(theta_N, D_real) (Alg. 1, line 15): the student's end point should
    classify real images; cross-entropy on a real batch, differentiable through theta_N."""
    return F.cross_entropy(forward(x_real, theta), y_real)


# ----------------------------------------------------------------------------------------------
# The method


def stored_set(layout: Layout, spectra: torch.Tensor, labels: torch.Tensor, kernels: list[torch.Tensor | None],
               lr: torch.Tensor, image_size: int) -> SpectralSet:
    """The set as stored: fixed bases are left out (recomputed from the image side)."""
    named = {name: k.detach().cpu() for name, k in zip(KERNEL_NAMES, kernels) if k is not None}
    common = dict(images=spectra.detach().cpu(), labels=labels.cpu(), lr=lr.detach().cpu(), **named)
    if "fixed" in layout.kinds:
        cls = DCTSet if layout.decomposition == "dct" else HaarSet
        return cls(**common, image_size=torch.tensor(image_size, dtype=torch.int32))
    return SpectralSet(**common)


@dataclass
class NSDState(ExpertOrder, LoopState):
    ctx: DistillContext
    layout: Layout
    trajectories: Trajectories  # read an expert at a time (`next_segment`)
    forward: Forward
    g: torch.Generator
    spectra: torch.Tensor
    labels: torch.Tensor
    learned: list[torch.Tensor | None]  # per mode: the stored kernel (learned or not), None where not stored
    kernels: list[torch.Tensor | None]  # per mode: what decodes (stored, fixed basis, or None: identity)
    trainable: list[torch.Tensor]
    lr: torch.Tensor
    optimisers: list[torch.optim.Optimizer]
    strategy: str
    batch_syn: int
    x_real: torch.Tensor
    y_real: torch.Tensor
    order: list[int]  # the experts left in the current round of `next_segment`

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"spectra": self.spectra, "lr": self.lr, **{f"kernel{i}": k for i, k in enumerate(self.trainable)}}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {f"opt{i}": opt for i, opt in enumerate(self.optimisers)}

    def generators(self) -> dict[str, torch.Generator]:
        return {"g": self.g}


class NSD(specs.NSD, IterativeMethod):
    def init(self, ctx: DistillContext) -> NSDState:
        p: NSDParams = self.params
        spec = ctx.dataset.spec
        layout = plan_layout(p, ctx.ipc, spec.num_classes, spec.channels, spec.image_size)
        trajectories, g, forward = trajectory_student(ctx, p.max_start_epoch, p.expert_epochs)

        real = ctx.real_per_class()
        spectra, stored = initialise(layout, real, g)
        spectra = spectra.to(ctx.device).requires_grad_(True)
        learned = [k.to(ctx.device).requires_grad_(True) if k is not None and p.decomposition in LEARNED_KERNELS
                   else k for k in stored]
        labels = torch.arange(spec.num_classes, device=ctx.device).repeat_interleave(layout.n_tensors)
        fixed = [fixed_basis(p.decomposition, n, t).to(ctx.device)[None, None] if kind == "fixed" else None
                 for kind, n, t in zip(layout.kinds, layout.u, layout.t)]
        kernels = [k if k is not None else f for k, f in zip(learned, fixed)]
        trainable = [k for k in learned if k is not None and k.requires_grad]

        lr = torch.tensor(p.lr_teacher, device=ctx.device, requires_grad=True)
        scale = 1.0 if p.decomposition == "learned" else p.real_init_lr_scale
        optimisers = [torch.optim.SGD([spectra], lr=p.lr_tensor * scale, momentum=p.momentum),
                      torch.optim.SGD([lr], lr=p.lr_lr, momentum=0.5)]  # MTT's momentum for alpha
        if trainable:
            optimisers.append(torch.optim.SGD(trainable, lr=p.lr_kernel * scale, momentum=p.momentum))
        batch_syn = p.batch_syn or min(layout.images_per_class * spec.num_classes, ctx.ipc * spec.num_classes)
        return NSDState(ctx, layout, trajectories, forward, g, spectra, labels, learned, kernels, trainable, lr,
                        optimisers, ctx.dsa_strategy if p.dsa else "none", batch_syn,
                        ctx.dataset.x_train.to(ctx.device), ctx.dataset.y_train.to(ctx.device), [])

    def step(self, s: NSDState, iteration: int) -> dict[str, torch.Tensor]:
        """Decode, unroll the student on one expert segment, match (plus the guided loss); one step on all."""
        p: NSDParams = self.params
        device, layout = s.ctx.device, s.layout
        theta0, target = next_segment(s.trajectories, s.order, p.max_start_epoch, p.expert_epochs, s.g, device)
        coded = s.spectra
        if p.decomposition == "dwt":
            coded = s.spectra * band_mask(s.ctx.dataset.spec.image_size, layout.t[2], layout.t[3], p.band_drop,
                                          s.g).to(device)
        images, image_labels = decode(coded, s.labels, s.kernels)
        theta = unroll_student(s.forward, theta0, images, image_labels, s.lr, syn_steps=p.syn_steps,
                               batch_syn=s.batch_syn, dsa_strategy=s.strategy, generator=s.g)
        match = matching_distance(theta, theta0, target)
        loss = match
        if p.gamma:
            idx = torch.randperm(len(s.x_real), generator=s.g)[:p.guide_batch].to(device)
            loss = loss + p.gamma * guided_loss(s.forward, theta, s.x_real[idx], s.y_real[idx])
        for opt in s.optimisers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in s.optimisers:
            opt.step()
        return {"match": match, "total": loss, "lr": s.lr}

    def finish(self, s: NSDState) -> SpectralSet:
        return stored_set(s.layout, s.spectra, s.labels, s.learned, s.lr, s.ctx.dataset.spec.image_size)
