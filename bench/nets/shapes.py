"""The arithmetic of each architecture's feature maps: how large an image must be, and how large the
map before the classifier is. Plain integers, no torch, so suites are checked without building
(or importing) a network; the networks size their layers with the same functions.
"""

from __future__ import annotations

RESNET_WIDTHS = (64, 128, 256, 512)
VGG11_CFG: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def first_conv_padding(channels: int) -> int:
    """Single-channel inputs get padding 3 so 28 px MNIST maps to 32 px, as in the reference."""
    return 3 if channels == 1 else 1


def block_sides(image_size: int, channels: int, depth: int, pooling: str) -> list[int]:
    """Side length of the map after each conv (where the norm acts), then the final side.

    A side below 1 means the input is too small; the list stops there.
    """
    side = image_size + 2 * first_conv_padding(channels) - 2
    sides = []
    for _ in range(depth):
        sides.append(side)
        if side < 1:
            return sides
        if pooling != "none":
            side //= 2
    sides.append(side)
    return sides


def convnet_side(image_size: int, channels: int, depth: int = 3, pooling: str = "avgpooling") -> int:
    """Spatial side of the map fed to the classifier (< 1 if the image is too small)."""
    return min(block_sides(image_size, channels, depth, pooling))


def alexnet_side(image_size: int, channels: int) -> int:
    """Spatial side of the map fed to the classifier (< 1 if the image is too small).

    The first 5x5 conv keeps the size (grows it by 4 for 1-channel inputs); the three
    2x2 max-pools halve it, rounding down.
    """
    side = image_size + (4 if channels == 1 else 0)
    for _ in range(3):
        side //= 2
    return side


def vgg_side(image_size: int, channels: int) -> int:
    """Spatial side of the map fed to the classifier (< 1 if the image is too small).

    3x3 convs keep the size (the first grows it by 4 for 1-channel inputs); each "M" halves it.
    """
    side = image_size + (4 if channels == 1 else 0)
    for item in VGG11_CFG:
        if item == "M":
            side //= 2
    return side


def resnet_side(image_size: int, avg_pool: bool) -> int:
    """Spatial side of the map fed to the classifier (< 1 if the image is too small).

    Strided 3x3 convs (padding 1) give ceil(side / 2), then a 4x4 average pool floors the
    side by 4; the average-pooling variant halves with 2x2 pools (rounding down) and
    skips the final pool.
    """
    side = image_size
    for _ in RESNET_WIDTHS[1:]:
        side = side // 2 if avg_pool else (side + 1) // 2
    return side if avg_pool else side // 4


def resnet_ap_stem_pool(image_size: int) -> int:
    """The average pool after IDC's ResNetAP stem, chosen by image size as IDC's `net_size` does: none up
    to 64 px ('small', 3x3 conv), 2x2 up to 128 px ('mid', 3x3 conv), else 4x4 ('large', 7x7 conv)."""
    return 1 if image_size <= 64 else 2 if image_size <= 128 else 4


def resnet_ap_side(image_size: int) -> int:
    """Side of IDC's ResNetAP map before its global average pool (< 1 if the image is too small).

    The stem pool (`resnet_ap_stem_pool`), then a 2x2 average pool (rounding down) entering each of the
    last three stages; 224 px -> 56 -> 28 -> 14 -> 7.
    """
    side = image_size // resnet_ap_stem_pool(image_size)
    for _ in RESNET_WIDTHS[1:]:
        side //= 2
    return side


def lenet_side(image_size: int, channels: int) -> int:
    """Side of LeNet's last conv map (< 1 if the image is too small).

    Each 5x5 conv trims 4 (the first keeps the size for 1-channel inputs, padding 2);
    each 2x2 max-pool halves, rounding down.
    """
    side = image_size if channels == 1 else image_size - 4
    if side < 2:  # a 2x2 pool needs at least 2x2
        return 0
    side = side // 2 - 4
    if side < 2:
        return 0
    return side // 2
