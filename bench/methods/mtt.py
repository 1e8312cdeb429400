"""`mtt`: Matching Training Trajectories (Cazenavette et al., CVPR 2022), as in mtt-distillation.

Two stages. The experts stage (`buffer.py`) trains networks on the full real training set and
records every parameter after every epoch; it is cached and shared by every MTT-family cell of
the same data set, architecture and expert settings. It is stored one file per expert and read an
expert at a time (`bench.store.Parts`): the stage is 100 experts x 51 snapshots of a ConvNet, 10 GB
for CIFAR-100, and an iteration needs two snapshots of one expert. Distillation (`distill.py`) starts
a student at an expert's epoch t0, takes `syn_steps` differentiable SGD steps on the synthetic set
with a learnable lr alpha, and pulls the end point towards the expert's epoch t0 + `expert_epochs`:

    loss = ||theta_N - theta*||^2 / ||theta_0 - theta*||^2

The images and alpha both follow the gradient of that loss; alpha is stored with the set because
evaluation trains with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from bench.augment import dsa, to_device
from bench.experts import ExpertContext, register_expert
from bench.methods import specs
from bench.methods.base import DistillContext, SyntheticSet, class_labels, initial_images
from bench.methods.loop import IterativeMethod, LoopState
from bench.methods.specs import MTTParams
from bench.store import Parts
from bench.train import accuracy, constant_lr, part_progress, seeded, train_fresh

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""forward(x, flat_params) -> logits: a network evaluated at a flat parameter vector."""
Trajectories = torch.Tensor | Parts
"""(experts, snapshots, P): from the store, `Parts` (an expert read when indexed), or a tensor (a stage
stored whole by a bench before `Parts`, or built in memory)."""


def flatten_params(net: nn.Module) -> torch.Tensor:
    """All parameters in `net.parameters()` order, as one float32 vector (the buffer layout)."""
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]).float()


@register_expert("trajectories", parts=("trajectories",))
def build_trajectories(ctx: ExpertContext) -> dict[str, torch.Tensor]:
    """Train `num_experts` fresh networks with plain SGD and record parameters at every epoch.

    Expert e is initialised and shuffled/augmented from seed `seed + e`, so the stage is
    deterministic. Returns `trajectories` (num_experts, train_epochs + 1, P) with snapshot 0 the
    initialisation, and `test_accuracy` (num_experts,) after the last epoch, to check the experts.
    """
    p = ctx.spec.params
    x, y = ctx.dataset.x_train.to(ctx.device), ctx.dataset.y_train.to(ctx.device)
    num = p["num_experts"]
    recipe = constant_lr(p["train_epochs"], p["lr_teacher"], 0.0, 0.0, p["batch_train"],
                         "dsa" if p["dsa"] else "none")
    trajectories, accuracies = [], []
    for e in range(num):
        seed = p["seed"] + e
        snapshots = [flatten_params(seeded(seed, ctx.make_net)).cpu()]  # the initialisation train_fresh starts from
        net = train_fresh(ctx.make_net, x, y, recipe, seed=seed, dsa_strategy=ctx.dsa_strategy, device=ctx.device,
                          generator=torch.Generator().manual_seed(seed),
                          progress=part_progress(ctx.progress, e, num, "expert"),
                          on_epoch=lambda net, epoch, loss: snapshots.append(flatten_params(net).cpu()))
        trajectories.append(torch.stack(snapshots))
        accuracies.append(accuracy(net, ctx.dataset.x_test.to(ctx.device), ctx.dataset.y_test.to(ctx.device)))
    return {"trajectories": torch.stack(trajectories), "test_accuracy": torch.tensor(accuracies)}


def flat_forward(net: nn.Module) -> Forward:
    """`net` as a function of one flat parameter vector (the reference's ReparamModule)."""
    names = [name for name, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]

    def forward(x: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        params = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        return functional_call(net, params, (x,))

    return forward


def trajectory_student(ctx: DistillContext, max_start_epoch: int, expert_epochs: int,
                       ) -> tuple[Trajectories, torch.Generator, Forward]:
    """What every trajectory-matching method starts from: the experts' trajectories (checked against
    the start epochs it will sample), the seeded generator, and the student network as a function of
    its flat parameters (its init drawn first from the generator)."""
    trajectories = ctx.experts["trajectories"]["trajectories"]
    if max_start_epoch - 1 + expert_epochs > trajectories.shape[1] - 1:
        raise ValueError(f"max_start_epoch {max_start_epoch} + expert_epochs {expert_epochs} - 1 "
                         f"exceeds the {trajectories.shape[1] - 1} recorded expert epochs")
    g = ctx.generator()
    net = seeded(int(torch.randint(2**31 - 1, (1,), generator=g)), ctx.make_net).to(ctx.device)
    net.train()
    if sum(q.numel() for q in net.parameters()) != trajectories.shape[2]:
        raise ValueError("expert trajectories do not match the distillation network's parameters")
    return trajectories, g, flat_forward(net)


class ExpertOrder:
    """State mixin of the trajectory-matching methods: the queue of experts still to visit this round
    (`next_segment`'s `order`, a field of the state), kept in the checkpoint as `extra`."""

    order: list[int]

    def extra(self) -> dict[str, torch.Tensor]:
        return {"order": torch.tensor(self.order, dtype=torch.long)}

    def load_extra(self, saved: dict[str, torch.Tensor]) -> None:
        self.order = saved["order"].tolist()


def next_segment(trajectories: Trajectories, order: list[int], max_start_epoch: int, expert_epochs: int,
                 generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The expert segment to match next, (start, target): every expert once per round in a fresh random
    order (`order` holds the round's rest and is consumed in place), from a random start epoch.

    Only this expert is read (from `Parts`: memory-mapped, whole the first time, to check it), and the
    two snapshots are copied out of it, so nothing holds on to the rest."""
    if not order:
        order.extend(torch.randperm(len(trajectories), generator=generator).tolist())
    expert = trajectories[order.pop()]
    t0 = int(torch.randint(max_start_epoch, (1,), generator=generator))
    return expert[t0].to(device, copy=True), expert[t0 + expert_epochs].to(device, copy=True)


def unroll_student(forward: Forward, start: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                   lr: torch.Tensor, *, syn_steps: int, batch_syn: int, dsa_strategy: str,
                   generator: torch.Generator) -> torch.Tensor:
    """The student's end point after `syn_steps` differentiable SGD steps from `start` on the synthetic set.

    Minibatches are consecutive chunks of a fresh permutation (a new one when used up), each
    augmented per sample (not siamese). The graph reaches `images` and `lr`.
    """
    theta = start.detach().clone().requires_grad_(True)
    chunks: list[torch.Tensor] = []
    for _ in range(syn_steps):
        if not chunks:
            chunks = list(torch.randperm(len(images), generator=generator).split(batch_syn))
        idx = to_device(chunks.pop(0), images.device)
        x = dsa(images[idx], dsa_strategy, generator)
        ce = F.cross_entropy(forward(x, theta), labels[idx])
        grad = torch.autograd.grad(ce, theta, create_graph=True)[0]
        theta = theta - lr * grad
    return theta


def matching_distance(theta: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||theta_N - theta*||^2 / ||theta_0 - theta*||^2: how far the student ends from the expert, relative."""
    return ((theta - target) ** 2).sum() / ((start - target) ** 2).sum()


def trajectory_matching_loss(forward: Forward, start: torch.Tensor, target: torch.Tensor,
                             images: torch.Tensor, labels: torch.Tensor, lr: torch.Tensor, *,
                             syn_steps: int, batch_syn: int, dsa_strategy: str,
                             generator: torch.Generator) -> torch.Tensor:
    """Unroll the student from `start` on the synthetic set; its normalised distance to `target`."""
    theta = unroll_student(forward, start, images, labels, lr, syn_steps=syn_steps, batch_syn=batch_syn,
                           dsa_strategy=dsa_strategy, generator=generator)
    return matching_distance(theta, start, target)


@dataclass
class MTTState(ExpertOrder, LoopState):
    ctx: DistillContext
    trajectories: Trajectories
    forward: Forward
    g: torch.Generator
    syn: torch.Tensor
    labels: torch.Tensor
    lr: torch.Tensor
    opt_img: torch.optim.Optimizer
    opt_lr: torch.optim.Optimizer
    strategy: str
    batch_syn: int
    order: list[int]  # the experts left in the current round of `next_segment`

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"syn": self.syn, "lr": self.lr}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"img": self.opt_img, "lr": self.opt_lr}

    def generators(self) -> dict[str, torch.Generator]:
        return {"g": self.g}


class MTT(specs.MTT, IterativeMethod):
    def init(self, ctx: DistillContext) -> MTTState:
        p: MTTParams = self.params
        trajectories, g, forward = trajectory_student(ctx, p.max_start_epoch, p.expert_epochs)
        real = ctx.real_per_class()
        syn = initial_images(real, ctx.ipc, p.init, g)
        labels = class_labels(len(real), ctx.ipc).to(ctx.device)
        lr = torch.tensor(p.lr_teacher, device=ctx.device, requires_grad=True)
        return MTTState(ctx, trajectories, forward, g, syn, labels, lr,
                        torch.optim.SGD([syn], lr=p.lr_img, momentum=p.momentum),
                        torch.optim.SGD([lr], lr=p.lr_lr, momentum=p.momentum),
                        ctx.dsa_strategy if p.dsa else "none", p.batch_syn or len(syn), [])

    def step(self, s: MTTState, iteration: int) -> dict[str, torch.Tensor]:
        """Match one expert segment; one step on the images and on the lr."""
        p: MTTParams = self.params
        start, target = next_segment(s.trajectories, s.order, p.max_start_epoch, p.expert_epochs, s.g,
                                     s.ctx.device)
        loss = trajectory_matching_loss(s.forward, start, target, s.syn, s.labels, s.lr, syn_steps=p.syn_steps,
                                        batch_syn=s.batch_syn, dsa_strategy=s.strategy, generator=s.g)
        s.opt_img.zero_grad(set_to_none=True)
        s.opt_lr.zero_grad(set_to_none=True)
        loss.backward()
        s.opt_img.step()
        s.opt_lr.step()
        return {"loss": loss, "lr": s.lr}

    def finish(self, s: MTTState) -> SyntheticSet:
        return SyntheticSet(s.syn.detach().cpu(), s.labels.cpu(), lr=s.lr.detach().cpu())
