"""Coreset baselines `herding`, `kcenter` and `forgetting`: real images chosen with a trained network.

All three share one cached expert stage, `feature_net`: a network of the distillation
architecture trained on the full real training set. It yields the embedding every training
image gets (herding and k-center select in that space, as IDC's `coreset.py` does with its
ConvNet trained on the full data) and the per-sample forgetting events counted while it
trained (Toneva et al. 2019, as in DeepCore's `forgetting.py`). The three methods declare the
same `ExpertSpec`, so one training run serves them and every cell of a data set/architecture.
The embeddings are stored one file per class (`class_features`, read as `bench.store.Parts`): a
selection holds one class's features at a time, not the stage's N x D floats (0.41 GB for
CIFAR-10 with a ConvNet). A stage of a bench before that stores them whole (`features`); it
still reads.

Training recipe (the DC-family standard for networks trained on real data, e.g. IID's
`pre_model.py`): SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, no augmentation.
Default 40 epochs: DeepCore's `main.py` trains its selection models for `selection_epochs=40`
and IID pretrains its feature networks for 40 epochs with this same optimiser. DeepCore's own
forgetting recipe (lr 0.1, 200 epochs) is not used: one recipe serves all three methods.
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from bench.experts import ExpertContext, register_expert
from bench.methods import specs
from bench.methods.base import DistillContext, Method, SyntheticSet, class_labels
from bench.methods.specs import FEATURE_NET
from bench.train import accuracy, constant_lr, train_fresh

class ForgettingCounter:
    """Counts forgetting events: correct at a sample's previous presentation, incorrect now.

    Pass it as `train_epoch(..., on_batch=counter)`: it sees the logits each sample got when it
    was presented (before that batch's SGD step), as Toneva et al. and DeepCore record them. A
    sample's first presentation counts as following an incorrect one, so it is never an event.
    """

    def __init__(self, labels: torch.Tensor):
        self.labels = labels
        self.previous = torch.zeros(len(labels), dtype=torch.bool, device=labels.device)
        self.events = torch.zeros(len(labels), dtype=torch.int64, device=labels.device)

    def __call__(self, indices: torch.Tensor, logits: torch.Tensor) -> None:
        correct = logits.argmax(1) == self.labels[indices]
        # One assignment per index tensor: DeepCore's chained `events[idx][mask] += 1` writes
        # into a copy, so its counts never leave zero.
        self.events[indices] += (self.previous[indices] & ~correct).long()
        self.previous[indices] = correct


@register_expert(FEATURE_NET, parts=("class_features",))
def build_feature_net(ctx: ExpertContext) -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """Train the distillation architecture on all real training data; return what the coresets select with.

    Returns `class_features`, per class (`Dataset.class_indices` order), (N_c, D) float32:
    `net.embed(x)` of each of its training images (eval mode, no augmentation, after training);
    `forgetting` (N,) int64: forgetting events per training image; `accuracy` (0-d): the
    trained network's test accuracy in %, for the record.
    """
    p = ctx.spec.params
    ds = ctx.dataset
    x, y = ds.x_train.to(ctx.device), ds.y_train.to(ctx.device)
    counter = ForgettingCounter(y)
    net = train_fresh(ctx.make_net, x, y, constant_lr(p["epochs"], p["lr"], p["momentum"], p["weight_decay"],
                                                      p["batch_size"]),
                      seed=p["seed"], dsa_strategy=ctx.dsa_strategy, device=ctx.device, progress=ctx.progress,
                      on_batch=counter)
    net.eval()
    with torch.no_grad():
        features = torch.cat([net.embed(x[i:i + p["batch_size"]]) for i in range(0, len(x), p["batch_size"])])
    test_acc = accuracy(net, ds.x_test.to(ctx.device), ds.y_test.to(ctx.device))
    return {"class_features": [features[idx].float().cpu() for idx in ds.class_indices()],
            "forgetting": counter.events.cpu(), "accuracy": torch.tensor(test_acc, dtype=torch.float32)}


def herding(features: torch.Tensor, k: int) -> torch.Tensor:
    """Herding (Welling 2009; iCaRL; IDC `herding_select`): positions of `k` rows, in selection order.

    Step j picks the unselected x minimising ||j*mu - sum(selected) - x||, so the running mean
    of the selection tracks the class mean. DeepCore's herding.py takes the argmax of this
    distance, which is a bug; the argmin is the algorithm. Ties go to the lowest position.
    """
    feats = features.double()
    mean = feats.mean(0)
    running = torch.zeros_like(mean)
    available = torch.ones(len(feats), dtype=torch.bool)
    picked = []
    for j in range(1, k + 1):
        dist = (j * mean - running - feats).norm(dim=1)
        dist[~available] = float("inf")
        i = int(dist.argmin())
        picked.append(i)
        available[i] = False
        running += feats[i]
    return torch.tensor(picked, dtype=torch.int64)


def k_center_greedy(features: torch.Tensor, k: int, first: int) -> torch.Tensor:
    """Greedy k-center (Sener & Savarese 2018; DeepCore kCenterGreedy): positions of `k` rows, in order.

    Starting from row `first`, repeatedly add the row farthest (Euclidean) from its nearest
    selected centre. Ties go to the lowest position.
    """
    feats = features.double()
    nearest = (feats - feats[first]).norm(dim=1)
    nearest[first] = -float("inf")
    picked = [first]
    for _ in range(k - 1):
        i = int(nearest.argmax())
        picked.append(i)
        nearest = torch.minimum(nearest, (feats - feats[i]).norm(dim=1))
        nearest[picked] = -float("inf")
    return torch.tensor(picked, dtype=torch.int64)


def most_forgotten(events: torch.Tensor, k: int) -> torch.Tensor:
    """Positions of the `k` samples with the most forgetting events (descending).

    The sort is stable, so among equal counts the lower position (earlier training index)
    comes first: no randomness, the same set for every seed.
    """
    return torch.sort(events, descending=True, stable=True).indices[:k]


class _Coreset(Method):
    """Per class, select `ipc` real training images using the shared feature network."""

    @abstractmethod
    def select(self, features: torch.Tensor, forgetting: torch.Tensor, k: int,
               generator: torch.Generator) -> torch.Tensor:
        """Positions (within one class) of the `k` images to keep."""

    def distill(self, ctx: DistillContext) -> SyntheticSet:
        expert = ctx.experts[FEATURE_NET]
        forgetting = expert["forgetting"].cpu()
        g = ctx.generator()
        per_class = ctx.dataset.class_indices()
        chosen = [idx[self.select(class_features(expert, c, idx), forgetting[idx], ctx.ipc, g)]
                  for c, idx in enumerate(per_class)]
        images = ctx.dataset.x_train[torch.cat(chosen)].cpu()
        return SyntheticSet(images, class_labels(len(per_class), ctx.ipc))


def class_features(expert: dict, c: int, idx: torch.Tensor) -> torch.Tensor:
    """The embeddings of class `c` (training images `idx`): its file of the stage, or its rows of a stage stored
    whole by an older bench."""
    if "class_features" in expert:
        return expert["class_features"][c].cpu()
    return expert["features"][idx].cpu()


class Herding(specs.Herding, _Coreset):
    def select(self, features: torch.Tensor, forgetting: torch.Tensor, k: int,
               generator: torch.Generator) -> torch.Tensor:
        return herding(features, k)


class KCenter(specs.KCenter, _Coreset):
    def select(self, features: torch.Tensor, forgetting: torch.Tensor, k: int,
               generator: torch.Generator) -> torch.Tensor:
        return k_center_greedy(features, k, int(torch.randint(len(features), (1,), generator=generator)))


class Forgetting(specs.Forgetting, _Coreset):
    def select(self, features: torch.Tensor, forgetting: torch.Tensor, k: int,
               generator: torch.Generator) -> torch.Tensor:
        return most_forgotten(forgetting, k)
