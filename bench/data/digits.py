"""The built-in data set: scikit-learn's 8x8 handwritten digits, so the harness runs with no download.

1,797 images, values 0..16, scaled to [0, 1] by /16. The split is fixed and stratified:
`train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)`, which gives 1,257 train /
540 test images. Train class counts are 124, 127, 124, 128, 127, 127, 127, 125, 122, 126
(smallest: 122, digit 8); test class counts are 52..55.

The normalisation constants are the mean and (population) standard deviation over all pixels
of the train split after /16, computed once and rounded to 4 decimals; tests recompute them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.data.readers import RawData

MEAN = 0.3056
STD = 0.3761
TRAIN_SIZE = 1257
TEST_SIZE = 540
MIN_CLASS_TRAIN = 122
CLASS_NAMES = [str(d) for d in range(10)]


def read_digits() -> RawData:
    """Load and split the digits as (N, 1, 8, 8) float arrays in [0, 1]."""
    # Imported here: the constants above are read (by config) with nothing heavy loaded, and
    # scikit-learn is slow to import and only this data set needs it.
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from bench.data.readers import RawData

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    return RawData(x_train, y_train, x_test, y_test, list(CLASS_NAMES))
