"""Save a synthetic set of the digits the way an outside codebase does: normalised image tensors and class
labels as `images.pt` + `labels.pt` (MTT/DATM's layout), with no bench code involved.

The "method" is deliberately simple: IPC 1 keeps each class's mean image, IPC 10 the 10 k-means centroids of
each class. It reads the digits as bench does (scikit-learn's 8x8 digits, /16, the stratified 70/30 split with
random_state 0) and normalises with bench's digits constants, so the files are in bench's normalised space.

    python examples/import_digits/make_set.py    # writes examples/import_digits/sets/digits/ipc{1,10}/
"""

from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

MEAN, STD = 0.3056, 0.3761  # bench's digits normalisation (`bench list datasets`)
OUT = Path(__file__).parent / "sets" / "digits"


def main() -> None:
    digits = load_digits()
    x = digits.images.astype(np.float32) / 16.0
    x_train, _, y_train, _ = train_test_split(x, digits.target, test_size=0.3, stratify=digits.target, random_state=0)
    for ipc in (1, 10):
        images = []
        for c in range(10):
            own = x_train[y_train == c].reshape(-1, 64)
            centres = own.mean(0, keepdims=True) if ipc == 1 else KMeans(ipc, n_init=10, random_state=0).fit(own).cluster_centers_
            images.append(centres.reshape(ipc, 1, 8, 8))
        folder = OUT / f"ipc{ipc}"
        folder.mkdir(parents=True, exist_ok=True)
        torch.save((torch.from_numpy(np.concatenate(images)).float() - MEAN) / STD, folder / "images.pt")
        torch.save(torch.arange(10).repeat_interleave(ipc), folder / "labels.pt")
        print(f"wrote {folder}/images.pt and labels.pt ({10 * ipc} images)")


if __name__ == "__main__":
    main()
