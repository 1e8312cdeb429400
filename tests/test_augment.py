"""DSA: per-op math, siamese batch-mode sharing, per-sample randomness, mode 'S', gradients."""

import math

import pytest
import torch

from bench.augment import (
    FAMILIES,
    DSAParams,
    apply_family,
    apply_per_sample,
    applied,
    color,
    crop,
    cutout,
    draw,
    dsa,
    flip,
    per_sample,
    pick_family,
    rotate,
    sample_params,
    scale,
    siamese_generator,
)

from bench.train import idc_parts

FULL = "color_crop_cutout_flip_scale_rotate"


def images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def replay(family: str, shape: torch.Size, seed: int, params: DSAParams = DSAParams()) -> dict[str, torch.Tensor]:
    """The parameters dsa(strategy=family) draws from siamese_generator(seed)."""
    g = siamese_generator(seed)
    assert pick_family(family, g) == family
    return sample_params(family, shape, g, params)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_op_keeps_shape_and_dtype(family: str) -> None:
    x = torch.randn(5, 3, 28, 20)
    y = dsa(x, family, siamese_generator(1))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert not torch.equal(y, x)


def test_none_strategy_is_identity() -> None:
    x = images(4)
    g = siamese_generator(0)
    assert dsa(x, "none", g) is x and dsa(x, "", g) is x


def test_unknown_op_rejected() -> None:
    with pytest.raises(ValueError, match="blur"):
        dsa(images(2), "crop_blur", siamese_generator(0))


def test_color_matches_hand_computation() -> None:
    x = images(6)
    p = DSAParams()
    d = replay("color", x.shape, seed=3, params=p)
    y = dsa(x, "color", siamese_generator(3), p)

    u_b = d["brightness"] / p.brightness + 0.5
    u_s = d["saturation"] / p.saturation
    u_c = d["contrast"] - p.contrast
    for u in (u_b, u_s, u_c):
        assert ((u >= 0) & (u < 1)).all()
    for i in range(x.shape[0]):
        xi = x[i] + (u_b[i] - 0.5) * p.brightness
        m = xi.mean(dim=0, keepdim=True)
        xi = (xi - m) * (u_s[i] * p.saturation) + m
        m = xi.mean()
        xi = (xi - m) * (u_c[i] + p.contrast) + m
        torch.testing.assert_close(y[i], xi)


def test_color_with_neutral_factors_is_identity() -> None:
    x = images(3)
    ones, zeros = torch.ones(3), torch.zeros(3)
    torch.testing.assert_close(color(x, zeros, ones, ones), x)


def test_crop_shift_moves_pixels_and_exposes_zero_border() -> None:
    x = torch.arange(1.0, 26.0).view(1, 1, 5, 5)
    one, zero = torch.tensor([1]), torch.tensor([0])
    down = crop(x, one, zero)  # out[i, j] = x[i + 1, j]
    torch.testing.assert_close(down[0, 0, :4], x[0, 0, 1:])
    assert (down[0, 0, 4] == 0).all()
    right = crop(x, zero, -one)  # out[i, j] = x[i, j - 1]
    torch.testing.assert_close(right[0, 0, :, 1:], x[0, 0, :, :4])
    assert (right[0, 0, :, 0] == 0).all()
    assert torch.equal(crop(x, zero, zero), x)
    far = crop(x, torch.tensor([-4]), torch.tensor([3]))
    assert (far[0, 0, :4] == 0).all() and (far[0, 0, :, 2:] == 0).all()
    assert far[0, 0, 4, 0] == x[0, 0, 0, 3] and far[0, 0, 4, 1] == x[0, 0, 0, 4]


@pytest.mark.parametrize(("size", "bound"), [(32, 4), (8, 1)])
def test_crop_shift_range(size: int, bound: int) -> None:
    d = replay("crop", torch.Size([400, 1, size, size]), seed=0)
    for shift in (d["shift_h"], d["shift_w"]):
        assert shift.min() == -bound and shift.max() == bound


def _reference_cutout_mask(size: int, ch: int, cw: int, side: int) -> torch.Tensor:
    """Independent oracle: the reference's clamped index scatter of a side x side box."""
    mask = torch.ones(size, size)
    for a in range(side):
        for b in range(side):
            r = min(max(ch + a - side // 2, 0), size - 1)
            c = min(max(cw + b - side // 2, 0), size - 1)
            mask[r, c] = 0
    return mask


def test_cutout_zeroes_square_of_half_side() -> None:
    x = torch.ones(1, 3, 32, 32)
    y = cutout(x, torch.tensor([16]), torch.tensor([10]))
    zeros = (y[0] == 0).all(dim=0)
    assert zeros.sum() == 16 * 16
    assert zeros[8:24, 2:18].all()
    assert (y[0][:, ~zeros] == 1).all()


@pytest.mark.parametrize("size", [7, 8, 32])
def test_cutout_matches_reference_clamped_scatter(size: int) -> None:
    side = int(size * 0.5 + 0.5)
    x = torch.ones(1, 1, size, size)
    for ch in range(size + 1 - side % 2):
        for cw in (0, size // 2, size - side % 2):
            y = cutout(x, torch.tensor([ch]), torch.tensor([cw]))
            assert torch.equal(y[0, 0], _reference_cutout_mask(size, ch, cw, side))


def test_cutout_centres_cover_reference_range() -> None:
    d = replay("cutout", torch.Size([600, 1, 32, 32]), seed=0)
    for c in (d["center_h"], d["center_w"]):
        assert c.min() == 0 and c.max() == 32  # randint(0, 32 + 1 - 16 % 2)


def test_flip() -> None:
    x = images(4)
    assert torch.equal(flip(x, torch.ones(4, dtype=torch.bool)), x.flip(3))
    mask = torch.tensor([True, False, True, False])
    y = flip(x, mask)
    assert torch.equal(y[mask], x[mask].flip(3)) and torch.equal(y[~mask], x[~mask])


@pytest.mark.parametrize("align_corners", [False, True])
def test_scale_and_rotate_identity(align_corners: bool) -> None:
    x = images(3, size=16)
    torch.testing.assert_close(scale(x, torch.ones(3), torch.ones(3), align_corners), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(rotate(x, torch.zeros(3), align_corners), x, atol=1e-5, rtol=0)


def test_rotate_90_is_anticlockwise_rot90() -> None:
    x = images(2, size=9)
    y = rotate(x, torch.full((2,), math.pi / 2), align_corners=True)
    torch.testing.assert_close(y, torch.rot90(x, 1, (2, 3)), atol=1e-4, rtol=0)


def test_scale_below_one_zooms_in_around_centre() -> None:
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    y = scale(x, torch.tensor([0.5]), torch.tensor([0.5]), align_corners=True)  # 2x zoom in
    assert y[0, 0, 4, 4] == 1.0 and y[0, 0, 3:6, 3:6].sum() > 1.0


def test_scale_and_rotate_ranges() -> None:
    p = DSAParams()
    d = replay("scale", torch.Size([300, 1, 8, 8]), seed=0)
    for s in (d["sx"], d["sy"]):
        assert s.min() >= 1 / p.ratio_scale and s.max() <= p.ratio_scale
        assert s.min() < 0.9 and s.max() > 1.1
    a = replay("rotate", torch.Size([300, 1, 8, 8]), seed=0)["angle"] * 180 / math.pi
    assert a.abs().max() <= 15.0 and a.min() < -12 and a.max() > 12


@pytest.mark.parametrize("align_corners", [False, True])
def test_align_corners_param_reaches_grid_sample(align_corners: bool) -> None:
    x = images(3, size=8)
    p = DSAParams(align_corners=align_corners)
    d = replay("rotate", x.shape, seed=2, params=p)
    torch.testing.assert_close(dsa(x, "rotate", siamese_generator(2), p), rotate(x, d["angle"], align_corners))


@pytest.mark.parametrize("family", FAMILIES)
def test_siamese_draw_is_shared_by_every_sample(family: str) -> None:
    drawn = sample_params(family, torch.Size([50, 3, 32, 32]), siamese_generator(5), DSAParams(), siamese=True)
    for values in drawn.values():
        assert len(values) == 50 and (values == values[0]).all()


@pytest.mark.parametrize("strategy", [*FAMILIES, FULL])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_siamese_same_seed_same_transform_for_real_and_synthetic(strategy: str, seed: int) -> None:
    """Reference batch mode: a real batch of 100 and a synthetic batch of 3 get the same transform."""
    real = images(100, seed=seed)
    syn = real[[5, 50, 99]].clone()
    y_real = dsa(real, strategy, siamese_generator(seed), siamese=True)
    y_syn = dsa(syn, strategy, siamese_generator(seed), siamese=True)
    torch.testing.assert_close(y_real[[5, 50, 99]], y_syn, atol=1e-6, rtol=0)


def test_siamese_different_seeds_differ() -> None:
    x = images(16)
    for strategy in [*FAMILIES, FULL]:
        a = dsa(x, strategy, siamese_generator(0), siamese=True)
        assert not torch.allclose(a, dsa(x, strategy, siamese_generator(1), siamese=True))


@pytest.mark.parametrize("family", ["scale", "rotate", "crop", "cutout", "color"])
def test_evaluation_params_differ_across_samples(family: str) -> None:
    x = images(1).expand(8, -1, -1, -1).contiguous()
    y = dsa(x, family, siamese_generator(0))
    assert len({tuple(yi.flatten().tolist()) for yi in y}) > 1


def test_mode_s_picks_every_family_and_applies_exactly_one() -> None:
    x, p = images(4, size=12), DSAParams()
    g_dsa, g_replay = siamese_generator(11), siamese_generator(11)
    picked = []
    for _ in range(60):
        y = dsa(x, FULL, g_dsa, p)
        family = pick_family(FULL, g_replay)
        assert family is not None
        expected = apply_family(family, x, sample_params(family, x.shape, g_replay, p), p)
        assert torch.equal(y, expected)
        picked.append(family)
    assert set(picked) == set(FAMILIES)


def test_mnist_strategy_never_flips() -> None:
    g = siamese_generator(0)
    assert {pick_family("color_crop_cutout_scale_rotate", g) for _ in range(200)} == set(FAMILIES) - {"flip"}


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_flows_to_input(family: str) -> None:
    x = images(4, size=16).requires_grad_(True)
    dsa(x, family, siamese_generator(0)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_global_rng_untouched() -> None:
    state = torch.get_rng_state()
    for _ in range(20):
        dsa(images(4), FULL, siamese_generator(0))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("strategy", [FULL, "color_crop_cutout_scale_rotate", "crop_flip"])
@pytest.mark.parametrize("mode", ["single", "idc"])
def test_per_sample_augments_each_batch_as_its_own_draws_do(strategy: str, mode: str) -> None:
    """K batches through one fixed sequence of operations (`apply_per_sample`) come out as each batch through its
    own draws one after another (`applied`), bit for bit, whichever families the draws picked."""
    x, g = images(4 * 6, size=12, seed=3), siamese_generator(2)
    parts = [strategy] if mode == "single" else idc_parts(strategy)
    families = set(strategy.split("_"))
    for _ in range(25):
        draws = [[draw(part, x[:6].shape, g) for part in parts] for _ in range(4)]
        expected = []
        for k, batch_draws in enumerate(draws):
            batch = x[6 * k:6 * (k + 1)]
            for drawn in batch_draws:
                batch = applied(batch, drawn)
            expected.append(batch)
        together = apply_per_sample(x, per_sample(draws, 6), families)
        assert torch.equal(together, torch.cat(expected))
        drawn = {family for batch_draws in draws for family, _ in batch_draws}  # the stages no image drew: skipped
        assert torch.equal(apply_per_sample(x, per_sample(draws, 6), drawn), together)
