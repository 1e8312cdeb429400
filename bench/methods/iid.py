"""`iid-dm` and `iid-idm`: IID (Deng et al., "Exploiting Inter-sample and Inter-feature Relations
in Dataset Distillation", CVPR 2024), as two terms added to DM's or IDM's loss:

    L = L_DM (or L_IDM) + lambda_cc * L_CC + lambda_cm * L_CM            (paper Eq. 8 and 9)

* Class centralization (Eq. 3-4, inter-sample), per class c over its K synthetic samples:
  L_CC = sum_j max(0, f(alpha * ||psi(s_j) - mean_j psi(s_j)||^2) - beta), f = exp (paper) or the
  identity (the reference code, whose comment says the linear form with beta 0 gives the same
  results). psi is a network pretrained on the real data (ResNet18 in the paper), drawn at random
  from a cached bank (expert stage `pretrained_bank`) for every pass over the classes, and applied
  to the same augmented synthetic images the base loss sees.
* Covariance matching (Eq. 5-7, inter-feature), per class: the feature map of the base method's
  matching network is read as d local descriptors of length hw (X_i in R^{d x hw}); the biased
  covariance Sigma = mean_i (X_i - mean X)(X_i - mean X)^T (d x d) of the real batch and of the
  synthetic images are matched, L_CM = ||Sigma_syn - Sigma_real||_F^2. The feature map is the one
  the base loss already computes (`FeatureTap`), so the matching network runs once.

Both terms are one `IIDLoss`, added to DM's or IDM's loss through their public hook
(`bench.methods.dm.ExtraLoss`). With both terms off, `iid-dm` is `dm` and `iid-idm` is `idm`, draw for
draw: IID's bank draws use a generator of their own, checkpointed with the base method's state. Unlike the reference DM+IID code,
which drops both terms for BatchNorm matching networks, the terms apply to every architecture whose
feature map is exposed (ConvNet variants, AlexNet, VGG11); bank networks run in eval mode.

Both terms need at least two synthetic samples per class: `iid-dm` is refused at IPC 1, as the
paper does ("does not provide IPC=1 results due to its requirement for a sample size greater
than 1"); `iid-idm` decodes 4 samples per stored image and runs at IPC 1 (`check_cell`).

Weights: the paper (Sec. 4.1) uses lambda_CC 0.05, lambda_CM 0.01 at IPC 1 and 10 and 0.003 / 0.01
at IPC 50; these are the presets (presets/iid.yaml) for both variants. The reference code hard-codes
0.05 / 0.01 in its DM variant but 0.01 / 0.03 in its IDM variant: pass {lambda_cc: 0.01,
lambda_cm: 0.03} to `iid-idm` to reproduce the code instead of the paper.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from bench import nets
from bench.experts import ExpertContext, register_expert
from bench.methods import specs
from bench.methods.base import DistillContext
from bench.methods.dm import DM, ExtraLoss
from bench.methods.idm import IDM
from bench.methods.specs import BANK, IIDTerms
from bench.nets.alexnet import AlexNet
from bench.nets.convnet import ConvNet
from bench.nets.vgg import VGG11
from bench.train import accuracy, constant_lr, part_progress, seeded, train_fresh

STATE_PREFIX = "state."  # a bank of a bench before `members`: "state.<state-dict key>" stacked over the bank
RESIDENT_BYTES = 1 << 30  # bank members kept on the device once read: the default bank (5 ResNet18s) is 225 MB
DRAWS_KEY = "iid_draws"  # IID's generator among the base method's checkpointed generators
DRAWS_STREAM = 1 << 32  # IID's generator is seeded with seed + this, a stream apart from the base method's
# Networks whose `embed` is `features(x).flatten(1)`: their feature map is what covariance matching reads.
MAP_NETS = (ConvNet, AlexNet, VGG11)


def centralization_loss(features: torch.Tensor, alpha: float, beta: float, exp_form: bool) -> torch.Tensor:
    """Eq. 3 for one class: sum_j max(0, f(alpha * ||features_j - mean||^2) - beta), f = exp or identity."""
    spread = alpha * ((features - features.mean(0)) ** 2).sum(1)
    return ((spread.exp() if exp_form else spread) - beta).clamp(min=0).sum()


def local_covariance(feature_map: torch.Tensor) -> torch.Tensor:
    """Eq. 6/7: (N, d, h, w) -> (d, d), mean_i (X_i - X_bar)(X_i - X_bar)^T with X_i the (d, hw) descriptors."""
    x = feature_map.flatten(2)
    centred = x - x.mean(0, keepdim=True)
    return (centred @ centred.transpose(1, 2)).mean(0)


def covariance_matching_loss(real_map: torch.Tensor, syn_map: torch.Tensor) -> torch.Tensor:
    """Eq. 5 for one class: ||Sigma_syn - Sigma_real||_F^2 (the real side carries no gradient)."""
    return ((local_covariance(real_map.detach()) - local_covariance(syn_map)) ** 2).sum()


class FeatureTap(nn.Module):
    """A matching network seen by the base method's own loss code, keeping the feature maps it computes.

    `embed` is exactly the network's (`features(x).flatten(1)`), so DM's and IDM's loss functions
    run unchanged and the covariance term reuses their forward pass. Maps of real batches carry no
    gradient and maps of synthetic batches do (the synthetic images are what is optimised), which is
    how `take` tells them apart whatever order or batching the base loss uses.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        if not isinstance(net, MAP_NETS):
            raise ValueError(f"covariance matching reads the feature map of the matching network, which "
                             f"{type(net).__name__} does not expose; distill with a ConvNet, AlexNet or VGG11 "
                             f"variant, or set `cm: false`.")
        self.net = net
        self.maps: list[torch.Tensor] = []

    @property
    def classifier(self) -> nn.Module:
        return self.net.classifier

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        feature_map = self.net.features(x)
        self.maps.append(feature_map)
        return feature_map.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))

    def take(self, real_sizes: list[int], syn_sizes: list[int]) -> tuple[tuple[torch.Tensor, ...],
                                                                        tuple[torch.Tensor, ...]]:
        """The maps recorded since the last call, as (per-class real maps, per-class synthetic maps)."""
        real = torch.cat([m for m in self.maps if not m.requires_grad]).split(real_sizes)
        syn = torch.cat([m for m in self.maps if m.requires_grad]).split(syn_sizes)
        self.maps = []
        return real, syn


class PretrainedBank:
    """The cached pretrained networks; one live module, loaded with the member drawn.

    A member is read from the stage when first drawn (one file per member, `bench.store.Parts`) and kept on
    the device while the members kept fit in `RESIDENT_BYTES`, so a draw of the default bank is a device copy;
    a larger bank reads a member that did not fit again at each of its draws, and never holds the stage."""

    def __init__(self, tensors: dict, build: Callable[[], nn.Module], device: torch.device):
        self.net = seeded(0, build).to(device).eval().requires_grad_(False)  # weights come from the bank
        if "members" in tensors:
            self.members = tensors["members"]
        else:  # a bank stored whole by a bench before `members`: flattened here as `flat_state` does
            names = self.net.state_dict().keys()
            self.members = torch.cat([tensors[STATE_PREFIX + k].flatten(1).float() for k in names], dim=1)
        self.size, self.device = len(tensors["accuracy"]), device
        self.resident: dict[int, torch.Tensor] = {}
        self.current: int | None = None

    def draw(self, generator: torch.Generator) -> nn.Module:
        member = int(torch.randint(self.size, (1,), generator=generator))
        if member != self.current:
            flat = self.resident.get(member)
            if flat is None:
                flat = self.members[member].to(self.device)
                if (len(self.resident) + 1) * flat.numel() * flat.element_size() <= RESIDENT_BYTES:
                    self.resident[member] = flat
            load_flat_state(self.net, flat)
            self.current = member
        return self.net


def flat_state(net: nn.Module) -> torch.Tensor:
    """A network's state dict (parameters and buffers, in its order) as one float32 vector: a bank member."""
    return torch.cat([v.detach().reshape(-1).float().cpu() for v in net.state_dict().values()])


def load_flat_state(net: nn.Module, flat: torch.Tensor) -> None:
    """Write a `flat_state` vector back into `net`'s parameters and buffers, in place."""
    targets = list(net.state_dict(keep_vars=True).values())
    with torch.no_grad():
        for target, values in zip(targets, flat.split([t.numel() for t in targets]), strict=True):
            target.copy_(values.view_as(target))


@register_expert(BANK, parts=("members",))
def build_bank(ctx: ExpertContext) -> dict[str, torch.Tensor]:
    """Train `size` networks of the bank architecture on all real training data (bench.train's loop).

    Returns `members` (size, P): each network's `flat_state`, stored one file per member; and
    `accuracy` (size,): each network's test accuracy in %, for the record.
    """
    p = ctx.spec.params
    ds = ctx.dataset
    x, y = ds.x_train.to(ctx.device), ds.y_train.to(ctx.device)
    generator = torch.Generator().manual_seed(p["seed"])  # one stream: each member's init seed, then its batches
    recipe = constant_lr(p["epochs"], p["lr"], p["momentum"], p["weight_decay"], p["batch_size"])
    members, accuracies = [], []
    for member in range(p["size"]):
        net = train_fresh(ctx.make_net, x, y, recipe, seed=int(torch.randint(2**31 - 1, (1,), generator=generator)),
                          dsa_strategy=ctx.dsa_strategy, device=ctx.device, generator=generator,
                          progress=part_progress(ctx.progress, member, p["size"], "net"))
        accuracies.append(accuracy(net, ds.x_test.to(ctx.device), ds.y_test.to(ctx.device)))
        members.append(flat_state(net))
    return {"members": torch.stack(members), "accuracy": torch.tensor(accuracies, dtype=torch.float32)}


class IIDLoss(ExtraLoss):
    """lambda_cc * L_CC + lambda_cm * L_CM, added to DM's or IDM's loss for every matching network.

    `watch` draws a bank network (one per pass over the classes, as the reference's per-iteration draw)
    and taps the matching network when the covariance term needs its feature maps.
    """

    def __init__(self, p: IIDTerms, ctx: DistillContext):
        spec = ctx.dataset.spec
        self.params = p
        self.bank = PretrainedBank(
            ctx.experts[BANK], lambda: nets.get_network(p.bank_arch, spec.channels, spec.num_classes,
                                                        spec.image_size), ctx.device) if p.cc else None
        self.draws = torch.Generator().manual_seed(ctx.seed + DRAWS_STREAM)
        self.bank_net: nn.Module | None = None

    def generators(self) -> dict[str, torch.Generator]:
        return {DRAWS_KEY: self.draws}

    def watch(self, net: nn.Module) -> nn.Module:
        if self.bank is not None:
            self.bank_net = self.bank.draw(self.draws)
        return FeatureTap(net) if self.params.cm else net

    def __call__(self, net: nn.Module, real: list[torch.Tensor], syn: list[torch.Tensor]) -> torch.Tensor:
        p = self.params
        total = syn[0].new_zeros(())
        if p.cm:
            real_maps, syn_maps = net.take([len(x) for x in real], [len(x) for x in syn])
            total = total + p.lambda_cm * sum(covariance_matching_loss(r, s) for r, s in zip(real_maps, syn_maps))
        if p.cc:
            features = self.bank_net.embed(torch.cat(syn)).split([len(x) for x in syn])
            total = total + p.lambda_cc * sum(centralization_loss(f, p.alpha, p.cc_beta, p.cc_exp)
                                              for f in features)
        return total


class _IID:
    """What `iid-dm` and `iid-idm` add to their base method's maths (listed before it in their bases):
    `IIDLoss` as the base method's extra loss, after refusing a cell it cannot run."""

    params: IIDTerms

    def extra_losses(self, ctx: DistillContext) -> list[ExtraLoss]:
        """IID's two terms, after refusing a cell they cannot run."""
        if (reason := self.check_cell(ctx.dataset.spec.name, ctx.ipc, self.params)) is not None:
            raise ValueError(reason)
        return [IIDLoss(self.params, ctx)]


class IIDDM(specs.IIDDM, _IID, DM):
    """DM's maths with IID's terms."""


class IIDIDM(specs.IIDIDM, _IID, IDM):
    """IDM's maths with IID's terms."""
