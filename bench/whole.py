"""The "Whole Dataset" row, measured: an expert stage that trains an evaluation architecture on the full
training set with a suite's evaluation recipe and seed, through the same loop as every synthetic set.

It is an expert stage (not a typed-in constant) so it is cached by content like any other: one artifact
per data set x architecture x recipe x seed, computed once and shared by every suite that asks for it.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from bench.experts import ExpertContext, ExpertSpec, register_expert
from bench.recipes import PRESETS, EvalRecipe
from bench.train import evaluate_synset

KIND = "whole_dataset"


def whole_recipe(recipe: EvalRecipe) -> EvalRecipe:
    """The recipe the full training set is trained with: the method's own, except that a learned lr
    (MTT's, stored with its synthetic set) does not exist for real data, so the standard preset's lr is used."""
    return replace(recipe, lr=PRESETS["standard"].lr) if recipe.lr == "learned" else recipe


def whole_spec(dataset: str, arch: str, recipe: EvalRecipe, seed: int) -> ExpertSpec:
    return ExpertSpec(KIND, dataset, arch, params={"recipe": whole_recipe(recipe).as_dict(), "seed": seed})


@register_expert(KIND)
def train_whole_dataset(ctx: ExpertContext) -> dict[str, torch.Tensor]:
    """Final-epoch test accuracy (%) of `spec.arch` trained from `seed` on every training image."""
    recipe = EvalRecipe(**ctx.spec.params["recipe"])
    d = ctx.dataset
    acc = evaluate_synset(ctx.make_net, d.x_train, d.y_train, d.x_test, d.y_test, recipe,
                          seed=ctx.spec.params["seed"], dsa_strategy=ctx.dsa_strategy, device=ctx.device,
                          progress=ctx.progress)
    return {"accuracy": torch.tensor(acc, dtype=torch.float64)}
