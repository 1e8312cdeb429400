"""The "Whole Dataset" row, measured: an evaluation architecture trained on the full training set with a
suite's evaluation recipe and seed, through the same loop as every synthetic set.

The plan makes it a stage like any other (`bench.plan.whole_spec`), cached by content: one result per
data set x architecture x recipe x seed, computed once and shared by every suite that asks for it.
"""

from __future__ import annotations

import torch

from bench.experts import ExpertContext
from bench.recipes import EvalRecipe
from bench.train import evaluate_synset


def train_whole_dataset(ctx: ExpertContext) -> dict[str, torch.Tensor]:
    """Final-epoch test accuracy (%) of `spec.arch` trained from `seed` on every training image."""
    recipe = EvalRecipe(**ctx.spec.params["recipe"])
    d = ctx.dataset
    acc = evaluate_synset(ctx.make_net, d.x_train, d.y_train, d.x_test, d.y_test, recipe,
                          seed=ctx.spec.params["seed"], dsa_strategy=ctx.dsa_strategy, device=ctx.device,
                          progress=ctx.progress)
    return {"accuracy": torch.tensor(acc, dtype=torch.float64)}
