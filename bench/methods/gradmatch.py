"""`dc` and `dsa`: gradient matching, as in DatasetCondensation `main.py` (Zhao et al. ICLR 2021;
Zhao & Bilen ICML 2021, which adds Differentiable Siamese Augmentation).

Every iteration draws a fresh randomly initialised network. For `outer_loop` steps, the
synthetic images take one joint SGD step that makes, class by class, the gradient of the
cross-entropy on the synthetic images match the gradient on a real batch; between steps the
network trains for `inner_loop` epochs on the (detached) synthetic set. `dsa` is the same
algorithm with siamese augmentation of each class's real and synthetic batch (one shared draw)
while matching, and per-sample augmentation in the inner loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.augment import dsa, siamese_generator, to_device
from bench.nets import has_batchnorm
from bench.methods import specs
from bench.methods.base import DistillContext, SyntheticSet, class_labels, initial_images
from bench.methods.loop import IterativeMethod, LoopState
from bench.methods.presets import load_preset
from bench.methods.specs import DCParams, Metric
from bench.train import seeded, train_epoch

BN_REAL_PER_CLASS = 16  # real images per class that set BatchNorm's running statistics (reference BNSizePC)
EPS = 1e-6  # the reference's guard in every cosine denominator

def loops(ipc: int) -> tuple[int, int]:
    """(outer_loop, inner_loop) from the preset's `any:` table (the reference `get_loops`).

    The reference stops for an IPC outside its table; here such an IPC takes the entry of the
    largest table IPC below it (2..9 -> the IPC-1 entry, above 50 -> the IPC-50 entry), so cost
    grows monotonically with IPC and no loop count is invented.
    """
    table = load_preset("dc")["any"]
    key = max((k for k in table if k <= ipc), default=min(table))
    return table[key]["outer_loop"], table[key]["inner_loop"]


def layer_distance(gs: torch.Tensor, gr: torch.Tensor) -> torch.Tensor:
    """The reference `distance_wb`: sum over output rows of 1 - cos(gs_row, gr_row); 0 for 1-D tensors.

    Conv weights (out, in, k, k) become (out, in*k*k) rows; biases and norm parameters are ignored.
    """
    if gr.dim() == 1:
        return gs.new_zeros(())
    gs, gr = gs.flatten(1), gr.flatten(1)
    cos = (gs * gr).sum(-1) / (gs.norm(dim=-1) * gr.norm(dim=-1) + EPS)
    return (1 - cos).sum()


def match_distance(gw_syn: list[torch.Tensor], gw_real: list[torch.Tensor], metric: Metric) -> torch.Tensor:
    """The reference `match_loss`: 'ours' (layer-wise, row-wise cosine), or 'mse'/'cos' on all
    parameters flattened into one vector."""
    if metric == "ours":
        return sum((layer_distance(s, r) for s, r in zip(gw_syn, gw_real)), gw_syn[0].new_zeros(()))
    vs = torch.cat([g.flatten() for g in gw_syn])
    vr = torch.cat([g.flatten() for g in gw_real])
    if metric == "mse":
        return ((vs - vr) ** 2).sum()
    return 1 - (vs * vr).sum() / (vs.norm() * vr.norm() + EPS)


def class_gradient(net: nn.Module, x: torch.Tensor, c: int, create_graph: bool) -> list[torch.Tensor]:
    """Gradient w.r.t. every network parameter of the cross-entropy of `x`, all labelled `c`."""
    loss = F.cross_entropy(net(x), torch.full((len(x),), c, dtype=torch.long, device=x.device))
    return list(torch.autograd.grad(loss, list(net.parameters()), create_graph=create_graph))


def matching_loss(net: nn.Module, real: list[torch.Tensor], syn: list[torch.Tensor], metric: Metric,
                  create_graph: bool = True) -> torch.Tensor:
    """Sum over classes of the distance between the synthetic and the (detached) real gradients."""
    total = syn[0].new_zeros(())
    for c, (xr, xs) in enumerate(zip(real, syn)):
        gw_real = [g.detach() for g in class_gradient(net, xr, c, create_graph=False)]
        total = total + match_distance(class_gradient(net, xs, c, create_graph), gw_real, metric)
    return total


@torch.no_grad()
def freeze_batchnorm(net: nn.Module, real: list[torch.Tensor], generator: torch.Generator) -> None:
    """Set BatchNorm running statistics from 16 real images per class, then switch BN to eval.

    A synthetic class batch (down to one image) is too small for batch statistics; the reference
    fixes them with a real batch before every matching step.
    """
    picks = [x[torch.randperm(len(x), generator=generator)[:BN_REAL_PER_CLASS].to(x.device)] for x in real]
    net.train()
    net(torch.cat(picks))
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


@dataclass
class GradientMatchingState(LoopState):
    ctx: DistillContext
    real: list[torch.Tensor]
    syn: torch.Tensor
    labels: torch.Tensor
    opt: torch.optim.Optimizer
    g: torch.Generator
    strategy: str
    outer_loop: int
    inner_loop: int

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"syn": self.syn}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def generators(self) -> dict[str, torch.Generator]:
        return {"g": self.g}


class GradientMatching(IterativeMethod):
    """Shared DC/DSA loop; subclasses choose `siamese_dsa` and their Params (the init default)."""

    siamese_dsa: ClassVar[bool]

    def init(self, ctx: DistillContext) -> GradientMatchingState:
        p: DCParams = self.params
        g = ctx.generator()
        real = ctx.real_per_class()
        default_outer, default_inner = loops(ctx.ipc)
        syn = initial_images(real, ctx.ipc, p.init, g)
        return GradientMatchingState(ctx, real, syn, class_labels(len(real), ctx.ipc).to(ctx.device),
                                     torch.optim.SGD([syn], lr=p.lr_img, momentum=p.momentum_img), g,
                                     ctx.dsa_strategy if self.siamese_dsa else "none",
                                     p.outer_loop if p.outer_loop is not None else default_outer,
                                     p.inner_loop if p.inner_loop is not None else default_inner)

    def step(self, s: GradientMatchingState, iteration: int) -> float:
        """One fresh network: `outer_loop` matching steps on the images, the network trained between them."""
        p: DCParams = self.params
        ctx, g = s.ctx, s.g
        net = seeded(int(torch.randint(2**31 - 1, (1,), generator=g)), ctx.make_net).to(ctx.device)
        net.train()
        opt_net = torch.optim.SGD(net.parameters(), lr=p.lr_net)
        batchnorm = has_batchnorm(net)
        loss_sum = 0.0
        for ol in range(s.outer_loop):
            if batchnorm:
                freeze_batchnorm(net, s.real, g)
            xr, xs = self._batches(s.real, s.syn, ctx.ipc, s.strategy, g)
            loss = matching_loss(net, xr, xs, p.dis_metric)
            s.opt.zero_grad(set_to_none=True)
            loss.backward(inputs=[s.syn])
            s.opt.step()
            loss_sum += loss.item()
            if ol == s.outer_loop - 1:
                break
            x_train = s.syn.detach()
            for _ in range(s.inner_loop):
                train_epoch(net, x_train, s.labels, opt_net, batch_size=p.batch_train, generator=g,
                            dsa_strategy=s.strategy)
        return loss_sum / (len(s.real) * s.outer_loop)

    def finish(self, s: GradientMatchingState) -> SyntheticSet:
        return SyntheticSet(s.syn.detach().cpu(), s.labels.cpu())

    def _batches(self, real: list[torch.Tensor], syn: torch.Tensor, ipc: int, strategy: str,
                 g: torch.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per class: `batch_real` random real images and the class's synthetic images, both
        augmented with one shared (siamese) DSA draw unless `strategy` is 'none'."""
        xr, xs = [], []
        for c, xc in enumerate(real):
            real_c = xc[to_device(torch.randperm(len(xc), generator=g)[:self.params.batch_real], xc.device)]
            syn_c = syn[c * ipc:(c + 1) * ipc]
            if strategy != "none":
                seed = int(torch.randint(2**31 - 1, (1,), generator=g))
                real_c = dsa(real_c, strategy, siamese_generator(seed), siamese=True)
                syn_c = dsa(syn_c, strategy, siamese_generator(seed), siamese=True)
            xr.append(real_c)
            xs.append(syn_c)
        return xr, xs


class DC(specs.DC, GradientMatching):
    siamese_dsa = False


class DSA(specs.DSA, GradientMatching):
    siamese_dsa = True
