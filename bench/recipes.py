"""The evaluation protocol as data: a recipe (epochs, lr, schedule, augmentation, ...) and the named
presets of the papers. Plain values, no torch: suites are validated and planned with them, and
`bench.train` runs them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Literal

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")
"""DSA's operation families; a strategy joins some with '_' (e.g. "color_crop_cutout")."""

LabelRegime = Literal["hard", "soft", "teacher"]
"""How an evaluation network is taught (the regimes of DD-Ranking and "Hard Truths about Soft Labels"):
"hard" trains with cross-entropy on the set's class labels; "soft" with soft cross-entropy on the soft labels
(logits) stored with the set; "teacher" with KL divergence to a teacher network's outputs on each augmented
batch (SRe2L/RDED-style relabelling; the teacher is an expert stage trained on the full training set)."""

# Temperatures of DD-Ranking's evaluation configs (branch `eval`): soft cross-entropy at 1.0 on stored soft labels
# (its DATM configs, mode S), KL at 20.0 against a teacher (its SRe2L ImageNet/TinyImageNet, D4M and G-VBSM
# configs, mode M; its SRe2L CIFAR configs use 30). Those configs leave the T^2 loss scaling off (AdamW does not
# need it); bench's SGD loop scales both losses by T^2 (`bench.train.soft_cross_entropy`, `kd_divergence`).
TEMPERATURES: dict[str, float] = {"soft": 1.0, "teacher": 20.0}
# Epochs a teacher trains on the full training set unless the recipe says: DD-Ranking's REAL_DATA_TRAINING_CONFIG
# (ConvNet-3 on CIFAR-10, 200 epochs).
TEACHER_EPOCHS = 200

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
      drawn from Beta(beta, beta); with CutMix on, cutout is removed from the DSA strategy, as IDC does;
    * `batch_seeds`: train the seeds of a cell together (`bench.batched`); None (the default) does so on CUDA,
      where it measured faster (benchmarks/cuda_checks.sh), and not on a CPU, where it is slower (`trains_together`).
      Each seed keeps the network, data order and augmentation of the one-at-a-time loop; vmapped kernels round
      differently in the last bits, so accuracies agree with the loop's within float tolerance (tests/
      test_batched.py), as a GPU's agree with a CPU's. Like the device, it is how a recipe runs, not what it is:
      it is not part of the hashed identity (`as_dict` leaves it out), and each record says which seeds were
      trained with it (`Record.trained_with`);
    * `labels`: the label regime (`LabelRegime`); `temperature` of its loss (None: the regime's default in
      `TEMPERATURES`); for "teacher", the teacher's architecture (`teacher_arch`, None: the evaluation
      architecture) and `teacher_epochs` on the full training set. Fields a regime does not use are reset to
      None, so one regime has one hashed identity, and a hard-label recipe hashes as before the regimes existed.
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
    batch_seeds: bool | None = None
    labels: LabelRegime = "hard"
    temperature: float | None = None
    teacher_arch: str | None = None
    teacher_epochs: int | None = None

    def __post_init__(self) -> None:
        regime = self.labels
        if regime not in ("hard", "soft", "teacher"):
            raise ValueError(f"labels must be hard, soft or teacher, got {regime!r}")
        unused = {"temperature": regime == "hard", "teacher_arch": regime != "teacher",
                  "teacher_epochs": regime != "teacher"}
        for name, drop in unused.items():
            if drop:
                object.__setattr__(self, name, None)
        if self.temperature is not None:  # a YAML 4 and 4.0 are one recipe (one hashed identity)
            object.__setattr__(self, "temperature", float(self.temperature))
        if regime != "hard" and self.temperature is None:
            object.__setattr__(self, "temperature", TEMPERATURES[regime])
        if regime == "teacher" and self.teacher_epochs is None:
            object.__setattr__(self, "teacher_epochs", TEACHER_EPOCHS)
        if self.temperature is not None and not (0 < self.temperature < math.inf):
            raise ValueError(f"temperature must be a positive number, got {self.temperature}")
        if self.batch_seeds and regime != "hard":
            raise ValueError(f"batch_seeds trains a cell's seeds together with hard labels only; labels: {regime} "
                             f"trains them one at a time: remove `batch_seeds: true` for this recipe")
        if self.decay_at is not None:  # a suite's YAML list; a tuple keeps the recipe hashable
            object.__setattr__(self, "decay_at", tuple(self.decay_at))
            if not all(0 < f <= 1 for f in self.decay_at):
                raise ValueError(f"decay_at holds fractions of the epochs in (0, 1], got {self.decay_at}")

    def as_dict(self) -> dict:
        """All fields, less the optional ones at their defaults and how the seeds are run (the recipe's hashed
        identity)."""
        defaults = {f.name: f.default for f in fields(self) if f.name in OPTIONAL_FIELDS}
        return {k: v for k, v in asdict(self).items()
                if k != "batch_seeds" and (k not in defaults or v != defaults[k])}

    def trains_together(self, device_type: str) -> bool:
        """Whether a cell's seeds are trained together on a device of this type ("cpu", "cuda", ...)."""
        if self.batch_seeds is not None:
            return self.batch_seeds
        return self.labels == "hard" and device_type == "cuda"

    def with_overrides(self, overrides: dict) -> EvalRecipe:
        """The recipe with `overrides`; a change of regime starts from the new regime's defaults (a preset's
        temperature is its regime's, not one the overrides chose)."""
        if overrides.get("labels", self.labels) != self.labels:
            overrides = {key: None for key in LABEL_FIELDS[1:]} | overrides
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


OPTIONAL_FIELDS = ("decay_at", "extra_epoch", "dsa_mode", "cutmix_prob", "cutmix_beta", "labels", "temperature",
                   "teacher_arch", "teacher_epochs")
LABEL_FIELDS = ("labels", "temperature", "teacher_arch", "teacher_epochs")


def hard_labels(recipe: EvalRecipe) -> EvalRecipe:
    """The same protocol under hard labels: what DD-Ranking's hard-label recovery and the Whole Dataset row use."""
    return replace(recipe, labels="hard")


def without_augmentation(recipe: EvalRecipe) -> EvalRecipe:
    """The same protocol with no augmentation (no DSA, no CutMix): the other leg of DD-Ranking's ARS."""
    return replace(recipe, augment="none", cutmix_prob=0.0)

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
    # IDC on ImageNet (test.py, train.py, argument.py): the `idc` loop with CutMix on every batch (mix_p keeps
    # its default 1.0 for ImageNet) and 1000 epochs (ipc_epoch: 11-200 decoded images per class, i.e. IPC
    # 10 and 20 at factor 3). IDC augments ImageNet with its loader's RandomResizedCrop (scale 0.5-1), flip,
    # ColorJitter 0.4 and PCA lighting 0.1 instead of DiffAug; bench has no such augmentation, so this
    # preset keeps IDC's DiffAug of the `idc` preset (colour, crop, flip, scale, rotate).
    "idc-imagenet": EvalRecipe(batch_size=64, decay_factor=0.2, decay_at=(2 / 3, 5 / 6), extra_epoch=False,
                               dsa_mode="idc", cutmix_prob=1.0, cutmix_beta=1.0),
    # The standard loop with the set's stored soft labels: soft cross-entropy at T 1.0 (DD-Ranking's DATM
    # configs on CIFAR: the DC/DSA/DM loop, DSA, SGD 0.01, 1000 epochs, `soft_label_mode: S`, `sce`).
    "soft": EvalRecipe(labels="soft"),
    # The standard loop relabelled by a teacher: KL at T 20 to a teacher of the evaluation architecture trained
    # on the full training set (DD-Ranking's SRe2L/D4M configs, `soft_label_mode: M`, `kl`; those train the
    # student with AdamW and a cosine schedule, which bench's loop does not have: this preset keeps SGD).
    "teacher": EvalRecipe(labels="teacher"),
}
