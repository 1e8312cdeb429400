"""Every built-in method as suites, the planner and the report know it, without its maths.

A method has two halves. Its *spec* (here) is what can be said about it before anything runs: its
name and description, its typed parameters and their published presets, the evaluation protocol of
its paper, its report group, its version, the cached expert stages it needs and the cells it
refuses. Its *maths* (`bench/methods/<module>.py`, which subclass these specs) is the torch code that
distills. Specs import no torch, so `bench validate` and `bench run --dry-run` check and plan a suite
in a fraction of a second; the maths are imported when a task runs (`MethodSpec.implementation`).

A plugin is one class that is both (it subclasses `bench.methods.Method`, itself a `MethodSpec`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import string
import time
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, field_validator,
                      model_validator)

from bench import nets
from bench.atomic import atomic_write
from bench.experts import ExpertSpec
from bench.recipes import FAMILIES, EvalRecipe

# Bounds every run needs, so that `bench validate` refuses what a run would fail on (or silently misuse):
# learning rates and other scales are positive and fit a float32 (torch's optimisers refuse larger ones for
# float32 tensors), SGD momenta lie in [0, 1), and a seed fits torch.manual_seed (and stays an int64 after
# the offsets some methods add).
FLOAT32_MAX = 3.4028234663852886e38
PositiveFinite = Annotated[float, Field(gt=0, le=FLOAT32_MAX, allow_inf_nan=False)]
NonNegativeFinite = Annotated[float, Field(ge=0, le=FLOAT32_MAX, allow_inf_nan=False)]
Momentum = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, lt=2**63)]


class Params(BaseModel):
    """Base for a method's parameters: typed, strict (no '1e-3' strings), unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MethodSpec:
    """What a method is, apart from its maths. Subclasses set `name`, `description` and `Params`.

    Bump `version` whenever a change alters the artifacts a method produces: it is part of the
    content hash, so stored artifacts of the old algorithm are not mistaken for the new one's.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    version: ClassVar[int] = 1
    uses_network: ClassVar[bool] = True
    Params: ClassVar[type[Params]] = Params
    # bench/methods/presets/<presets>.yaml: published settings (several files merge in order, last wins)
    presets: ClassVar[str | tuple[str, ...] | None] = None
    eval_preset: ClassVar[str] = "standard"  # the evaluation protocol its paper uses (bench.recipes.PRESETS)
    learns_lr: ClassVar[bool] = False  # its sets store a learned lr, so it may be evaluated with `lr: learned`
    group: ClassVar[str] = "plugin"  # its rows in a report: "coreset", "distillation", or "plugin" (yours)
    maths: ClassVar[str | None] = None  # "module:Class" of a spec's implementation, where it is kept apart

    def __init__(self, params: Params):
        self.params = params

    @classmethod
    def check_cell(cls, dataset: str, ipc: int, params: Params) -> str | None:
        """Why this method cannot run a (data set, IPC) cell, or None. Refused cells are left out of
        the plan and listed with their reason, instead of failing at run time."""
        return None

    def experts(self, dataset: str, arch: str) -> list[ExpertSpec]:
        """Cached stages this method needs for `dataset`, distilling with `arch` (none by default)."""
        return []

    @classmethod
    def stores_soft_labels(cls, params: Params) -> bool:
        """Whether its sets made with `params` carry soft labels (`SyntheticSet.soft_labels`), so they can be
        evaluated under `labels: soft`. By default: where its params name a `soft_labels` source and it is set
        (import's file); a method that always stores them overrides this."""
        return getattr(params, "soft_labels", None) is not None

    @classmethod
    def check_recipe(cls, params: Params, recipe: EvalRecipe) -> str | None:
        """Why sets made with `params` cannot be evaluated with `recipe`, or None (checked by `bench validate`)."""
        return None

    def key_params(self) -> dict[str, Any]:
        """The params as the distill task's key hashes them (all of them, unless a method says otherwise)."""
        return self.params.model_dump(mode="json")

    def inputs(self, dataset: str, ipc: int, seed: int) -> list[dict[str, Any]]:
        """Files read from outside the store for this cell and distill seed, each {"param", "template", "path",
        "sha256"}: their hashes enter the distill key (a changed file makes a new key) and the records carry
        them. Raises `InputError` for a missing file, when the suite is planned. A method with inputs may also
        define `check_inputs(dataset, ipc, seed)`, which reads them against the loaded data set (raising
        `InputError`) before any task of a run starts."""
        return []

    @classmethod
    def implementation(cls) -> type:
        """The class that distills: this one where it has the maths (a plugin), else the one `maths` names."""
        if hasattr(cls, "distill"):
            return cls
        module, _, name = cls.maths.partition(":")
        return getattr(importlib.import_module(module), name)


# --------------------------------------------------------------------------------------- coresets

FEATURE_NET = "feature_net"


class CoresetParams(Params):
    """The feature network's training recipe (shared by the three methods, so keep them equal)."""

    feature_epochs: PositiveInt = 40
    feature_lr: PositiveFinite = 0.01
    feature_momentum: Momentum = 0.9
    feature_weight_decay: NonNegativeFinite = 5e-4
    feature_batch_size: PositiveInt = 256
    feature_seed: Seed = 0


class Random(MethodSpec):
    name = "random"
    group = "coreset"
    description = "Random real images per class (coreset baseline)."
    uses_network = False
    maths = "bench.methods.random:Random"


class Coreset(MethodSpec):
    """Per class, select `ipc` real training images using the shared feature network."""

    group = "coreset"
    Params = CoresetParams

    def experts(self, dataset: str, arch: str) -> list[ExpertSpec]:
        p: CoresetParams = self.params
        return [ExpertSpec(FEATURE_NET, dataset, arch, {
            "epochs": p.feature_epochs, "lr": p.feature_lr, "momentum": p.feature_momentum,
            "weight_decay": p.feature_weight_decay, "batch_size": p.feature_batch_size, "seed": p.feature_seed})]


class Herding(Coreset):
    name = "herding"
    description = "Herding coreset: real images whose running mean feature tracks the class mean."
    maths = "bench.methods.coresets:Herding"


class KCenter(Coreset):
    name = "kcenter"
    description = "K-Center coreset: greedy farthest-point real images per class (Sener & Savarese 2018)."
    maths = "bench.methods.coresets:KCenter"


class Forgetting(Coreset):
    name = "forgetting"
    description = "Forgetting coreset: the real images forgotten most often while training (Toneva et al. 2019)."
    maths = "bench.methods.coresets:Forgetting"


# ------------------------------------------------------------------------ gradient matching (DC, DSA)

Metric = Literal["ours", "mse", "cos"]


class DCParams(Params):
    iterations: NonNegativeInt = 1000
    lr_img: PositiveFinite = 0.1
    momentum_img: Momentum = 0.5
    lr_net: PositiveFinite = 0.01
    batch_real: PositiveInt = 256
    batch_train: PositiveInt = 256
    outer_loop: int | None = Field(default=None, ge=1)  # None: the reference get_loops table by IPC (`loops`)
    inner_loop: int | None = Field(default=None, ge=0)
    init: Literal["real", "noise"] = "noise"
    dis_metric: Metric = "ours"


class DSAMethodParams(DCParams):
    init: Literal["real", "noise"] = "real"  # the DSA README runs use --init real


class GradientMatching(MethodSpec):
    presets = "dc"
    group = "distillation"


class DC(GradientMatching):
    name = "dc"
    description = "Dataset Condensation: match real and synthetic training gradients (Zhao et al. 2021)."
    Params = DCParams
    eval_preset = "dc"
    maths = "bench.methods.gradmatch:DC"


class DSA(GradientMatching):
    name = "dsa"
    description = "Gradient matching with Differentiable Siamese Augmentation (Zhao & Bilen 2021)."
    Params = DSAMethodParams
    maths = "bench.methods.gradmatch:DSA"


# ------------------------------------------------------------------------ distribution matching (DM, IDM)

class DMParams(Params):
    iterations: NonNegativeInt = 20000
    lr_img: PositiveFinite = 1.0
    momentum: Momentum = 0.5
    batch_real: PositiveInt = 256
    init: Literal["real", "noise"] = "real"
    dsa: bool = True


class DM(MethodSpec):
    name = "dm"
    group = "distillation"
    description = "Distribution Matching: match mean embeddings of random networks (Zhao & Bilen 2023)."
    Params = DMParams
    maths = "bench.methods.dm:DM"


class IDMParams(Params):
    """Defaults are the published commands' values (uitrbn/IDM command.txt) where every command
    sets a flag, else the code defaults of IDM_cifar10.py."""

    iterations: NonNegativeInt = 20000
    lr_img: PositiveFinite = 0.2  # --lr_img 0.2 in every command (code default 1.0)
    momentum: Momentum = 0.5
    batch_real: PositiveInt = 256
    init: Literal["real", "noise"] = "real"
    dsa: bool = True
    aug: bool = True  # partition and expansion; --aug in every command
    ce_weight: NonNegativeFinite = 0.5  # --syn_ce --ce_weight 0.5 (0.1 / 0.8 / 3 in some commands; see the preset)
    net_num: PositiveInt = 100  # queue capacity
    net_generate_interval: PositiveInt = 30
    train_net_num: PositiveInt = 1  # nets matched per iteration; --train_net_num 1 in every command (code default 2)
    fetch_net_num: NonNegativeInt = 2  # queue nets trained per iteration
    model_train_steps: NonNegativeInt = 10
    trained_bs: PositiveInt = 256
    lr_net: PositiveFinite = 0.01  # --net_decay: SGD(lr_net, momentum 0.9, weight decay 5e-4)
    # The reference resets every net's accuracy meter at each evaluation point (--eval_interval),
    # which zeroes the CE weight of nets not trained since; 0 never resets.
    acc_reset_interval: NonNegativeInt = 100


class IDM(MethodSpec):
    name = "idm"
    group = "distillation"
    description = "Improved Distribution Matching: quadrant expansion, trained net queue, CE (Zhao et al. 2023)."
    Params = IDMParams
    presets = "idm"
    maths = "bench.methods.idm:IDM"


# ------------------------------------------------------------------------ IID (on DM and IDM)

BANK = "pretrained_bank"


class IIDTerms(Params):
    """The switches, weights and bank recipe IID adds to its base method's parameters.

    Defaults and why:
    * lambda_cc 0.05, lambda_cm 0.01: the paper's IPC 1/10 values (the presets set IPC 50's 0.003 / 0.01).
    * cc_exp False, cc_beta 0: the reference code's linear form (it dropped the paper's exp, citing equal
      results). cc_alpha None means 1 for the linear form and 0.02 for the exp form, the scale of the
      reference's commented-out exp variant; the paper gives no alpha. Paper Table 5: beta <= 0.7 is best.
    * bank_arch ResNet18, trained with the reference `pre_model.py` recipe (SGD lr 0.01, momentum 0.9,
      weight decay 5e-4, batch 256, no augmentation, constant lr) for 30 epochs (paper Sec. 4.1; the
      code trains 40). bank_size 5: the paper names one pretrained ResNet18, the code draws one of
      1000 every iteration; 5 keeps the per-iteration draw at 0.5% of the code's pretraining cost.
    """

    cc: bool = True
    cm: bool = True
    lambda_cc: NonNegativeFinite = 0.05
    lambda_cm: NonNegativeFinite = 0.01
    cc_exp: bool = False
    cc_alpha: PositiveFinite | None = None
    cc_beta: NonNegativeFinite = 0.0
    bank_arch: str = "ResNet18"
    bank_size: PositiveInt = 5
    bank_epochs: PositiveInt = 30
    bank_lr: PositiveFinite = 0.01
    bank_momentum: Momentum = 0.9
    bank_weight_decay: NonNegativeFinite = 5e-4
    bank_batch_size: PositiveInt = 256
    bank_seed: Seed = 0

    @field_validator("bank_arch")
    @classmethod
    def _known_arch(cls, value: str) -> str:
        if value not in nets.NETWORKS:
            raise ValueError(f"unknown architecture '{value}'; `bench list archs` shows the known ones")
        return value

    @property
    def alpha(self) -> float:
        if self.cc_alpha is not None:
            return self.cc_alpha
        return 0.02 if self.cc_exp else 1.0


class IIDDMParams(IIDTerms, DMParams):
    """DM's parameters (reference defaults: 20000 iterations, lr_img 1, batch_real 256) plus IID's."""


class IIDIDMParams(IIDTerms, IDMParams):
    """IDM's parameters (the published IDM commands; IID's README runs IDM+IID with the same flags,
    lr_img 0.2) plus IID's. The paper's "learning rate of 1" is DM's; IDM keeps its 0.2."""


class IID(MethodSpec):
    """What `iid-dm` and `iid-idm` declare beyond their base method (listed first in their bases): the
    bank expert and the cells refused."""

    @classmethod
    def check_cell(cls, dataset: str, ipc: int, params: Params) -> str | None:
        samples = ipc * cls.samples_per_stored(params)
        if samples > 1:
            return None
        return (f"{cls.name} cannot run at IPC {ipc} on {dataset}: class centralization and covariance "
                f"matching compare the synthetic samples of a class with each other, so they need more than "
                f"one per class (the IID paper reports no DM+IID result at IPC 1 for this reason). Use "
                f"iid-idm, whose partition and expansion gives 4 samples per class at IPC 1.")

    @classmethod
    def samples_per_stored(cls, params: Params) -> int:
        """Synthetic training samples per class that one stored image gives."""
        return 1

    def experts(self, dataset: str, arch: str) -> list[ExpertSpec]:
        p: IIDTerms = self.params
        if not p.cc:
            return []
        return [ExpertSpec(BANK, dataset, p.bank_arch, {
            "size": p.bank_size, "epochs": p.bank_epochs, "lr": p.bank_lr, "momentum": p.bank_momentum,
            "weight_decay": p.bank_weight_decay, "batch_size": p.bank_batch_size, "seed": p.bank_seed})]


class IIDDM(IID, DM):
    name = "iid-dm"
    description = ("IID on DM: + class centralization on a pretrained ResNet18 bank and local-feature covariance "
                   "matching (Deng et al. 2024); lambdas from the paper (0.05/0.01, IPC 50: 0.003/0.01). "
                   "Refused at IPC 1.")
    Params = IIDDMParams
    presets = "iid"
    maths = "bench.methods.iid:IIDDM"


class IIDIDM(IID, IDM):
    name = "iid-idm"
    description = ("IID on IDM: + class centralization on a pretrained ResNet18 bank and local-feature covariance "
                   "matching (Deng et al. 2024); paper lambdas 0.05/0.01 (IPC 50: 0.003/0.01), the reference "
                   "IDM code's are 0.01/0.03 (set lambda_cc/lambda_cm).")
    Params = IIDIDMParams
    presets = ("iid", "idm")  # IID's keys from iid.yaml; IDM's own settings from idm.yaml, which wins on shared keys
    maths = "bench.methods.iid:IIDIDM"

    @classmethod
    def samples_per_stored(cls, params: Params) -> int:
        return 4 if params.aug else 1  # partition and expansion


# ------------------------------------------------------------------------ trajectory matching (MTT, NSD)

class TrajectoryParams(Params):
    """The expert stage's settings (buffer.py defaults), shared by MTT-family methods.

    `zca` is a data option: when true the harness whitens the data, and the experts are built on
    the whitened data (a separate cached stage).
    """

    num_experts: PositiveInt = 100
    expert_train_epochs: PositiveInt = 50
    expert_lr: PositiveFinite = 0.01
    expert_batch: PositiveInt = 256
    expert_dsa: bool = True
    expert_seed: Seed = 0
    zca: bool = False


def trajectory_spec(p: TrajectoryParams, dataset: str, arch: str) -> ExpertSpec:
    """The one expert stage every MTT-family cell with these settings shares."""
    return ExpertSpec("trajectories", dataset, arch,
                      {"num_experts": p.num_experts, "train_epochs": p.expert_train_epochs,
                       "lr_teacher": p.expert_lr, "batch_train": p.expert_batch, "dsa": p.expert_dsa,
                       "seed": p.expert_seed},
                      zca=p.zca)


class MTTParams(TrajectoryParams):
    """Defaults are distill.py's argparse defaults (pix_init 'real' in the current version)."""

    iterations: NonNegativeInt = 5000
    syn_steps: PositiveInt = 20
    expert_epochs: PositiveInt = 3
    max_start_epoch: PositiveInt = 25
    lr_img: PositiveFinite = 1000.0
    lr_lr: NonNegativeFinite = 1e-5  # 0 keeps the synthetic lr at lr_teacher
    lr_teacher: PositiveFinite = 0.01  # the initial synthetic lr alpha, not the experts' lr
    momentum: Momentum = 0.5
    batch_syn: PositiveInt | None = None  # None: the whole synthetic set in every step
    init: Literal["real", "noise"] = "real"
    dsa: bool = True


class MTT(MethodSpec):
    name = "mtt"
    group = "distillation"
    description = "Matching Training Trajectories: unrolled student steps match expert epochs (Cazenavette 2022)."
    Params = MTTParams
    presets = "mtt"
    eval_preset = "mtt"  # distill.py evaluates with the learned synthetic lr
    learns_lr = True
    maths = "bench.methods.mtt:MTT"

    def experts(self, dataset: str, arch: str) -> list[ExpertSpec]:
        return [trajectory_spec(self.params, dataset, arch)]


Decomposition = Literal["learned", "dct", "ldct", "svd", "lsvd", "dwt", "none"]


class NSDParams(TrajectoryParams):
    """Paper values where it gives them (Sec. 4.1: 10k iterations, SGD momentum 0.9, t2/t3/t4),
    MTT's distill.py defaults for the trajectory settings, and documented choices elsewhere (module
    docstring). Size overrides (`n_tensors`, `n_kernels`, `rank`, `spatial`) default to the automatic
    Eq. 3 sizing."""

    decomposition: Decomposition = "learned"
    n_tensors: PositiveInt | None = None  # N_T per class; learned only
    n_kernels: PositiveInt | None = None  # N_K; learned only
    rank: PositiveInt | None = None  # t1
    batch_ratio: PositiveInt = 2  # u1 = batch_ratio * t1 where the batch kernel is stored
    spatial: PositiveInt | None = None  # t3 = t4
    share_kernels: bool = True
    band_drop: float = Field(0.5, ge=0.0, lt=1.0, allow_inf_nan=False)  # dwt only
    gamma: NonNegativeFinite = 1.0  # weight of the real-guided loss; 0 switches it off
    guide_batch: PositiveInt = 256
    iterations: NonNegativeInt = 10000
    syn_steps: PositiveInt = 20
    expert_epochs: PositiveInt = 3
    max_start_epoch: PositiveInt = 25
    lr_tensor: PositiveFinite = 10000.0  # 10 x MTT's lr_img (random init; see the presets)
    lr_kernel: PositiveFinite = 3.0  # about lr_tensor / 3000 (see the presets)
    real_init_lr_scale: PositiveFinite = 0.02  # both lrs' factor for the variants that start from real images
    lr_lr: NonNegativeFinite = 1e-5
    lr_teacher: PositiveFinite = 0.01  # the initial synthetic lr alpha
    momentum: Momentum = 0.9
    batch_syn: PositiveInt | None = None  # None: IPC x classes decoded images per step (all when fewer)
    dsa: bool = True


class NSD(MethodSpec):
    name = "nsd"
    group = "distillation"
    description = ("Neural Spectral Decomposition: spectrum tensors x separable kernels within Eq. 3's budget, "
                   "MTT + real-guided loss (Yang et al. 2024); choices the paper leaves open are documented "
                   "in bench/methods/nsd.py")
    Params = NSDParams
    presets = "nsd"
    eval_preset = "standard"  # Sec. 4.1: lr 0.01, 1000 epochs, batch 256, momentum 0.9, wd 5e-4, DSA
    learns_lr = True  # stored with MTT's learned lr
    maths = "bench.methods.nsd:NSD"

    def experts(self, dataset: str, arch: str) -> list[ExpertSpec]:
        return [trajectory_spec(self.params, dataset, arch)]


# ------------------------------------------------------------------------ UDD (on IDC)

Policy = Literal["activation", "gradient", "jitter", "voting"]
UDDMetric = Literal["ours", "mse", "cos", "l1"]  # gradient matching's, plus IDC's l1 (its ImageNet setting)
Jitter = Literal["gaussian", "salt_pepper", "uniform"]


class UDDParams(Params):
    """Defaults: UDD Appendix A where it gives a value, IDC's `misc/reproduce.py` for the base it
    inherits, else our choice (marked 'ours')."""

    iterations: int = Field(default=2000, ge=0)  # outer iterations, one fresh network each (UDD App. A)
    inner_loop: int = Field(default=100, ge=1)  # IDC: matching steps per network
    lr_img: PositiveFinite = 5e-3  # UDD App. A (IDC's CIFAR/SVHN value), in pixel units [0, 1]
    lr_img_ipc_scale: bool = True  # IDC tune_lr_img: lr_img x IPC/10
    lr_img_decay_at: list[float] = [0.6, 0.8, 0.9]  # UDD: halved at 1200, 1600, 1800 of 2000 iterations
    lr_img_decay_factor: PositiveFinite = 0.5
    momentum_img: Momentum = 0.5  # IDC mom_img
    # IDC multi-formation: each stored image splits into factor x factor images (2 in IDC's commands for the
    # small data sets, 3 for ImageNet); IDC's decode takes any factor.
    factor: int = Field(default=2, ge=1)
    # IDC --decode_type during distillation: "bound" decodes the first stored images of a class at `factor`,
    # the next at smaller factors, so at most batch_syn_max images come out (IDC: factor >= 3 and IPC >= 20).
    decode: Literal["single", "bound"] = "single"
    metric: UDDMetric = "mse"  # UDD Eq. 9 (IDC: mse for CIFAR/SVHN, l1 for MNIST/Fashion/ImageNet)
    batch_real: int = Field(default=64, ge=1)  # IDC
    batch_syn_max: int = Field(default=128, ge=1)  # IDC: synthetic training images per matching step
    n_data: int = Field(default=500, ge=1)  # IDC: real images the network trains on per inner step
    pretrain_epochs: int = Field(default=0, ge=0)  # IDC --early: epochs on the real data for each fresh network
    net_batch: int = Field(default=64, ge=1)  # IDC --batch_size
    lr_net: PositiveFinite = 0.01  # IDC: SGD momentum 0.9, weight decay 5e-4
    match_augment: str = "color_crop_cutout"  # IDC --aug_type (siamese, IDC's DiffAug)
    net_augment: str = "color_crop"  # IDC: aug_type less cutout when the net update uses CutMix
    net_cutmix_prob: float = Field(default=0.5, ge=0, le=1, allow_inf_nan=False)  # IDC mix_p, CIFAR/SVHN/MNIST/Fashion
    net_cutmix_beta: PositiveFinite = 1.0
    # Underutilised regions (UDD Sec. 2.2-2.4, App. A: N = 12, M = 2, P = 8; main results use jitter).
    policy: Policy = "jitter"
    region_scales: list[float] = [1 / 3, 1 / 2, 2 / 3]  # N = 4 x len (App. B Table 5 varies it)
    num_regions: int = Field(default=8, ge=0)  # P: lowest-scoring regions added per image; 0 = IDC
    num_jitters: int = Field(default=2, ge=1)  # M
    jitter: Jitter = "gaussian"  # UDD's default jitter function (Table 3 compares the three)
    # ours: gaussian std, uniform with the same std (half-width sqrt(3) x), salt-and-pepper pixel fraction,
    # all in pixel units [0, 1]; the paper gives no strength.
    jitter_strength: PositiveFinite = 0.1
    # ours: the response map is the input of this (0-based) convolution, i.e. the activated output of
    # the block before it (ConvNet: layer 1 = block 1 after pooling, 16x16 for 32 px images).
    response_layer: int = Field(default=1, ge=1)
    # Category-wise feature contrastive loss (Sec. 2.5, App. A: tau 0.7, alpha 0.5; weight 1 by Eq. 10).
    cfc: bool = True
    cfc_weight: NonNegativeFinite = 1.0
    tau: PositiveFinite = 0.7
    centre_momentum: float = Field(default=0.5, ge=0, le=1, allow_inf_nan=False)  # alpha of Eq. 8

    @field_validator("match_augment", "net_augment")
    @classmethod
    def _known_ops(cls, value: str) -> str:
        unknown = [op for op in value.split("_") if op not in FAMILIES]
        if unknown and value != "none":
            raise ValueError(f"unknown DSA ops {unknown}; use '_'-joined ops from {FAMILIES} or 'none'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> UDDParams:
        for key in ("region_scales", "lr_img_decay_at"):
            if not all(0 < f <= 1 for f in getattr(self, key)):
                raise ValueError(f"{key} holds fractions in (0, 1], got {getattr(self, key)}")
        if self.num_regions > 4 * len(self.region_scales):
            raise ValueError(f"num_regions {self.num_regions} exceeds the {4 * len(self.region_scales)} "
                             f"candidate regions of region_scales {self.region_scales}")
        return self


class UDD(MethodSpec):
    name = "udd"
    group = "distillation"
    description = ("Mining underutilised regions (activation/gradient/jitter policies) and a class-wise "
                   "feature contrastive loss on IDC gradient matching (Wang et al. 2024).")
    Params = UDDParams
    presets = "udd"
    eval_preset = "idc"
    maths = "bench.methods.udd:UDD"


# ------------------------------------------------------------------------ import (sets made elsewhere)

PLACEHOLDERS = ("dataset", "ipc", "seed")
ImportFormat = Literal["tensor", "dc-res", "npz", "npy", "folder"]


def _template(value: str | None) -> str | None:
    """A file template: non-empty, with only {dataset}, {ipc} and {seed} as placeholders."""
    if value is None:
        return None
    if not value.strip():
        raise ValueError("a file template cannot be empty")
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(value) if field is not None]
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a file template ({exc}); write braces only around dataset, ipc "
                         f"or seed") from None
    if unknown := [n for n in names if n not in PLACEHOLDERS]:
        raise ValueError(f"{value!r} has the placeholder {{{unknown[0]}}}; a file template may use {{dataset}}, "
                         f"{{ipc}} and {{seed}} only")
    return value


FileTemplate = Annotated[str, AfterValidator(_template)]


class ImportParams(Params):
    """Where an imported set's files are and what their values mean. `path`, `labels`, `soft_labels` and a
    string `lr` are file templates ({dataset}, {ipc}, {seed}: the distill seed), relative to the working
    directory. `space` None means normalised values, or pixels for an image folder."""

    path: FileTemplate
    labels: FileTemplate | None = None
    lr: PositiveFinite | FileTemplate | None = None
    soft_labels: FileTemplate | None = None
    space: Literal["normalized", "pixels", "zca"] | None = None
    format: ImportFormat | None = None

    @property
    def zca(self) -> bool:
        """Values in MTT's ZCA space are evaluated on ZCA-whitened data (`DistillTask.zca`)."""
        return self.space == "zca"


class InputError(ValueError):
    """A file a method reads from outside the store is missing or does not fit its cell; one paragraph."""


FILE_PARAMS = ("path", "labels", "lr", "soft_labels")


class Import(MethodSpec):
    name = "import"
    description = ("A synthetic set made elsewhere, read from files: MTT/DATM .pt tensors, DatasetCondensation "
                   "res_*.pt, .npz/.npy, or an image folder per class; the files' SHA-256 are in its key and "
                   "records.")
    Params = ImportParams
    uses_network = False
    learns_lr = True  # with an `lr:` file or number, `eval: {lr: learned}` trains with it
    maths = "bench.methods.imported:Import"

    @classmethod
    def check_recipe(cls, params: ImportParams, recipe: EvalRecipe) -> str | None:
        if recipe.lr == "learned" and params.lr is None:
            return ("the evaluation trains with the learned lr (`lr: learned` or preset 'mtt'), but this import "
                    "has no `lr:` param: set `lr:` to the lr file (MTT's lr_best.pt) or a number, or evaluate "
                    "with a numeric lr.")
        return None

    def key_params(self) -> dict[str, Any]:
        """The params less the file templates: the key holds the files' SHA-256 instead (`inputs`), so a
        file evaluated by `bench eval` and by a suite, under any template, has one key."""
        return {k: v for k, v in self.params.model_dump(mode="json").items()
                if not (k in FILE_PARAMS and isinstance(v, str))}

    def inputs(self, dataset: str, ipc: int, seed: int) -> list[dict[str, Any]]:
        p: ImportParams = self.params
        folder = p.format == "folder"
        found = []
        for param in FILE_PARAMS:
            template = getattr(p, param)
            if not isinstance(template, str):
                continue
            path = Path(template.format(dataset=dataset, ipc=ipc, seed=seed)).expanduser()
            if not path.exists():
                raise InputError(f"the `{param}:` file {template!r} is {str(path)!r} for {dataset} at IPC {ipc}, "
                                 f"distill seed {seed}, and it does not exist (relative paths are read from the "
                                 f"working directory, {Path.cwd()}).")
            if param == "path" and path.is_dir() != folder and (folder or p.format is not None):
                raise InputError(f"`path:` {str(path)!r} is {'a folder' if path.is_dir() else 'a file'}, but "
                                 f"`format: {p.format}` reads {'a folder' if folder else 'a file'}.")
            if param != "path" and path.is_dir():
                raise InputError(f"the `{param}:` file {str(path)!r} is a folder; name a file.")
            found.append({"param": param, "template": template, "path": str(path), **file_digest(path)})
        if p.labels is None and (beside := labels_beside(Path(found[0]["path"]))) is not None:
            found.append({"param": "labels", "template": None, "path": str(beside), **file_digest(beside)})
        if Path(found[0]["path"]).is_dir() and p.space not in (None, "pixels"):
            raise InputError(f"`path:` {found[0]['path']!r} is an image folder, which holds pixels, but the "
                             f"import says `space: {p.space}`. Drop `space:` or set `space: pixels`.")
        return found


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def labels_beside(path: Path) -> Path | None:
    """MTT's and DATM's layout: images_best.pt beside labels_best.pt (likewise .npy); None where there is none."""
    if path.is_dir() or "images" not in path.name:
        return None
    beside = path.with_name(path.name.replace("images", "labels"))
    return beside if beside.is_file() else None


def folder_files(path: Path) -> list[Path]:
    """The files of an image folder that are read, in a stable order (hidden files left out)."""
    return sorted(f for f in path.rglob("*") if f.is_file() and not any(part.startswith(".") for part in
                                                                         f.relative_to(path).parts))


@cache
def _sha256(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
    """A file's SHA-256, once per process for an unchanged file (planning hashes it for every command)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_cache() -> Path:
    """Where the hashes of imported files outlive a command: $BENCH_CACHE, else $XDG_CACHE_HOME/bench, else
    ~/.cache/bench."""
    if root := os.environ.get("BENCH_CACHE"):
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bench"


# A hash is kept only for a file last written (mtime) and changed (ctime) this long before its hashing began, so
# a write within the same tick of the file system's clock (same size, same times) cannot leave a stale hash: git's
# "racy clean" rule. ctime and the inode are in the key because no tool sets them back (`touch -d`, `rsync -t`,
# `cp -p` restore an mtime, not a ctime).
RACY_NS = 2_000_000_000


def _digests(root: Path, files: list[Path]) -> list[str]:
    """Each file's SHA-256; for a file `stat` says is unchanged since an earlier command hashed it, read from that
    command's cache (one JSON file per imported file or folder under `hash_cache()`) instead of hashed again:
    planning hashes every import in every command, about a second per GB. A cache that cannot be read is ignored,
    and one that cannot be written is left: either way the files are hashed."""
    where = hash_cache() / "sha256" / f"{hashlib.sha256(str(root.resolve()).encode()).hexdigest()}.json"
    known = _cached.get(where)
    if known is None:
        try:
            known = json.loads(where.read_text())
        except (OSError, ValueError):
            known = {}
        known = known if isinstance(known, dict) else {}
    started, kept, out = time.time_ns(), {}, []
    for f in files:
        st = f.stat()
        stat = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        name = f.relative_to(root).as_posix()
        hit = known.get(name)
        digest = hit[4] if isinstance(hit, list) and hit[:4] == stat and len(hit) == 5 else _sha256(
            str(f.resolve()), *stat)
        out.append(digest)
        if max(st.st_mtime_ns, st.st_ctime_ns) < started - RACY_NS:
            kept[name] = [*stat, digest]
    _cached[where] = kept
    if kept != known:
        with suppress(OSError):
            atomic_write(where, lambda out_file: out_file.write(json.dumps(kept).encode()))
    return out


_cached: dict[Path, dict[str, list]] = {}  # what this process last read or wrote of each cache file


def sha256_of(path: Path) -> str:
    return _digests(path, [path])[0]


def file_digest(path: Path) -> dict[str, Any]:
    """{"sha256": ...} of a file; for a folder, the SHA-256 of its manifest (one line "relative/path<TAB>sha256"
    per file, sorted) and the number of files, so a record stays small for a folder of thousands of images."""
    if not path.is_dir():
        return {"sha256": sha256_of(path)}
    files = folder_files(path)
    manifest = "".join(f"{f.relative_to(path).as_posix()}\t{digest}\n"
                       for f, digest in zip(files, _digests(path, files)))
    return {"sha256": hashlib.sha256(manifest.encode()).hexdigest(), "files": len(files)}


BUILTIN: tuple[type[MethodSpec], ...] = (Random, Herding, KCenter, Forgetting, DC, DSA, DM, IDM, IIDDM, IIDIDM, MTT,
                                         NSD, UDD, Import)
