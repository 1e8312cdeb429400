"""Save a digits set with soft labels the way an outside codebase does: `images.pt`, `labels.pt` and
`soft_labels.pt` (logits, one row per image), for `suites/label-regimes-digits.yaml` to import under each label
regime.

The images are each class's 10 k-means centroids (IPC 10), as examples/import_digits does. The soft labels are
made without any network: each centroid's class posterior under a Gaussian model of the digits (one mean per class,
a shared isotropic variance, equal priors), as logits -||z - mean_c||^2 / (2 var). They say how much a centroid
looks like the other classes' means, which is what stored soft labels carry (DATM learns them; this script
computes them), and they are read at temperature 1 (the `soft` preset).

    python examples/label_regimes/make_set.py    # writes examples/label_regimes/sets/digits/ipc10/
"""

from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

MEAN, STD = 0.3056, 0.3761  # bench's digits normalisation (`bench list datasets`)
IPC = 10
OUT = Path(__file__).parent / "sets" / "digits" / f"ipc{IPC}"


def main() -> None:
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0 - MEAN) / STD
    x_train, _, y_train, _ = train_test_split(x, digits.target, test_size=0.3, stratify=digits.target, random_state=0)
    flat = x_train.reshape(len(x_train), -1)
    means = np.stack([flat[y_train == c].mean(0) for c in range(10)])
    var = ((flat - means[y_train]) ** 2).mean()  # per pixel, pooled over the classes
    centroids = np.concatenate([KMeans(IPC, n_init=10, random_state=0).fit(flat[y_train == c]).cluster_centers_
                                for c in range(10)])
    logits = -((centroids[:, None, :] - means[None]) ** 2).sum(-1) / (2 * var)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.save(torch.from_numpy(centroids.reshape(-1, 1, 8, 8)).float(), OUT / "images.pt")
    torch.save(torch.arange(10).repeat_interleave(IPC), OUT / "labels.pt")
    torch.save(torch.from_numpy(logits).float(), OUT / "soft_labels.pt")
    agree = (logits.argmax(1) == np.arange(10).repeat(IPC)).mean()
    print(f"wrote {OUT}/images.pt, labels.pt and soft_labels.pt ({10 * IPC} images; the soft labels' argmax is "
          f"the class for {100 * agree:.0f}% of them)")


if __name__ == "__main__":
    main()
