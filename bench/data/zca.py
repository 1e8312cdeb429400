"""ZCA whitening (MTT's `--zca`: kornia's ZCAWhitening(eps=0.1), fitted on the training images).

As in the reference, whitened data is NOT mean/std normalised first: pixels in [0, 1] go straight
into the whitening, fitted on the training images and applied to train and test alike.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from bench.data import Dataset

EPS = 0.1


def fit_zca(x: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, T) with T = U diag(1/sqrt(S + eps)) U^T from the covariance X^T X / (N - 1) of flattened x."""
    flat = x.reshape(len(x), -1).double()
    mean = flat.mean(0)
    centred = flat - mean
    cov = centred.T @ centred / (len(flat) - 1)
    u, s, _ = torch.linalg.svd(cov)
    transform = u @ torch.diag(1.0 / torch.sqrt(s + eps)) @ u.T
    return mean.float(), transform.float()


def apply_zca(x: torch.Tensor, mean: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    return ((x.reshape(len(x), -1) - mean) @ transform).reshape(x.shape)


def unnormalise(ds: Dataset, x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(ds.spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.spec.std).view(1, -1, 1, 1)
    return x * std + mean


def whiten(ds: Dataset, zca: tuple[torch.Tensor, torch.Tensor] | None = None) -> Dataset:
    """The data set in ZCA space; `zca` = (mean, T) from an earlier fit (a cache), else fitted here."""
    train, test = unnormalise(ds, ds.x_train), unnormalise(ds, ds.x_test)
    mean, transform = zca if zca is not None else fit_zca(train)
    return replace(ds, x_train=apply_zca(train, mean, transform), x_test=apply_zca(test, mean, transform))
