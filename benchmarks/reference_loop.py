"""The baseline of `eval_speed.py`: DatasetCondensation's evaluation loop (utils.py `evaluate_synset`, `epoch`,
`DiffAugment` and its `rand_*` ops, `ParamDiffAug`; github.com/VICO-UoE/DatasetCondensation, MIT licence), rewritten
here op for op so its cost is the reference's: a fresh `TensorDataset` + shuffling `DataLoader` per evaluation
(items fetched one by one and collated), DSA mode 'S' drawing from torch's global RNG per batch (affine matrices
built as Python lists), `output.cpu()` + numpy argmax and `loss.item()` on every batch, `epochs + 1` passes with
one lr decay (x0.1, fresh SGD) after pass `epochs // 2 + 1`, and the test pass through a `DataLoader` too.

Only what the evaluation of a synthetic set uses is here (no Siamese seeding, no DC augmentation). Not part of
bench: a benchmark's stand-in for the code bench is measured against.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

PROB_FLIP, RATIO_SCALE, RATIO_ROTATE, RATIO_CROP_PAD, RATIO_CUTOUT = 0.5, 1.2, 15.0, 0.125, 0.5
BRIGHTNESS, SATURATION, CONTRAST = 1.0, 2.0, 0.5


def rand_scale(x: torch.Tensor) -> torch.Tensor:
    sx = torch.rand(x.shape[0]) * (RATIO_SCALE - 1.0 / RATIO_SCALE) + 1.0 / RATIO_SCALE
    sy = torch.rand(x.shape[0]) * (RATIO_SCALE - 1.0 / RATIO_SCALE) + 1.0 / RATIO_SCALE
    theta = torch.tensor([[[sx[i], 0, 0], [0, sy[i], 0]] for i in range(x.shape[0])], dtype=torch.float)
    grid = F.affine_grid(theta, x.shape, align_corners=False).to(x.device)
    return F.grid_sample(x, grid, align_corners=False)


def rand_rotate(x: torch.Tensor) -> torch.Tensor:
    angle = (torch.rand(x.shape[0]) - 0.5) * 2 * RATIO_ROTATE / 180 * float(np.pi)
    theta = torch.tensor([[[torch.cos(angle[i]), torch.sin(-angle[i]), 0],
                           [torch.sin(angle[i]), torch.cos(angle[i]), 0]] for i in range(x.shape[0])],
                         dtype=torch.float)
    grid = F.affine_grid(theta, x.shape, align_corners=False).to(x.device)
    return F.grid_sample(x, grid, align_corners=False)


def rand_flip(x: torch.Tensor) -> torch.Tensor:
    randf = torch.rand(x.size(0), 1, 1, 1, device=x.device)
    return torch.where(randf < PROB_FLIP, x.flip(3), x)


def rand_brightness(x: torch.Tensor) -> torch.Tensor:
    randb = torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)
    return x + (randb - 0.5) * BRIGHTNESS


def rand_saturation(x: torch.Tensor) -> torch.Tensor:
    x_mean = x.mean(dim=1, keepdim=True)
    rands = torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)
    return (x - x_mean) * (rands * SATURATION) + x_mean


def rand_contrast(x: torch.Tensor) -> torch.Tensor:
    x_mean = x.mean(dim=[1, 2, 3], keepdim=True)
    randc = torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device)
    return (x - x_mean) * (randc + CONTRAST) + x_mean


def rand_crop(x: torch.Tensor) -> torch.Tensor:
    shift_x, shift_y = int(x.size(2) * RATIO_CROP_PAD + 0.5), int(x.size(3) * RATIO_CROP_PAD + 0.5)
    translation_x = torch.randint(-shift_x, shift_x + 1, size=[x.size(0), 1, 1], device=x.device)
    translation_y = torch.randint(-shift_y, shift_y + 1, size=[x.size(0), 1, 1], device=x.device)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0), dtype=torch.long, device=x.device),
        torch.arange(x.size(2), dtype=torch.long, device=x.device),
        torch.arange(x.size(3), dtype=torch.long, device=x.device), indexing="ij")
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, x.size(2) + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, x.size(3) + 1)
    x_pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)


def rand_cutout(x: torch.Tensor) -> torch.Tensor:
    size = int(x.size(2) * RATIO_CUTOUT + 0.5), int(x.size(3) * RATIO_CUTOUT + 0.5)
    offset_x = torch.randint(0, x.size(2) + (1 - size[0] % 2), size=[x.size(0), 1, 1], device=x.device)
    offset_y = torch.randint(0, x.size(3) + (1 - size[1] % 2), size=[x.size(0), 1, 1], device=x.device)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0), dtype=torch.long, device=x.device),
        torch.arange(size[0], dtype=torch.long, device=x.device),
        torch.arange(size[1], dtype=torch.long, device=x.device), indexing="ij")
    grid_x = torch.clamp(grid_x + offset_x - size[0] // 2, min=0, max=x.size(2) - 1)
    grid_y = torch.clamp(grid_y + offset_y - size[1] // 2, min=0, max=x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype, device=x.device)
    mask[grid_batch, grid_x, grid_y] = 0
    return x * mask.unsqueeze(1)


AUGMENT_FNS = {"color": [rand_brightness, rand_saturation, rand_contrast], "crop": [rand_crop],
               "cutout": [rand_cutout], "flip": [rand_flip], "scale": [rand_scale], "rotate": [rand_rotate]}


def diff_augment(x: torch.Tensor, strategy: str) -> torch.Tensor:
    """DSA mode 'S': one op family per call, drawn from the global RNG."""
    if strategy in ("", "none", "None"):
        return x
    families = strategy.split("_")
    for fn in AUGMENT_FNS[families[torch.randint(0, len(families), size=(1,)).item()]]:
        x = fn(x)
    return x.contiguous()


def epoch(mode: str, dataloader: DataLoader, net: nn.Module, optimizer: torch.optim.Optimizer,
          criterion: nn.Module, device: torch.device, strategy: str, aug: bool) -> tuple[float, float]:
    loss_avg, acc_avg, num_exp = 0.0, 0.0, 0
    net = net.to(device)
    net.train() if mode == "train" else net.eval()
    for datum in dataloader:
        img = datum[0].float().to(device)
        if aug:
            img = diff_augment(img, strategy)
        lab = datum[1].long().to(device)
        n_b = lab.shape[0]
        output = net(img)
        loss = criterion(output, lab)
        acc = np.sum(np.equal(np.argmax(output.cpu().data.numpy(), axis=-1), lab.cpu().data.numpy()))
        loss_avg += loss.item() * n_b
        acc_avg += acc
        num_exp += n_b
        if mode == "train":
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return loss_avg / num_exp, acc_avg / num_exp


def evaluate_synset(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, x_test: torch.Tensor,
                    y_test: torch.Tensor, *, epochs: int, lr: float, batch_size: int, strategy: str,
                    device: torch.device) -> float:
    """Train `net` on the synthetic set as the reference does; the final test accuracy in percent. The caller
    seeds torch's global RNG (the reference seeds nothing: its shuffles and DSA draws come from the global RNG)."""
    net = net.to(device)
    images, labels = images.to(device), labels.to(device)
    schedule = [epochs // 2 + 1]
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=0.0005)
    criterion = nn.CrossEntropyLoss().to(device)
    trainloader = DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=True, num_workers=0)
    testloader = DataLoader(TensorDataset(x_test, y_test), batch_size=256, shuffle=False, num_workers=0)
    for ep in range(epochs + 1):
        epoch("train", trainloader, net, optimizer, criterion, device, strategy, aug=True)
        if ep in schedule:
            lr *= 0.1
            optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=0.0005)
    _, acc_test = epoch("test", testloader, net, optimizer, criterion, device, strategy, aug=False)
    if not math.isfinite(acc_test):
        raise ArithmeticError("the reference loop produced no accuracy")
    return 100.0 * acc_test
