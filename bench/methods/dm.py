"""`dm`: Distribution Matching (Zhao & Bilen, WACV 2023), as in DatasetCondensation `main_DM.py`.

Every iteration draws a fresh randomly initialised network (never trained) and matches, per
class, the mean embedding of a real batch with the mean embedding of the synthetic images, both
augmented with the same DSA draw. One SGD step on the synthetic images per iteration.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn as nn

from bench.augment import dsa, siamese_generator, to_device
from bench.methods import specs
from bench.methods.base import DistillContext, SyntheticSet, class_labels, initial_images
from bench.methods.loop import IterativeMethod, LoopState
from bench.methods.specs import DMParams
from bench.nets import has_batchnorm
from bench.train import seeded


def mean_embedding_distance(real_features: torch.Tensor, syn_features: torch.Tensor) -> torch.Tensor:
    """||mean f(real) - mean f(syn)||^2: the distribution-matching term of DM and its descendants."""
    return ((real_features.mean(0) - syn_features.mean(0)) ** 2).sum()


def distribution_matching_loss(net: nn.Module, xr: list[torch.Tensor], xs: list[torch.Tensor]) -> torch.Tensor:
    """DM's objective: the sum over classes of ||mean f(real_c) - mean f(syn_c)||^2.

    BatchNorm networks embed all classes in one forward pass (batch statistics over the
    whole batch), as the reference does; other networks embed class by class.
    """
    if has_batchnorm(net):
        fr = net.embed(torch.cat(xr)).detach().split([len(x) for x in xr])
        fs = net.embed(torch.cat(xs)).split([len(x) for x in xs])
    else:
        fr = [net.embed(x).detach() for x in xr]
        fs = [net.embed(x) for x in xs]
    return sum(mean_embedding_distance(a, b) for a, b in zip(fr, fs))


class ExtraLoss(ABC):
    """A loss term added to a distribution-matching objective: the public hook of DM and IDM.

    A method built on `dm` or `idm` returns its terms from `extra_losses(ctx)` (IID's class
    centralization and covariance matching are one). For every matching network the base method
    first calls `watch(net)` and computes its own loss with the network returned (a term that reads
    the base loss's forward pass returns a wrapper recording it); each loss it computes then gets
    `term(watched, real, syn)` added, with the per-class real and synthetic batches, augmented, that
    the base loss saw: all classes at once for DM, one class per call for IDM. Terms apply in order.
    `generators()` are checkpointed with the base method's state, so a term's random draws resume too.
    """

    def generators(self) -> dict[str, torch.Generator]:
        return {}

    def watch(self, net: nn.Module) -> nn.Module:
        """The network the base loss embeds with, for one matching network (`net` itself by default)."""
        return net

    @abstractmethod
    def __call__(self, net: nn.Module, real: list[torch.Tensor], syn: list[torch.Tensor]) -> torch.Tensor:
        """The term, from the watched network and per-class (real, synthetic) batches."""


def watch_all(terms: list[ExtraLoss], net: nn.Module) -> nn.Module:
    for term in terms:
        net = term.watch(net)
    return net


def with_terms(loss: torch.Tensor, terms: list[ExtraLoss], net: nn.Module, real: list[torch.Tensor],
               syn: list[torch.Tensor]) -> torch.Tensor:
    """`loss` plus every extra term (exactly `loss` when there is none)."""
    for term in terms:
        loss = loss + term(net, real, syn)
    return loss


def term_generators(terms: list[ExtraLoss]) -> dict[str, torch.Generator]:
    return {name: g for term in terms for name, g in term.generators().items()}


class MatchingState(LoopState):
    """What DM and IDM checkpoint alike: the synthetic images `syn`, their optimiser `opt`, the
    generator `g` and their extra terms' generators (fields of the subclass)."""

    syn: torch.Tensor
    opt: torch.optim.Optimizer
    g: torch.Generator
    terms: list[ExtraLoss]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"syn": self.syn}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def generators(self) -> dict[str, torch.Generator]:
        return {"g": self.g, **term_generators(self.terms)}


@dataclass
class DMState(MatchingState):
    ctx: DistillContext
    real: list[torch.Tensor]
    syn: torch.Tensor
    opt: torch.optim.Optimizer
    g: torch.Generator
    strategy: str
    terms: list[ExtraLoss]


class DM(specs.DM, IterativeMethod):
    def extra_losses(self, ctx: DistillContext) -> list[ExtraLoss]:
        """Terms added to DM's loss (`ExtraLoss`): none; a method built on DM returns its own."""
        return []

    def init(self, ctx: DistillContext) -> DMState:
        p: DMParams = self.params
        terms = self.extra_losses(ctx)
        g = ctx.generator()
        real = ctx.real_per_class()
        syn = initial_images(real, ctx.ipc, p.init, g)
        return DMState(ctx, real, syn, torch.optim.SGD([syn], lr=p.lr_img, momentum=p.momentum), g,
                       ctx.dsa_strategy if p.dsa else "none", terms)

    def step(self, s: DMState, iteration: int) -> torch.Tensor:
        """One fresh random network; one SGD step on the synthetic images."""
        p: DMParams = self.params
        ctx, g, ipc = s.ctx, s.g, s.ctx.ipc
        net = seeded(int(torch.randint(2**31 - 1, (1,), generator=g)), ctx.make_net).to(ctx.device)
        net.train()
        for param in net.parameters():
            param.requires_grad_(False)
        xr, xs = [], []
        for c, real in enumerate(s.real):
            idx = to_device(torch.randperm(len(real), generator=g)[:p.batch_real], ctx.device)
            aug_seed = int(torch.randint(2**31 - 1, (1,), generator=g))
            xr.append(dsa(real[idx], s.strategy, siamese_generator(aug_seed), siamese=True))
            xs.append(dsa(s.syn[c * ipc:(c + 1) * ipc], s.strategy, siamese_generator(aug_seed), siamese=True))
        watched = watch_all(s.terms, net)
        loss = with_terms(distribution_matching_loss(watched, xr, xs), s.terms, watched, xr, xs)
        s.opt.zero_grad(set_to_none=True)
        loss.backward()
        s.opt.step()
        return loss

    def finish(self, s: DMState) -> SyntheticSet:
        return SyntheticSet(s.syn.detach().cpu(), class_labels(len(s.real), s.ctx.ipc))
