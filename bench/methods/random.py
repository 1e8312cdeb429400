"""`random`: the coreset baseline that keeps IPC real images per class, chosen uniformly."""

from __future__ import annotations

from bench.methods import specs
from bench.methods.base import DistillContext, Method, SyntheticSet, class_labels, sample_per_class


class Random(specs.Random, Method):
    def distill(self, ctx: DistillContext) -> SyntheticSet:
        images = sample_per_class(ctx.real_per_class(), ctx.ipc, ctx.generator())
        return SyntheticSet(images.cpu(), class_labels(ctx.dataset.spec.num_classes, ctx.ipc))
