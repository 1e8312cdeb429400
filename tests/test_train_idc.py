"""The `idc` evaluation preset: MultiStepLR schedule, exactly `epochs` passes, IDC's DiffAug and CutMix;
and the existing presets' identities (hashes of stored records) left unchanged by the new fields."""

from __future__ import annotations

import pytest
import torch

from bench import augment, train
from bench.plan import content_key
from bench.recipes import PRESETS, EvalRecipe
from bench.train import draw_cutmix, fit, idc_dsa, without_cutout

OLD_FIELDS = {"epochs", "lr", "momentum", "weight_decay", "batch_size", "decay_factor", "augment", "test_batch_size"}


def test_existing_presets_keep_their_identity() -> None:
    # Hashes computed with bench/train.py before the IDC fields existed: stored records stay valid.
    assert PRESETS["standard"].as_dict() == {"epochs": 1000, "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4,
                                             "batch_size": 256, "decay_factor": 0.1, "augment": "dsa",
                                             "test_batch_size": 256}
    expected = {"standard": "d626e2b298a3f96cc4dc", "mtt": "f8f98a8f7796f828ed3e", "dc": "ae03822344b9da30aa99"}
    assert {name: content_key(PRESETS[name].as_dict()) for name in expected} == expected
    assert set(EvalRecipe(epochs=300).with_overrides({"cutmix_prob": 0.0}).as_dict()) == OLD_FIELDS
    assert EvalRecipe(cutmix_prob=0.5).as_dict()["cutmix_prob"] == 0.5


def test_idc_preset_values_and_decay_epochs() -> None:
    r = PRESETS["idc"]
    assert (r.epochs, r.lr, r.momentum, r.weight_decay, r.batch_size, r.decay_factor) == (1000, 0.01, 0.9, 5e-4, 64,
                                                                                          0.2)
    assert (r.dsa_mode, r.cutmix_prob, r.cutmix_beta, r.passes) == ("idc", 0.5, 1.0, 1000)
    # MultiStepLR milestones [2E//3, 5E//6]: the decayed lr applies from pass 667 (1-based) on.
    assert r.decay_epochs == (665, 832)
    assert r.with_overrides({"epochs": 300}).decay_epochs == (199, 249)  # 2*300//3 = 200 despite float 2/3
    assert PRESETS["standard"].decay_epochs == (501,) and PRESETS["standard"].passes == 1001
    # A suite's YAML list becomes a tuple (hashable recipe); fractions outside (0, 1] are refused.
    assert hash(r.with_overrides({"decay_at": [0.5]})) and r.with_overrides({"decay_at": [0.5]}).decay_at == (0.5,)
    with pytest.raises(ValueError):
        EvalRecipe(decay_at=(1.5,))


def test_idc_schedule_decays_in_place_at_two_thirds_and_five_sixths(monkeypatch) -> None:
    """12 epochs: exactly 12 passes, lr 0.01 for 8, x0.2 for 2, x0.04 for 2; one optimiser throughout."""
    created, steps = [], []
    real_sgd = torch.optim.SGD

    class SpySGD(real_sgd):
        def __init__(self, params, **kw):
            super().__init__(params, **kw)
            created.append(kw)

        def step(self, closure=None):
            steps.append(self.param_groups[0]["lr"])
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "SGD", SpySGD)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    x, y = torch.randn(10, 1, 2, 2), torch.tensor([0, 1] * 5)
    recipe = PRESETS["idc"].with_overrides({"epochs": 12, "batch_size": 4, "augment": "none"})
    fit(net, x, y, recipe, dsa_strategy="none", generator=torch.Generator().manual_seed(0))
    assert created == [dict(lr=0.01, momentum=0.9, weight_decay=5e-4)]
    assert len(steps) == 12 * 3
    assert steps[:24] == pytest.approx([0.01] * 24)
    assert steps[24:30] == pytest.approx([0.002] * 6) and steps[30:] == pytest.approx([0.0004] * 6)


def test_cutmix_pastes_one_box_from_the_shuffled_batch() -> None:
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 8, 8).clone()  # image i is constant i
    y = torch.arange(4)
    mix = draw_cutmix(4, 8, 8, 1.0, torch.Generator().manual_seed(3))
    mixed, partner = train.mixed(x, y, mix)
    keep = mix.keep
    assert torch.equal(x, torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 8, 8))  # input untouched
    for i in range(4):
        pasted = mixed[i, 0] != i
        if int(partner[i]) != i:
            assert keep == pytest.approx(1 - pasted.float().mean().item())
            assert (mixed[i, 0][pasted] == float(partner[i])).all()
            rows, cols = pasted.any(1).nonzero().flatten(), pasted.any(0).nonzero().flatten()
            assert pasted.sum() == len(rows) * len(cols)  # one rectangle
    assert sorted(partner.tolist()) == [0, 1, 2, 3]
    again = draw_cutmix(4, 8, 8, 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(train.mixed(x, y, again)[0], mixed) and again.keep == keep


def test_idc_dsa_always_applies_flip_colour_cutout_around_one_drawn_op(monkeypatch) -> None:
    calls = []
    real_dsa = augment.dsa

    def spy(x, strategy, generator, params=augment.DSAParams(), siamese=False):
        calls.append(strategy)
        return real_dsa(x, strategy, generator, params, siamese)

    monkeypatch.setattr(train, "dsa", spy)
    x = torch.randn(3, 3, 8, 8)
    idc_dsa(x, "color_crop_cutout_flip_scale_rotate", torch.Generator().manual_seed(0))
    assert calls == ["flip", "color", "crop_scale_rotate", "cutout"]
    calls.clear()
    g1, g2 = augment.siamese_generator(5), augment.siamese_generator(5)
    a = idc_dsa(x, "color_crop_cutout", g1, siamese=True)
    b = idc_dsa(x[:1], "color_crop_cutout", g2, siamese=True)
    assert calls == ["color", "crop", "cutout"] * 2 and torch.allclose(a[:1], b)
    assert without_cutout("color_crop_cutout_scale_rotate") == "color_crop_scale_rotate"
    assert without_cutout("cutout") == "none"


def test_fit_with_the_idc_preset_drops_cutout_and_is_seeded(monkeypatch) -> None:
    calls = []
    real_draw = augment.draw

    def spy(strategy, shape, generator, params=augment.DSAParams(), siamese=False):
        calls.append(strategy)
        return real_draw(strategy, shape, generator, params, siamese)

    monkeypatch.setattr(train, "draw", spy)
    x, y = torch.randn(20, 1, 8, 8), torch.arange(10).repeat(2)
    recipe = PRESETS["idc"].with_overrides({"epochs": 3})

    def run() -> torch.Tensor:
        net = train.seeded(0, lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)))
        fit(net, x, y, recipe, dsa_strategy="color_crop_cutout_scale_rotate",
            generator=torch.Generator().manual_seed(1))
        return net[1].weight.detach().clone()

    first = run()
    assert calls and "cutout" not in calls and set(calls) == {"color", "crop_scale_rotate"}
    assert torch.equal(first, run())
