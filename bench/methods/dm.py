"""`dm`: Distribution Matching (Zhao & Bilen, WACV 2023), as in DatasetCondensation `main_DM.py`.

Every iteration draws a fresh randomly initialised network (never trained) and matches, per
class, the mean embedding of a real batch with the mean embedding of the synthetic images, both
augmented with the same DSA draw. One SGD step on the synthetic images per iteration.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from bench.augment import dsa, siamese_generator
from bench.methods.base import DistillContext, Method, Params, SyntheticSet, class_labels, initial_images
from bench.methods.registry import register
from bench.nets import has_batchnorm
from bench.train import seeded


class DMParams(Params):
    iterations: int = 20000
    lr_img: float = 1.0
    momentum: float = 0.5
    batch_real: int = 256
    init: Literal["real", "noise"] = "real"
    dsa: bool = True


def mean_embedding_distance(real_features: torch.Tensor, syn_features: torch.Tensor) -> torch.Tensor:
    """||mean f(real) - mean f(syn)||^2: the distribution-matching term of DM and its descendants."""
    return ((real_features.mean(0) - syn_features.mean(0)) ** 2).sum()


@register
class DM(Method):
    name = "dm"
    group = "distillation"
    description = "Distribution Matching: match mean embeddings of random networks (Zhao & Bilen 2023)."
    Params = DMParams

    def distill(self, ctx: DistillContext) -> SyntheticSet:
        p: DMParams = self.params
        g = ctx.generator()
        real = ctx.real_per_class()
        num_classes = len(real)
        syn = initial_images(real, ctx.ipc, p.init, g)
        opt = torch.optim.SGD([syn], lr=p.lr_img, momentum=p.momentum)
        strategy = ctx.dsa_strategy if p.dsa else "none"
        start, _ = ctx.checkpoint.resume(g, {"syn": syn}, {"opt": opt})

        for it in range(start, p.iterations):
            net = seeded(int(torch.randint(2**31 - 1, (1,), generator=g)), ctx.make_net).to(ctx.device)
            net.train()
            for param in net.parameters():
                param.requires_grad_(False)
            xr, xs = [], []
            for c in range(num_classes):
                idx = torch.randperm(len(real[c]), generator=g)[:p.batch_real].to(ctx.device)
                aug_seed = int(torch.randint(2**31 - 1, (1,), generator=g))
                xr.append(dsa(real[c][idx], strategy, siamese_generator(aug_seed), siamese=True))
                xs.append(dsa(syn[c * ctx.ipc:(c + 1) * ctx.ipc], strategy, siamese_generator(aug_seed),
                              siamese=True))
            loss = self._loss(net, xr, xs)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.progress(it + 1, p.iterations, f"iteration, loss {loss.item():.2f}")
            ctx.checkpoint.keep(it + 1, g, {"syn": syn}, {"opt": opt})
        return SyntheticSet(syn.detach().cpu(), class_labels(num_classes, ctx.ipc))

    @staticmethod
    def _loss(net: nn.Module, xr: list[torch.Tensor], xs: list[torch.Tensor]) -> torch.Tensor:
        """Sum over classes of ||mean f(real_c) - mean f(syn_c)||^2.

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
