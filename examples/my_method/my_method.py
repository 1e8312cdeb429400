"""An example method that lives outside bench: class-wise group means.

Each class's real images are split at random into IPC groups, and each synthetic image is the
mean of one group. It is a simple, honest baseline, and it shows everything a plugin needs:
a name, a one-line description, typed parameters, and `distill` returning a `SyntheticSet`.
"""

from __future__ import annotations

import torch

from bench.methods import DistillContext, Method, Params, SyntheticSet
from bench.methods.base import class_labels


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
        ctx.progress(1, 1, "groups averaged")
        return SyntheticSet(torch.stack(images).cpu(), class_labels(len(images) // ctx.ipc, ctx.ipc))
