"""Seeds trained together (bench.batched) are the one-at-a-time loop's networks, within float rounding."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from scipy import stats
from torch.utils._python_dispatch import TorchDispatchMode

from bench import data, nets
from bench.batched import MomentumSGD, evaluate_synset_batched, fit_batched, grouped
from bench.config import EvalSchema
from bench.plan import content_key
from bench.recipes import PRESETS, EvalRecipe
from bench.train import decayed, evaluate_synset, seeded, sgd, train_fresh

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load_dataset("digits", ".")


def builder(arch: str):
    return lambda: nets.get_network(arch, 1, 10, 8)


def both(digits: data.Dataset, arch: str, recipe: EvalRecipe, seeds: list[int]) -> tuple[list, list]:
    """The networks `train_fresh` trains one at a time and those `fit_batched` trains together, per seed."""
    x, y, strategy = digits.x_train[:40], digits.y_train[:40], digits.spec.dsa_strategy
    one = [train_fresh(builder(arch), x, y, recipe, seed=s, dsa_strategy=strategy, device=CPU) for s in seeds]
    together = [seeded(s, builder(arch)) for s in seeds]
    why = fit_batched(together, x, y, recipe, dsa_strategy=strategy,
                      generators=[torch.Generator().manual_seed(s + 1) for s in seeds])
    assert why == [None] * len(seeds)
    return one, together


@pytest.mark.parametrize("arch, preset", [("ConvNet", "standard"), ("ConvNetBN", "standard"), ("MLP", "idc")])
def test_each_seed_gets_its_own_init_order_and_augmentation(digits, arch: str, preset: str) -> None:
    """Parameters and BatchNorm running statistics agree to rounding: any other init, permutation, DSA or CutMix
    draw, loss or SGD step would move them by far more. `idc` adds CutMix and the in-place multi-step decay."""
    recipe = PRESETS[preset].with_overrides({"epochs": 3, "batch_size": 16})
    one, together = both(digits, arch, recipe, [0, 1, 2])
    for a, b in zip(one, together):
        for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.allclose(p.double(), q.double(), rtol=1e-4, atol=1e-5), name
    assert not torch.allclose(one[0].state_dict()["classifier.weight"], one[1].state_dict()["classifier.weight"])


@pytest.mark.parametrize("decay_at", [None, (0.25, 0.5)])
def test_momentum_sgd_steps_as_torch_sgd_with_the_recipes_decay(decay_at) -> None:
    """The batched loop's SGD (the lr a tensor on the device) against torch's SGD with `decayed`: the reference's
    decay with a fresh optimiser, or IDC's in place."""
    recipe, g = EvalRecipe(epochs=8, decay_at=decay_at), torch.Generator().manual_seed(0)
    ours = [torch.randn(4, 3, generator=g), torch.randn(5, generator=g)]
    theirs = [t.clone().requires_grad_() for t in ours]
    opt, torch_opt, lr = MomentumSGD(ours, recipe), sgd(theirs, recipe.lr, recipe), recipe.lr
    for epoch in range(recipe.passes):
        grads = [torch.randn(t.shape, generator=g) for t in ours]
        opt.step(grads)
        for t, grad in zip(theirs, grads):
            t.grad = grad.clone()
        torch_opt.step()
        opt.after_pass(epoch)
        torch_opt, lr = decayed(torch_opt, theirs, lr, recipe, epoch)
        assert opt.lr.item() == pytest.approx(lr, rel=1e-6)
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("arch", ["ConvNet", "ConvNetBN"])
def test_a_replayed_step_trains_the_networks_the_eager_step_trains(digits, arch: str) -> None:
    """What `Replayed` adds to a CUDA graph (inputs copied into the captured buffers each step, one capture per
    batch shape, the capture's warm-up steps undone, BatchNorm's statistics included), with a capture that warms up
    three times and then replays eagerly: bit for bit the networks of the eager loop. 40 images in batches of 16
    make two shapes; `idc` adds CutMix."""
    x, y, recipe = digits.x_train[:40], digits.y_train[:40], PRESETS["idc"].with_overrides({"epochs": 3,
                                                                                           "batch_size": 16})
    captures = []

    def warm_up_then_eager(fn):
        captures.append(fn)
        for _ in range(3):
            fn()
        return fn

    trained = {}
    for capture in (None, warm_up_then_eager):
        trained[capture] = [seeded(s, builder(arch)) for s in (0, 1)]
        fit_batched(trained[capture], x, y, recipe, dsa_strategy=digits.spec.dsa_strategy, capture=capture,
                    generators=[torch.Generator().manual_seed(s + 1) for s in (0, 1)])
    assert len(captures) == 2
    for eager, replayed in zip(trained[None], trained[warm_up_then_eager]):
        for (name, p), q in zip(eager.state_dict().items(), replayed.state_dict().values()):
            assert torch.equal(p, q), name


# Operations that make a GPU wait and hand a value to the host (`.item()`, `bool()`, `.tolist()`, boolean masks),
# which a CUDA graph cannot capture.
HOST_READS = {"_local_scalar_dense", "nonzero", "masked_select", "_unique2", "unique_consecutive", "unique_dim",
              "repeat_interleave", "equal", "is_nonzero"}


class NoHostReads(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        assert func.overloadpacket.__name__ not in HOST_READS, f"{func} reads from the device"
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("arch, preset", [("ConvNet", "standard"), ("ConvNetBN", "idc")])
def test_a_step_never_reads_from_the_device(digits, arch: str, preset: str) -> None:
    """What a CUDA graph needs of the step it captures: every step of the loop, its first included, runs without
    one operation that reads a value back to the host (CutMix and BatchNorm's statistics included)."""
    steps = []

    def watched(fn):
        def step():
            with NoHostReads():
                steps.append(fn())
            return steps[-1]
        return step

    recipe = PRESETS[preset].with_overrides({"epochs": 2, "batch_size": 16})
    fit_batched([seeded(s, builder(arch)) for s in (0, 1)], digits.x_train[:40], digits.y_train[:40], recipe,
                dsa_strategy=digits.spec.dsa_strategy, capture=watched,
                generators=[torch.Generator().manual_seed(s + 1) for s in (0, 1)])
    assert len(steps) == 3 * recipe.passes


class OnlyDeviceTensors(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        host = [t for t in torch.utils._pytree.tree_leaves((args, kwargs))
                if isinstance(t, torch.Tensor) and t.device.type == "cpu"]
        assert not host, f"{func} takes host tensors of shapes {[tuple(t.shape) for t in host]}"
        return func(*args, **(kwargs or {}))


class Captured(Exception):
    """Stops `fit_batched` once its step has been captured: the meta device has no values to read back."""


@pytest.mark.parametrize("arch, preset", [("ConvNet", "standard"), ("ConvNetBN", "idc")])
def test_a_captured_step_takes_only_device_tensors(arch: str, preset: str) -> None:
    """What a CPU cannot see of a capture: a graph replays the kernels it recorded, so a host tensor in the step (a
    CPU lr, a CPU 0-dim constant) would be read once, at capture, and replayed stale. On the meta device, a stand-in
    for a GPU, every operation of the captured step (every DSA family, CutMix, BatchNorm, SGD) takes device tensors
    only; a CPU lr in `MomentumSGD` makes this fail."""
    meta, seen = torch.device("meta"), []

    def capture(fn):
        with OnlyDeviceTensors():
            seen.append(fn())
        raise Captured

    recipe = PRESETS[preset].with_overrides({"epochs": 2, "batch_size": 16})
    x, y = torch.empty(40, 3, 32, 32, device=meta), torch.zeros(40, dtype=torch.long, device=meta)
    with pytest.raises(Captured):
        fit_batched([seeded(s, lambda: nets.get_network(arch, 3, 10, 32)).to(meta) for s in (0, 1)], x, y, recipe,
                    dsa_strategy="color_crop_cutout_flip_scale_rotate", capture=capture,
                    generators=[torch.Generator().manual_seed(s + 1) for s in (0, 1)])
    assert seen[0].shape == (2,) and seen[0].device == meta


def test_convnets_train_together_as_grouped_convolutions_and_other_networks_vmap() -> None:
    """The ConvNets of the protocol (instance norm) are one network of grouped convolutions; BatchNorm's running
    statistics and every other architecture go through torch.func's vmap."""
    for arch, way in [("ConvNet", "grouped"), ("ConvNetBN", "vmap"), ("ConvNetLN", "vmap"), ("MLP", "vmap")]:
        assert (grouped([seeded(s, builder(arch)) for s in (0, 1)]) is not None) == (way == "grouped"), arch


def test_accuracies_and_predictions_match_evaluate_synset(digits) -> None:
    x, y, recipe, seeds = digits.x_train[:40], digits.y_train[:40], EvalRecipe(epochs=4, batch_size=16), [3, 4, 5]
    args = (builder("ConvNet"), x, y, digits.x_test, digits.y_test, recipe)
    one = [evaluate_synset(*args, seed=s, dsa_strategy=digits.spec.dsa_strategy, device=CPU) for s in seeds]
    together = [acc for acc, _ in evaluate_synset_batched(*args, seeds, digits.spec.dsa_strategy, CPU)]
    assert together == pytest.approx(one, abs=100 / len(digits.y_test) + 1e-9)  # at most one test image apart
    a, b = both(digits, "ConvNet", recipe, seeds)
    with torch.no_grad():
        for net_a, net_b in zip(a, b):
            agree = (net_a.eval()(digits.x_test).argmax(1) == net_b.eval()(digits.x_test).argmax(1)).float().mean()
            assert agree >= 0.99


def test_twenty_seeds_give_the_same_accuracy_distribution(digits) -> None:
    """Rounding differences can grow over training: over 20 seeds the two loops' accuracies are indistinguishable."""
    x, y, recipe, seeds = digits.x_train[:60], digits.y_train[:60], EvalRecipe(epochs=20, batch_size=16), range(20)
    args = (builder("MLP"), x, y, digits.x_test, digits.y_test, recipe)
    one = [evaluate_synset(*args, seed=s, dsa_strategy=digits.spec.dsa_strategy, device=CPU) for s in seeds]
    together = [acc for acc, _ in evaluate_synset_batched(*args, list(seeds), digits.spec.dsa_strategy, CPU)]
    diff = sum(together) / 20 - sum(one) / 20
    assert abs(diff) < 0.5, (one, together)
    assert one == together or stats.ttest_ind(one, together, equal_var=False).pvalue > 0.05


@pytest.mark.parametrize("arch", ["MLP", "ConvNet"])
def test_a_diverging_seed_says_why_and_leaves_the_others_alone(digits, arch: str) -> None:
    def build() -> torch.nn.Module:
        net = nets.get_network(arch, 1, 10, 8)
        if torch.initial_seed() == 7:  # `seeded(7, build)`: this seed's network starts broken
            torch.nn.init.constant_(net.classifier.bias, math.inf)
        return net

    x, y, recipe = digits.x_train[:40], digits.y_train[:40], EvalRecipe(epochs=2, batch_size=16)
    args = (build, x, y, digits.x_test, digits.y_test, recipe)
    together = evaluate_synset_batched(*args, [6, 7, 8], digits.spec.dsa_strategy, CPU)
    assert together[1][0] is None and together[1][1].startswith("the training loss became nan in epoch 1/3")
    assert together[0][1] is None and together[2][1] is None
    one = [evaluate_synset(*args, seed=s, dsa_strategy=digits.spec.dsa_strategy, device=CPU) for s in (6, 8)]
    assert [together[0][0], together[2][0]] == pytest.approx(one, abs=100 / len(digits.y_test) + 1e-9)


def test_batch_seeds_is_how_a_recipe_runs_not_part_of_its_key() -> None:
    """On, off or left to the device, a recipe keeps its key (as a GPU run keeps a CPU run's); left alone, a cell's
    seeds train together on CUDA only, and never under a soft-label regime."""
    recipe = PRESETS["standard"].with_overrides(EvalSchema(epochs=5).model_dump(exclude_none=True))
    keys = {content_key(recipe.with_overrides({"batch_seeds": on}).as_dict()) for on in (None, True, False)}
    assert keys == {content_key(recipe.as_dict())} and "batch_seeds" not in recipe.as_dict()
    assert (recipe.trains_together("cuda"), recipe.trains_together("cpu")) == (True, False)
    assert recipe.with_overrides({"batch_seeds": True}).trains_together("cpu")
    assert not recipe.with_overrides({"batch_seeds": False}).trains_together("cuda")
    assert not recipe.with_overrides({"labels": "soft"}).trains_together("cuda")


def test_bench_run_trains_a_cells_seeds_together_with_the_accuracies_of_one_at_a_time(tmp_path, monkeypatch) -> None:
    """`eval: {batch_seeds: true}` through the CLI: the three seeds of each cell run as one task, each record says
    so, and they score what the one-at-a-time loop scores, within one test image, under the same keys."""
    import json

    from bench.cli import main
    suite = "datasets: [digits]\nipc: [2]\neval_archs: [ConvNet]\nmethods: [{name: random}]\nseeds: [0, 1, 2]\n"
    records = {}
    for batched in (False, True):
        (tmp_path / str(batched)).mkdir()
        monkeypatch.chdir(tmp_path / str(batched))
        Path("bench.yaml").write_text("device: cpu\nworkers: 1\n")
        Path("s.yaml").write_text(suite + f"eval: {{epochs: 3, batch_seeds: {str(batched).lower()}}}\n")
        assert main(["run", "s.yaml"]) == 0
        records[batched] = {r["key"]: r for r in (json.loads(p.read_text())
                                                  for p in Path("results", "records").rglob("*.json"))}
    assert records[False].keys() == records[True].keys() and len(records[True]) == 3
    for key, one in records[False].items():
        together = records[True][key]
        assert (one["trained_with"], together["trained_with"]) == (None, [0, 1, 2])
        assert abs(one["accuracy"] - together["accuracy"]) <= 100 / 540 + 1e-9, one["eval_seed"]
