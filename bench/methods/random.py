"""`random`: the coreset baseline that keeps IPC real images per class, chosen uniformly."""

from __future__ import annotations

from bench.methods.base import DistillContext, Method, SyntheticSet, class_labels, sample_per_class
from bench.methods.registry import register


@register
class Random(Method):
    name = "random"
    group = "coreset"
    description = "Random real images per class (coreset baseline)."
    uses_network = False

    def distill(self, ctx: DistillContext) -> SyntheticSet:
        images = sample_per_class(ctx.real_per_class(), ctx.ipc, ctx.generator())
        return SyntheticSet(images.cpu(), class_labels(ctx.dataset.spec.num_classes, ctx.ipc))
