"""Two example methods that live outside bench, one of each shape.

`GroupMeans` is computed in one go: each class's real images are split at random into IPC groups,
and each synthetic image is the mean of one group. It shows what every plugin needs: a name, a
one-line description, typed parameters, and `distill` returning a `SyntheticSet`.

`ProjectedMeans` improves its images over iterations: each iteration draws random directions and
moves each class's synthetic images so that their mean matches a random real batch's mean along
them. It gives only its maths (`init`, `step`, `finish`) and declares its state; the harness runs
the loop, so the method is checkpointed, resumed after a kill and shows progress without a line
of code for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.methods import DistillContext, IterativeMethod, LoopState, Method, Params, SyntheticSet
from bench.methods.base import class_labels, initial_images


class GroupMeansParams(Params):
    # Fraction of each class used (1.0 = all images); shows how parameters are declared and validated.
    fraction: float = 1.0


class GroupMeans(Method):
    name = "group-means"
    description = "Each synthetic image is the mean of a random group of real images of its class (example plugin)."
    uses_network = False
    Params = GroupMeansParams

    def distill(self, ctx: DistillContext) -> SyntheticSet:
        g = ctx.generator()
        images = []
        for real in ctx.real_per_class():
            keep = max(ctx.ipc, int(len(real) * self.params.fraction))
            order = torch.randperm(len(real), generator=g)[:keep].to(real.device)
            images += [group.mean(0) for group in real[order].tensor_split(ctx.ipc)]
        return SyntheticSet(torch.stack(images).cpu(), class_labels(len(images) // ctx.ipc, ctx.ipc))


class ProjectedMeansParams(Params):
    iterations: int = 200
    lr: float = 0.5
    momentum: float = 0.5
    batch_real: int = 64
    directions: int = 16  # random orthonormal directions drawn per iteration (at most C x H x W)


@dataclass
class ProjectedMeansState(LoopState):
    """What the loop carries; the three methods below are all a resumed run needs."""

    ipc: int
    real: list[torch.Tensor]
    images: torch.Tensor
    opt: torch.optim.Optimizer
    generator: torch.Generator

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"images": self.images}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt": self.opt}

    def generators(self) -> dict[str, torch.Generator]:
        return {"generator": self.generator}


class ProjectedMeans(IterativeMethod):
    name = "projected-means"
    description = "Class means matched to real batch means along random directions (example iterative plugin)."
    uses_network = False
    Params = ProjectedMeansParams

    def init(self, ctx: DistillContext) -> ProjectedMeansState:
        g = ctx.generator()
        real = ctx.real_per_class()
        images = initial_images(real, ctx.ipc, "noise", g)
        opt = torch.optim.SGD([images], lr=self.params.lr, momentum=self.params.momentum)
        return ProjectedMeansState(ctx.ipc, real, images, opt, g)

    def step(self, s: ProjectedMeansState, iteration: int) -> torch.Tensor:
        p: ProjectedMeansParams = self.params
        dims = s.images[0].numel()
        # Orthonormal directions: each step moves a class mean at most all the way to the batch mean.
        directions = torch.linalg.qr(torch.randn((dims, p.directions), generator=s.generator)).Q.to(s.images.device)
        loss = s.images.new_zeros(())
        for c, real in enumerate(s.real):
            batch = real[torch.randperm(len(real), generator=s.generator)[:p.batch_real].to(real.device)]
            syn = s.images[c * s.ipc:(c + 1) * s.ipc]
            loss = loss + (((batch.flatten(1).mean(0) - syn.flatten(1).mean(0)) @ directions) ** 2).sum()
        s.opt.zero_grad(set_to_none=True)
        loss.backward()
        s.opt.step()
        return loss

    def finish(self, s: ProjectedMeansState) -> SyntheticSet:
        return SyntheticSet(s.images.detach().cpu(), class_labels(len(s.real), s.ipc))
