"""The storage budget of a synthetic set (NSD, Yang et al. ECCV 2024, Eq. 3).

A parametrised set may store anything (packed images, spectrum tensors and kernels, ...) as long
as the values it stores do not exceed what IPC plain images per class would take:

    size(stored parameters) <= IPC x classes x size(image),   size(image) = C x H x W values.

Eq. 3 counts image values only: labels and a learned lr are outside it. Kept free of torch so the
harness can mark over-budget artifacts without importing any method.
"""

from __future__ import annotations


def storage_budget_values(ipc: int, num_classes: int, channels: int, image_size: int) -> int:
    """IPC x classes x C x H x W: the number of values IPC square images per class hold."""
    for name, value in (("ipc", ipc), ("num_classes", num_classes), ("channels", channels),
                        ("image_size", image_size)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    return ipc * num_classes * channels * image_size * image_size


def storage_budget_bytes(ipc: int, num_classes: int, channels: int, image_size: int,
                         bytes_per_value: int = 4) -> int:
    """Eq. 3 in bytes: the budget in values times the bytes of one stored value (4 for float32)."""
    if bytes_per_value < 1:
        raise ValueError(f"bytes_per_value must be a positive integer, got {bytes_per_value}")
    return storage_budget_values(ipc, num_classes, channels, image_size) * bytes_per_value
