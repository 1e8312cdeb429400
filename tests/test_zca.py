"""ZCA whitening: the kornia formula, fitted on training images, applied to train and test alike, cached."""

from __future__ import annotations

import torch

from bench import data
from bench.data.zca import EPS, apply_zca, fit_zca, unnormalise, whiten
from bench.executors.tasks import DatasetCache


def test_fit_matches_the_formula_on_a_hand_sized_example() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 1.0], [0.0, 0.0], [2.0, 5.0]]).view(4, 1, 1, 2)
    mean, transform = fit_zca(x, eps=0.1)
    flat = x.view(4, 2).double()
    centred = flat - flat.mean(0)
    cov = centred.T @ centred / 3
    s, u = torch.linalg.eigh(cov)
    expected = u @ torch.diag(1 / torch.sqrt(s + 0.1)) @ u.T
    torch.testing.assert_close(transform.double(), expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(mean, torch.tensor([1.5, 2.0]))


def test_whitened_digits_have_near_identity_covariance_and_shared_transform() -> None:
    ds = data.load_dataset("digits", ".")
    white = whiten(ds)
    flat = white.x_train.view(len(white.x_train), -1).double()
    cov = torch.cov(flat.T)
    # With eps the eigenvalues become s / (s + eps) <= 1: strong directions ~1, none above 1.
    assert torch.linalg.eigvalsh(cov).max() <= 1.0 + 1e-6
    assert abs(flat.mean()) < 1e-6
    mean, transform = fit_zca(unnormalise(ds, ds.x_train))
    torch.testing.assert_close(white.x_test, apply_zca(unnormalise(ds, ds.x_test), mean, transform))


def test_dataset_cache_keeps_the_fit_on_disk(tmp_path) -> None:
    first = DatasetCache(tmp_path / "data", tmp_path / "cache")("digits", zca=True)
    assert (tmp_path / "cache" / f"zca-digits-eps{EPS}.pt").exists()
    again = DatasetCache(tmp_path / "data", tmp_path / "cache")("digits", zca=True)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.x_test, again.x_test)
