"""The Method API: what a distillation method receives and what it returns.

A method gets the real training set, the IPC, a seed, a device, a network factory, the DSA
strategy and its own validated parameters (`DistillContext`); it returns a `SyntheticSet`. It never
trains or tests evaluation networks itself: that is `bench.train`'s job, the same for every method.

Two shapes. A method computed in one go (a coreset, a closed form) subclasses `Method` and
implements `distill(ctx)`. A method that improves its set over iterations subclasses
`bench.methods.loop.IterativeMethod` and gives its maths only, `init` / `step` / `finish`: the
harness runs the loop, checkpoints and resumes it, and reports progress (see that module).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import torch
import torch.nn as nn

from bench.data import Dataset, DatasetSpec
from bench.logs import LOG
from bench.methods.budget import storage_budget_bytes
from bench.methods.specs import MethodSpec
from bench.store import Parts, atomic_write
from bench.train import Progress

log = LOG.getChild("methods")


@dataclass
class SyntheticSet:
    """A synthetic set as stored: images and labels, the learned lr where a method learns one, and soft labels
    (logits, one row of `num_classes` per training image) where a method or an imported release has them: the
    `labels: soft` regime trains on those (`bench.recipes.LabelRegime`). They are stored bytes like the rest.

    Subclasses are parametrised forms (a compact tensor plus a decoder): they override
    `training_data` to decode and register under their own `format`. `nbytes` counts exactly
    the tensors that are stored, so the compression ratio is honest about parametrised sets.
    """

    images: torch.Tensor
    labels: torch.Tensor
    lr: torch.Tensor | None = None
    soft_labels: torch.Tensor | None = None
    format: ClassVar[str] = "images"
    not_images: ClassVar[tuple[str, ...]] = ("labels", "lr", "soft_labels")  # tensors a storage budget leaves out

    def tensors(self) -> dict[str, torch.Tensor]:
        stored = {"images": self.images, "labels": self.labels}
        if self.lr is not None:
            stored["lr"] = self.lr.reshape(())
        if self.soft_labels is not None:
            stored["soft_labels"] = self.soft_labels
        return stored

    @property
    def nbytes(self) -> int:
        return sum(t.nelement() * t.element_size() for t in self.tensors().values())

    @property
    def image_nbytes(self) -> int:
        """Stored bytes that stand for images (all but `not_images`): what a storage budget limits."""
        return sum(t.nelement() * t.element_size() for k, t in self.tensors().items() if k not in self.not_images)

    def training_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (images, labels) an evaluation network trains on."""
        return self.images, self.labels

    def eval_lr(self, recipe_lr: float | Literal["learned"]) -> float:
        """The lr an evaluation network trains with: the recipe's, or for "learned" the one stored here."""
        if recipe_lr != "learned":
            return recipe_lr
        if self.lr is None:
            raise ValueError(f"the evaluation recipe trains with the learned lr, but this '{self.format}' set "
                             f"stores none; use the 'standard' preset or a numeric `eval: lr:` for this method.")
        return float(self.lr)

    def problems(self, ipc: int, spec: DatasetSpec) -> list[str]:
        """What is wrong with this set for `ipc` images per class of a data set shaped like `spec`
        (empty when nothing is): checked before a set is stored, so a broken method or plugin fails
        at its own distillation, not later at every evaluation of what it stored."""
        if not isinstance(self.images, torch.Tensor) or not isinstance(self.labels, torch.Tensor):
            return [f"images and labels must be tensors, got {type(self.images).__name__} and "
                    f"{type(self.labels).__name__}"]
        found = [f"the stored tensor '{name}' holds NaN or Inf values (the distillation diverged: lower its "
                 f"learning rate)" for name, t in self.tensors().items()
                 if t.is_floating_point() and not torch.isfinite(t).all()]
        x, y = self.training_data()
        shape = (spec.channels, spec.image_size, spec.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != shape or not x.is_floating_point():
            found.append(f"the training images must be a float tensor of shape (N, {', '.join(map(str, shape))}) "
                         f"for {spec.name}, got {x.dtype} {tuple(x.shape)}")
        if y.dtype != torch.int64 or y.dim() != 1 or len(y) != len(x):
            found.append(f"the labels must be one int64 class index per training image ({len(x)}), got {y.dtype} "
                         f"{tuple(y.shape)}")
        elif self.soft_labels is not None and (not self.soft_labels.is_floating_point() or tuple(
                self.soft_labels.shape) != (len(x), spec.num_classes)):
            found.append(f"the soft labels must be float logits of shape ({len(x)}, {spec.num_classes}) (one row "
                         f"per training image), got {self.soft_labels.dtype} {tuple(self.soft_labels.shape)}")
        elif len(y) and (int(y.min()) < 0 or int(y.max()) >= spec.num_classes):
            found.append(f"labels span {int(y.min())}..{int(y.max())}, outside {spec.name}'s classes "
                         f"0..{spec.num_classes - 1}")
        elif self.format == "images":
            counts = torch.bincount(y, minlength=spec.num_classes).tolist()
            if counts != [ipc] * spec.num_classes:
                found.append(f"IPC {ipc} means {ipc} image(s) of each of the {spec.num_classes} classes, got "
                             f"{counts} per class")
        return found

    def storage(self, ipc: int, dataset: Dataset) -> dict[str, Any]:
        """What an artifact's metadata says about storage: the format, the bytes stored, those standing
        for images, and NSD's Eq. 3 budget (IPC plain images per class; `bench.methods.budget`), which
        the image bytes may not exceed. The IPC is given: a parametrised set's shape does not tell it."""
        spec = dataset.spec
        budget = storage_budget_bytes(ipc, spec.num_classes, spec.channels, spec.image_size,
                                      bytes_per_value=dataset.x_train.element_size())
        return {"format": self.format, "bytes": self.nbytes, "image_bytes": self.image_nbytes,
                "budget_bytes": budget, "over_budget": self.image_nbytes > budget}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> SyntheticSet:
        return cls(**tensors)


SYNSET_FORMATS: dict[str, type[SyntheticSet]] = {"images": SyntheticSet}


def register_format(cls: type[SyntheticSet]) -> type[SyntheticSet]:
    """Class decorator: artifacts of `cls.format` are rebuilt with `cls.from_tensors`."""
    SYNSET_FORMATS[cls.format] = cls
    return cls


@dataclass
class Checkpoint:
    """Where the harness's loop (`bench.methods.loop.run`) keeps an iterative method's state, so a
    preempted, timed-out or killed job resumes. Writes are atomic. `path=None` switches it off."""

    path: Path | None = None
    every: int = 50
    FORMAT: ClassVar[int] = 2  # the layout of `state` (loop.snapshot); a file of another layout is not resumed

    def due(self, iteration: int) -> bool:
        return self.path is not None and iteration % self.every == 0

    def save(self, iteration: int, state: dict[str, Any]) -> None:
        if self.path is not None:
            atomic_write(self.path, lambda f: torch.save({"format": self.FORMAT, "iteration": iteration,
                                                          "state": state}, f))

    def load(self) -> tuple[int, dict[str, Any]] | None:
        """(iteration, state) of the last save, or None to start from scratch."""
        if self.path is None or not self.path.exists():
            return None
        saved = torch.load(self.path, weights_only=True)
        if saved.get("format") != self.FORMAT:
            self.discard("it was written by another version of bench")
            return None
        if type(saved.get("iteration")) is not int or not isinstance(saved.get("state"), dict):
            self.discard("it lacks the iteration or the state a checkpoint holds")
            return None
        log.info("resuming from checkpoint %s at iteration %d", self.path.name, saved["iteration"])
        return saved["iteration"], saved["state"]

    def discard(self, why: str) -> None:
        """Delete a checkpoint that cannot be resumed, saying why: the distillation starts from scratch."""
        assert self.path is not None
        log.warning("warning: discarding checkpoint %s: %s; the distillation starts from scratch.", self.path, why)
        self.path.unlink(missing_ok=True)


@dataclass
class DistillContext:
    """Everything a method may use. Randomness must come from `seed` (no clock, no global RNG).

    `progress` and `checkpoint` are the harness's: its loop (`bench.methods.loop.run`) reports and
    checkpoints an iterative method's iterations, so a method has no call to make on them."""

    dataset: Dataset
    ipc: int
    seed: int
    device: torch.device
    make_net: Callable[[], nn.Module]
    dsa_strategy: str
    progress: Progress = field(default=lambda step, total, detail: None)
    experts: dict[str, dict[str, torch.Tensor | Parts]] = field(default_factory=dict)  # a big stage: Parts
    checkpoint: Checkpoint = field(default_factory=Checkpoint)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed)

    def real_per_class(self) -> list[torch.Tensor]:
        """The real training images of each class, on the device."""
        x = self.dataset.x_train.to(self.device)
        return [x[idx.to(self.device)] for idx in self.dataset.class_indices()]


class Method(MethodSpec, ABC):
    """A distillation method with its maths: a spec (`name`, `description`, `Params`, ...; see
    `MethodSpec`) that implements `distill` (or, for an iterative method, subclasses
    `bench.methods.loop.IterativeMethod` instead). Built-in methods subclass their spec in
    `bench.methods.specs`; a plugin declares everything in one class.
    """

    @abstractmethod
    def distill(self, ctx: DistillContext) -> SyntheticSet:
        """Return the synthetic set for `ctx.ipc` images per class, computed in one go."""


def sample_per_class(real: list[torch.Tensor], ipc: int, generator: torch.Generator) -> torch.Tensor:
    """`ipc` distinct random real images of each class, in class order."""
    return torch.cat([x[torch.randperm(len(x), generator=generator)[:ipc].to(x.device)] for x in real])


def initial_images(real: list[torch.Tensor], ipc: int, init: str, generator: torch.Generator) -> torch.Tensor:
    """The synthetic images a method starts from, as a leaf to optimise: `ipc` random real images per
    class ("real"), or standard normal noise of the same shape ("noise"), on the real images' device."""
    if init == "real":
        images = sample_per_class(real, ipc, generator)
    else:
        images = torch.randn((len(real) * ipc, *real[0].shape[1:]), generator=generator).to(real[0].device)
    return images.detach().clone().requires_grad_(True)


def class_labels(num_classes: int, ipc: int) -> torch.Tensor:
    """Labels [0]*ipc + [1]*ipc + ..., the reference layout of a synthetic set."""
    return torch.arange(num_classes).repeat_interleave(ipc)
