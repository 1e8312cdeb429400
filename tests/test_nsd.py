"""NSD: the decode (Eq. 1-2) by hand, Eq. 3 sizing, the bases, the guided loss, a run and a resume on digits.

Distillation tests use ConvNetW32 and a two-expert, four-epoch trajectory stage so they run in seconds.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench import data, nets
from bench.config import load_suite
from bench.methods.base import SYNSET_FORMATS, Checkpoint, DistillContext
from bench.methods.budget import storage_budget_bytes, storage_budget_values
from bench.methods.mtt import build_trajectories, flat_forward, flatten_params, trajectory_matching_loss
from bench.experts import ExpertContext
from bench.methods import nsd
from bench.methods.nsd import (NSD, DCTSet, HaarSet, SpectralSet, band_mask, dct_basis, decode, guided_loss, haar_basis,
                               hosvd, initialise, matching_distance, plan_layout, stored_set, unroll_student)
from bench.methods.presets import load_preset, preset_params
from bench.methods.registry import get_method
from bench.methods.specs import MTTParams, NSDParams, trajectory_spec
from bench.recipes import PRESETS
from bench.train import evaluate_synset, seeded

ARCH = "ConvNetW32"
REPO = Path(__file__).resolve().parents[1]
DECOMPOSITIONS = ("learned", "dct", "ldct", "svd", "lsvd", "dwt", "none")
SHAPES = {"digits": (1, 8, 10), "mnist": (1, 28, 10), "cifar10": (3, 32, 10), "cifar100": (3, 32, 100),
          "tinyimagenet": (3, 64, 200)}  # channels, side, classes
TINY = dict(iterations=4, syn_steps=2, expert_epochs=1, max_start_epoch=3, batch_syn=16, guide_batch=32,
            lr_tensor=10.0, lr_kernel=0.01)


def make_net() -> nn.Module:
    return nets.get_network(ARCH, 1, 10, 8)


@pytest.fixture(scope="module")
def experts(digits: data.Dataset) -> dict[str, torch.Tensor]:
    p = MTTParams(num_experts=2, expert_train_epochs=4, expert_batch=64, expert_seed=5)
    return build_trajectories(ExpertContext(trajectory_spec(p, "digits", ARCH), digits, torch.device("cpu"),
                                            make_net, digits.spec.dsa_strategy))


def context(ds: data.Dataset, experts: dict, ipc: int, seed: int = 0, checkpoint: Checkpoint | None = None
            ) -> DistillContext:
    return DistillContext(ds, ipc, seed, torch.device("cpu"), make_net, ds.spec.dsa_strategy,
                          experts={"trajectories": experts}, checkpoint=checkpoint or Checkpoint())


# ---------------------------------------------------------------------------------------------- decode


def test_decode_matches_a_hand_computation() -> None:
    """T (t1=1, t2=1, 2 x 2) = [[1, 2], [3, 4]]; K1 = [[1], [2]] (2 images), K2 = [[1], [-1]] (2 channels),
    K3 = [[1, 0], [0, 1], [1, 1]] (3 rows), K4 = [[1, 1]] (1 column): image = K3 T K4^T = [3, 7, 10]^T,
    the second image twice the first, the second channel the negative of the first."""
    spectra = torch.tensor([[[[1., 2.], [3., 4.]]]]).view(1, 1, 1, 2, 2)
    kernels = [torch.tensor([[1.], [2.]]), torch.tensor([[1.], [-1.]]), torch.tensor([[1., 0.], [0., 1.], [1., 1.]]),
               torch.tensor([[1., 1.]])]
    x, y = decode(spectra, torch.tensor([4]), [k[None, None] for k in kernels])
    column = torch.tensor([3., 7., 10.]).view(3, 1)
    expected = torch.stack([torch.stack([column, -column]), torch.stack([2 * column, -2 * column])])
    assert x.shape == (2, 2, 3, 1) and torch.equal(x, expected) and y.tolist() == [4, 4]


def test_decode_is_the_separable_kernel_and_pairs_tensors_with_kernels_in_paper_order() -> None:
    """x_{j+(i-1)N_K} = T_i x K_j, with K_j = K1 (x) K2 (x) K3 (x) K4 (Eq. 2), for N_T = 2 tensors of
    each of 2 classes and N_K = 3 shared kernel sets, against the full (non-separable) kernel."""
    g = torch.Generator().manual_seed(0)
    t, u = (2, 1, 3, 2), (4, 2, 5, 3)
    spectra = torch.randn(4, *t, generator=g)
    labels = torch.tensor([0, 0, 1, 1])
    kernels = [torch.randn(1, 3, u[m], t[m], generator=g) for m in range(4)]
    x, y = decode(spectra, labels, kernels)
    assert x.shape == (4 * 3 * 4, 2, 5, 3) and y.tolist() == [0] * 24 + [1] * 24
    for i in range(4):
        for j in range(3):
            full = kernels[0][0, j]
            for m in (1, 2, 3):  # Kronecker product of the four mode kernels: (prod u, prod t)
                full = torch.kron(full, kernels[m][0, j])
            images = (full @ spectra[i].reshape(-1)).view(4, 2, 5, 3)
            first = (j + i * 3) * 4
            torch.testing.assert_close(x[first:first + 4], images)


def test_per_class_kernels_follow_the_tensor_label() -> None:
    g = torch.Generator().manual_seed(1)
    spectra = torch.randn(3, 1, 1, 2, 2, generator=g)
    labels = torch.tensor([2, 0, 1])
    height = torch.randn(3, 1, 4, 2, generator=g)  # one group per class
    x, _ = decode(spectra, labels, [None, None, height, None])
    for r, c in enumerate(labels.tolist()):
        torch.testing.assert_close(x[r, 0], height[c, 0] @ spectra[r, 0, 0])


# ---------------------------------------------------------------------------------------------- budget


def test_storage_budget_is_eq_3() -> None:
    assert storage_budget_values(10, 10, 3, 32) == 10 * 10 * 3 * 32 * 32
    assert storage_budget_bytes(1, 100, 3, 32) == 100 * 3072 * 4
    assert storage_budget_bytes(1, 10, 1, 8, bytes_per_value=2) == 10 * 64 * 2
    with pytest.raises(ValueError):
        storage_budget_values(0, 10, 3, 32)


@pytest.mark.parametrize("decomposition", DECOMPOSITIONS)
def test_sizes_fill_but_never_exceed_the_budget(decomposition: str) -> None:
    p = NSDParams(decomposition=decomposition)
    for dataset, (channels, side, classes) in SHAPES.items():
        for ipc in (1, 2, 10, 50):
            layout = plan_layout(p, ipc, classes, channels, side)
            budget = storage_budget_values(ipc, classes, channels, side)
            assert 0.7 * budget < layout.values <= budget, (dataset, ipc, layout)
            spatial = side if decomposition == "none" else (side // 2 if ipc <= 10 else 7 * side // 8)
            assert layout.t[1:] == (channels, spatial, spatial) and layout.u[1:] == (channels, side, side)
            if layout.kinds[0] == "stored":
                assert layout.u[0] == 2 * layout.t[0] > layout.t[0]  # t1 < u1
    cifar = plan_layout(p, 10, 10, 3, 32)
    if decomposition == "learned":  # two tensors per class, two shared kernel sets
        assert (cifar.n_tensors, cifar.n_kernels, cifar.groups, cifar.t) == (2, 2, 1, (19, 3, 16, 16))
        assert cifar.values == 10 * 2 * 19 * 3 * 16 * 16 + 2 * (38 * 19 + 3 * 3 + 2 * 32 * 16)


def test_sizes_fall_back_and_honour_overrides() -> None:
    one = plan_layout(NSDParams(), 1, 10, 3, 32)  # two tensors of rank >= 2 do not fit IPC 1
    assert (one.n_tensors, one.n_kernels, one.t[0]) == (1, 2, 3)
    fixed = plan_layout(NSDParams(n_tensors=3, n_kernels=1, rank=4, spatial=8), 10, 10, 3, 32)
    assert (fixed.n_tensors, fixed.n_kernels, fixed.t, fixed.u[0]) == (3, 1, (4, 3, 8, 8), 8)
    per_class = plan_layout(NSDParams(share_kernels=False), 10, 10, 3, 32)
    assert per_class.groups == 10 and per_class.values <= storage_budget_values(10, 10, 3, 32)
    with pytest.raises(ValueError, match="exceeds the storage budget"):
        plan_layout(NSDParams(rank=100), 1, 10, 3, 32)
    with pytest.raises(ValueError, match="learned' only"):
        plan_layout(NSDParams(decomposition="dct", n_kernels=2), 1, 10, 3, 32)
    with pytest.raises(ValueError, match="lower `spatial`"):
        plan_layout(NSDParams(share_kernels=False), 1, 10, 1, 28)  # per-class kernels alone exceed 784 values


@pytest.mark.parametrize("decomposition", DECOMPOSITIONS)
def test_every_variant_decodes_to_images_and_stores_what_it_counts(digits: data.Dataset, decomposition: str) -> None:
    ipc = 2
    p = NSDParams(decomposition=decomposition, iterations=0)
    layout = plan_layout(p, ipc, 10, 1, 8)
    real = [digits.x_train[idx] for idx in digits.class_indices()]
    spectra, stored = initialise(layout, real, torch.Generator().manual_seed(0))
    labels = torch.arange(10).repeat_interleave(layout.n_tensors)
    synset = stored_set(layout, spectra, labels, stored, torch.tensor(0.01), 8)
    x, y = synset.training_data()
    assert x.shape == (10 * layout.images_per_class, 1, 8, 8) and x.dtype == torch.float32
    assert y.tolist() == [c for c in range(10) for _ in range(layout.images_per_class)]
    assert 0.5 < x.std() < 2  # the data are normalised; every variant starts at that scale
    assert synset.parameter_values == layout.values <= storage_budget_values(ipc, 10, 1, 8)
    extra = labels.numel() * 8 + 4 + (4 if isinstance(synset, (DCTSet, HaarSet)) else 0)  # int64 labels, lr, side
    assert synset.nbytes == 4 * layout.values + extra
    expected_format = {"dct": "nsd-dct", "dwt": "nsd-haar"}.get(decomposition, "nsd-spectral")
    again = SYNSET_FORMATS[synset.format].from_tensors(synset.tensors())
    assert synset.format == expected_format and type(again) is type(synset)
    assert torch.equal(again.training_data()[0], x) and again.nbytes == synset.nbytes


# ---------------------------------------------------------------------------------------------- bases


@pytest.mark.parametrize("n", [7, 8, 28, 32])
def test_dct_and_haar_bases_are_orthonormal(n: int) -> None:
    eye = torch.eye(n, dtype=torch.float64)
    dct = dct_basis(n)
    haar, bands = haar_basis(n)
    for basis in (dct, haar):
        torch.testing.assert_close(basis.T @ basis, eye)
        torch.testing.assert_close(basis @ basis.T, eye)
    i, k = 2, 3  # Eq. 4: cos(pi / n (i + 0.5)(k + 0.5)), orthonormal with sqrt(2 / n)
    assert dct[i, k].item() == pytest.approx(math.sqrt(2 / n) * math.cos(math.pi / n * 2.5 * 3.5))
    assert bands.tolist() == sorted(bands.tolist())  # coarse to fine


def test_haar_columns_run_coarse_to_fine() -> None:
    basis, bands = haar_basis(8)
    assert bands.tolist() == [0, 1, 2, 2, 3, 3, 3, 3]
    torch.testing.assert_close(basis[:, 0], torch.full((8,), 8 ** -0.5, dtype=torch.float64))
    finest = torch.zeros(8, dtype=torch.float64)
    finest[0], finest[1] = 2 ** -0.5, -2 ** -0.5
    torch.testing.assert_close(basis[:, 4], finest)
    assert haar_basis(28)[1].tolist() == [0] * 7 + [1] * 7 + [2] * 14  # halves while even


def test_band_mask_keeps_the_approximation_and_drops_whole_bands() -> None:
    masks = [band_mask(8, 4, 4, 0.5, torch.Generator().manual_seed(s)) for s in range(20)]
    bands = haar_basis(8)[1][:4]  # [0, 1, 2, 2]
    for mask in masks:
        assert mask[0, 0] == 1
        for a in range(3):
            for b in range(3):
                block = mask[bands == a][:, bands == b]
                assert (block == block.flatten()[0]).all()
    assert 0 < torch.stack(masks).mean() < 1
    assert (band_mask(8, 4, 4, 0.0, torch.Generator()) == 1).all()


def test_full_size_transforms_reconstruct_the_real_images(digits: data.Dataset) -> None:
    """With t = the image size the fixed bases are complete: the initial tensors decode to real images."""
    real = [digits.x_train[idx] for idx in digits.class_indices()]
    for decomposition in ("dct", "dwt"):
        p = NSDParams(decomposition=decomposition, spatial=8)
        layout = plan_layout(p, 1, 10, 1, 8)
        spectra, _ = initialise(layout, real, torch.Generator().manual_seed(3))
        synset = stored_set(layout, spectra, torch.arange(10), [None] * 4, torch.tensor(0.01), 8)
        x, _ = synset.training_data()
        reference = nsd._pick(real, 1, torch.Generator().manual_seed(3)).reshape(10, 1, 8, 8)
        torch.testing.assert_close(x, reference, atol=1e-5, rtol=0)


def test_hosvd_factors_are_orthonormal_and_best_in_their_mode() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 6, 1, 8, 8, generator=g)
    core, (k1, k3, k4) = hosvd(x, 3, 4, 4)
    assert core.shape == (2, 3, 1, 4, 4) and k1.shape == (1, 6, 3) and k3.shape == (1, 8, 4)
    for k in (k1, k3, k4):
        torch.testing.assert_close(k[0].T @ k[0], torch.eye(k.shape[-1]), atol=1e-5, rtol=0)
    unfold = x[0].permute(1, 0, 2, 3, 4).reshape(6, -1).double()  # batch mode unfolding
    top = torch.linalg.svd(unfold, full_matrices=False).U[:, :3]
    torch.testing.assert_close((k1[0].double() @ k1[0].double().T), top @ top.T, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- losses


def test_unroll_and_distance_are_mtts_matching_step() -> None:
    net = seeded(0, lambda: nn.Sequential(nn.Flatten(), nn.Linear(16, 3)))
    forward = flat_forward(net)
    start = flatten_params(net)
    target = start + 0.05
    x = torch.randn(9, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2] * 3)
    lr = torch.tensor(0.1)
    kwargs = dict(syn_steps=4, batch_syn=4, dsa_strategy="color_crop_cutout_scale_rotate")
    theirs = trajectory_matching_loss(forward, start, target, x, y, lr, generator=torch.Generator().manual_seed(7),
                                      **kwargs)
    theta = unroll_student(forward, start, x, y, lr, generator=torch.Generator().manual_seed(7), **kwargs)
    assert matching_distance(theta, start, target).item() == pytest.approx(theirs.item(), rel=1e-6)


def test_guided_loss_is_real_cross_entropy_at_the_student_end_point() -> None:
    """Linear student z = Wx + b, one unrolled step on the synthetic set: theta_1 = theta_0 - lr * grad; the
    guided loss is CE(W_1 x_real + b_1, y_real) and its gradient reaches the synthetic images."""
    torch.set_default_dtype(torch.float64)
    try:
        g = torch.Generator().manual_seed(2)
        net = nn.Linear(3, 2)
        w, b = torch.randn(2, 3, generator=g), torch.randn(2, generator=g)
        with torch.no_grad():
            net.weight.copy_(w)
            net.bias.copy_(b)
        start = torch.cat([w.flatten(), b])
        xs = torch.randn(4, 3, generator=g).requires_grad_(True)
        ys = torch.tensor([0, 1, 1, 0])
        xr, yr = torch.randn(5, 3, generator=g), torch.tensor([1, 0, 1, 1, 0])
        lr = torch.tensor(0.5)

        def loss_of(images: torch.Tensor) -> torch.Tensor:
            theta = unroll_student(flat_forward(net), start, images, ys, lr, syn_steps=1, batch_syn=4,
                                   dsa_strategy="none", generator=torch.Generator())
            return guided_loss(flat_forward(net), theta, xr, yr)

        loss = loss_of(xs)
        loss.backward()
        err = torch.softmax(xs.detach() @ w.T + b, 1) - F.one_hot(ys, 2)
        w1, b1 = w - 0.5 * err.T @ xs.detach() / 4, b - 0.5 * err.mean(0)
        assert loss.item() == pytest.approx(F.cross_entropy(xr @ w1.T + b1, yr).item(), rel=1e-12)
        bumped = xs.detach().clone()
        bumped[1, 2] += 1e-6
        numeric = (loss_of(bumped) - loss.detach()) / 1e-6
        assert xs.grad[1, 2].item() == pytest.approx(numeric.item(), rel=1e-4) and xs.grad.abs().sum() > 0
    finally:
        torch.set_default_dtype(torch.float32)


# ---------------------------------------------------------------------------------------------- distill


def test_distill_through_the_public_api_and_evaluate(digits: data.Dataset, experts: dict) -> None:
    spec = get_method("nsd")
    cls = spec.implementation()
    assert cls is NSD and issubclass(NSD, spec)  # the registry holds the spec; the maths subclass it
    # the same cached trajectories as MTT
    assert spec(NSDParams()).experts("digits", ARCH) == get_method("mtt")(MTTParams()).experts("digits", ARCH)
    params = cls.Params.model_validate({**preset_params("nsd", "digits", 1), **TINY})
    seen = []
    ctx = context(digits, experts, ipc=1)
    ctx.progress = lambda step, total, detail: seen.append((step, total))
    synset = cls(params).distill(ctx)
    assert seen == [(i, 4) for i in range(1, 5)]
    assert isinstance(synset, SpectralSet) and synset.format == "nsd-spectral" and synset.lr.shape == ()
    assert synset.lr.item() > 0 and synset.k_height.requires_grad is False
    init = cls(params.model_copy(update={"iterations": 0})).distill(context(digits, experts, ipc=1))
    assert not torch.equal(synset.images, init.images) and not torch.equal(synset.k_height, init.k_height)
    stored = SYNSET_FORMATS[synset.format].from_tensors(synset.tensors())
    x, y = stored.training_data()
    layout = plan_layout(params, 1, 10, 1, 8)
    assert x.shape == (10 * layout.images_per_class, 1, 8, 8) and torch.bincount(y).tolist() == \
        [layout.images_per_class] * 10
    assert stored.parameter_values <= storage_budget_bytes(1, 10, 1, 8) // 4
    recipe = PRESETS[cls.eval_preset].with_overrides({"epochs": 2})
    acc = evaluate_synset(make_net, x, y, digits.x_test, digits.y_test, recipe, seed=0,
                          dsa_strategy=digits.spec.dsa_strategy, device=torch.device("cpu"))
    assert 0 <= acc <= 100


@pytest.mark.parametrize("decomposition", ["learned", "dwt"])
def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(digits: data.Dataset, experts: dict,
                                                              tmp_path: Path, decomposition: str) -> None:
    params = NSDParams(decomposition=decomposition, **TINY)
    whole = NSD(params).distill(context(digits, experts, ipc=1, seed=2))

    class Preempted(Exception):
        pass

    def stop_at_3(step: int, total: int, detail: str) -> None:
        if step == 3:
            raise Preempted

    checkpoint = Checkpoint(tmp_path / f"{decomposition}.pt", every=2)
    first = context(digits, experts, ipc=1, seed=2, checkpoint=checkpoint)
    first.progress = stop_at_3
    with pytest.raises(Preempted):
        NSD(params).distill(first)
    assert torch.load(checkpoint.path, weights_only=True)["iteration"] == 2
    resumed = NSD(params).distill(context(digits, experts, ipc=1, seed=2, checkpoint=checkpoint))
    assert whole.tensors().keys() == resumed.tensors().keys()
    for name, tensor in whole.tensors().items():
        assert torch.equal(tensor, resumed.tensors()[name]), name


def test_distilling_from_the_stage_stored_per_expert_equals_distilling_from_memory(
        digits: data.Dataset, experts: dict, tmp_path: Path) -> None:
    from bench.experts import EXPERT_PARTS
    from bench.records import ArtifactMeta
    from bench.store import Parts, Store
    store = Store(tmp_path)
    store.save_artifact(experts, ArtifactMeta("t1", {"kind": "expert"}, 1.0, {}), parts=EXPERT_PARTS["trajectories"])
    stored = store.load_artifact("t1")[0]
    assert isinstance(stored["trajectories"], Parts)
    params = NSDParams(**TINY)
    in_memory, from_store = (NSD(params).distill(context(digits, stage, ipc=1, seed=2)) for stage in (experts, stored))
    for name, tensor in in_memory.tensors().items():
        assert torch.equal(tensor, from_store.tensors()[name]), name


def test_start_epochs_must_fit_the_trajectories(digits: data.Dataset, experts: dict) -> None:
    with pytest.raises(ValueError, match="recorded expert epochs"):
        NSD(NSDParams(iterations=1, expert_epochs=2, max_start_epoch=4)).distill(context(digits, experts, 1))


# ---------------------------------------------------------------------------------------------- presets, suites


def test_presets_validate_and_fit_the_budget() -> None:
    table = load_preset("nsd")
    assert "Neural Spectral Decomposition" in table["source"]
    for dataset, (channels, side, classes) in SHAPES.items():
        for ipc in (1, 10, 50):
            p = NSDParams(**preset_params("nsd", dataset, ipc))
            plan_layout(p, ipc, classes, channels, side)
    digits_p = NSDParams(**preset_params("nsd", "digits", 10))
    mtt_p = MTTParams(**preset_params("mtt", "digits", 10))
    assert NSD(digits_p).experts("digits", "ConvNet") == get_method("mtt")(mtt_p).experts("digits", "ConvNet")
    assert NSDParams(**preset_params("nsd", "cifar10", 1)).zca


@pytest.mark.parametrize("name", ["nsd-ablation-digits", "nsd-variants-digits", "nsd-table1"])
def test_suites_load(name: str) -> None:
    suite = load_suite(REPO / "suites" / f"{name}.yaml")
    assert any(m.cls.implementation() is NSD for m in suite.methods)


@pytest.mark.parametrize("decomposition", ["learned", "dct", "dwt", "svd"])
def test_the_harness_budget_check_counts_nsd_within_budget(decomposition: str) -> None:
    """`image_nbytes` (what the harness compares with Eq. 3) equals the parameter count in bytes."""
    from bench.methods.budget import storage_budget_bytes
    from bench.methods.nsd import NSD
    from bench.methods.specs import NSDParams
    from bench.methods.base import DistillContext
    from bench.data import load_dataset
    from bench.nets import get_network
    trajectories = {"trajectories": torch.zeros(1, 3, sum(p.numel() for p in get_network("ConvNet", 1, 10, 8)
                                                            .parameters()))}
    ctx = DistillContext(load_dataset("digits", "."), 2, 0, torch.device("cpu"),
                         lambda: get_network("ConvNet", 1, 10, 8), "color_crop",
                         experts={"trajectories": trajectories})
    params = NSDParams(iterations=0, decomposition=decomposition, max_start_epoch=1, expert_epochs=1)
    synset = NSD(params).distill(ctx)
    assert synset.image_nbytes == 4 * synset.parameter_values <= storage_budget_bytes(2, 10, 1, 8)
