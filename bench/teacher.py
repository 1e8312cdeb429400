"""The teacher of the `labels: teacher` regime (SRe2L/RDED-style relabelling): a network trained on the full
training set, stored as an expert stage, that relabels each augmented batch an evaluation network trains on.

The plan declares one stage per data set x teacher architecture x recipe (`bench.plan.teacher_spec`), cached by
content like every expert, so each cell, seed and suite with the same teacher shares it. It is trained by the one
training function (`train_fresh`) with the evaluation's own protocol under hard labels, as the Whole Dataset row
is, for the recipe's `teacher_epochs`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from bench.experts import TEACHER_KIND, ExpertContext, register_expert
from bench.recipes import EvalRecipe
from bench.train import accuracy, train_fresh

STATE = "state."  # prefix of the network's state_dict entries among the stage's tensors


@register_expert(TEACHER_KIND)
def train_teacher(ctx: ExpertContext) -> dict[str, torch.Tensor]:
    """The teacher's parameters and buffers, and its test accuracy (%), which the stage keeps for the record."""
    recipe, d = EvalRecipe(**ctx.spec.params["recipe"]), ctx.dataset
    net = train_fresh(ctx.make_net, d.x_train, d.y_train, recipe, seed=ctx.spec.params["seed"],
                      dsa_strategy=ctx.dsa_strategy, device=ctx.device, progress=ctx.progress)
    acc = accuracy(net, d.x_test.to(ctx.device), d.y_test.to(ctx.device), recipe.test_batch_size)
    return {**{STATE + k: v.detach() for k, v in net.state_dict().items()},
            "test_accuracy": torch.tensor(acc, dtype=torch.float64)}


def load_teacher(net: nn.Module, tensors: dict[str, torch.Tensor]) -> nn.Module:
    """`net` (a fresh network of the teacher's architecture) with the stage's stored parameters, in eval mode."""
    net.load_state_dict({k[len(STATE):]: v for k, v in tensors.items() if k.startswith(STATE)})
    return net.eval()
