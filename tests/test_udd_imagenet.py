"""UDD's Table 8 (ImageNet-10): IDC's ResNetAP-10, IDC's multi-formation at factor 3 (decode, bounded
decode, 'mix' init) against hand computations, the imagenet10 presets, a tiny factor-3 distillation, and the
suite that validates, plans and maps every cell to Table 8."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from bench import data, nets
from bench.methods.base import SYNSET_FORMATS, Checkpoint, DistillContext
from bench.methods.presets import resolve_params
from bench.methods.specs import UDD as UDDSpec
from bench.methods.specs import UDDParams
from bench.methods.udd import UDD, ZoomSet, bound_decode, zoom_decode, zoom_real_init
from bench.recipes import PRESETS
from conftest import REPO

SUITE = REPO / "suites" / "udd-table8-imagenet.yaml"
# Bilinear (align_corners=False) x3 upsampling of a side of 2: the source coordinate of each of the 6 output
# pixels, clamped to [0, 1].
W2TO6 = [0, 0, 1 / 3, 2 / 3, 1, 1]


def test_resnetap10_is_idcs_network_and_takes_imagenet10() -> None:
    assert nets.check_input("resnetap-10", 3, 10, 224) == "ResNetAP-10"
    assert nets.min_image_size("ResNetAP-10", 3) == 8
    torch.manual_seed(0)
    net = nets.get_network("ResNetAP-10", 3, 10, 224)
    # 4,910,922 parameters, as IDC's models/resnet_ap.py gives for ResNetAP('imagenet', 10, 10,
    # norm_type='instance', size=224): stem 9,536 + stages 73,984 + 230,144 + 919,040 + 3,673,088 + fc 5,130.
    assert sum(p.numel() for p in net.parameters()) == 4_910_922
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].kernel_size == (7, 7) and all(m.stride == (1, 1) and m.bias is None for m in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert all(m.num_groups == m.num_channels for m in net.modules() if isinstance(m, nn.GroupNorm))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert net(x).shape == (2, 10) and net.embed(x).shape == (2, 512)
    # IDC's size rule: a 3x3 stem without pooling up to 64 px, 2x2 pooling up to 128 px.
    assert nets.get_network("ResNetAP-10", 3, 10, 32).conv1.kernel_size == (3, 3)
    assert isinstance(nets.get_network("ResNetAP-10", 3, 10, 100).pool, nn.AvgPool2d)


def test_factor_three_decode_splits_a_6x6_image_into_nine_upsampled_pieces() -> None:
    ramp = (6 * torch.arange(6.0).view(6, 1) + torch.arange(6.0)).expand(1, 1, 6, 6)  # value 6r + c
    pieces = zoom_decode(ramp, 3, torch.tensor([0.5]))
    assert pieces.shape == (9, 1, 6, 6)
    w = torch.tensor(W2TO6)
    for k, (i, j) in enumerate((i, j) for i in range(3) for j in range(3)):  # row-major, IDC's order
        assert torch.allclose(pieces[k, 0], 12 * i + 2 * j + 6 * w.view(6, 1) + w.view(1, 6), atol=1e-5)


def test_decode_pads_with_the_fill_to_a_multiple_of_the_factor() -> None:
    """7 px at factor 3: crops of 3 px on a 9 px canvas whose last two rows and columns are the fill."""
    images = torch.rand(2, 3, 7, 7)
    fill = torch.tensor([-1.0, 0.0, 2.0])
    pieces = zoom_decode(images, 3, fill).view(9, 2, 3, 7, 7)
    # Output rows 4-6 of a 3 -> 7 upsampling read source rows 1 and 2 only, all padding in the bottom crops.
    assert torch.allclose(pieces[6:, :, :, 4:, :], fill.view(1, 1, 3, 1, 1).expand(3, 2, 3, 3, 7))
    assert torch.equal(pieces[6, :, :, 0, 0], images[:, :, 6, 0])  # output row 0 reads source row 0
    assert torch.allclose(pieces[0], F.interpolate(images[:, :, :3, :3], size=(7, 7), mode="bilinear"))


def test_bounded_decode_keeps_idcs_counts() -> None:
    """IDC's decode_zoom_bound with bound 128 at IPC 20: 12 images at x3, 3 at x2, 5 as stored (125)."""
    x, fill = torch.rand(20, 3, 12, 12), torch.zeros(3)
    out = bound_decode(x, 3, fill, 128)
    assert out.shape == (125, 3, 12, 12)
    assert torch.equal(out[:108], zoom_decode(x[:12], 3, fill))
    assert torch.equal(out[108:120], zoom_decode(x[12:15], 2, fill)) and torch.equal(out[120:], x[15:])
    assert bound_decode(torch.rand(10, 3, 12, 12), 3, fill, 128).shape == (90, 3, 12, 12)  # IPC 10 fits


def test_mix_init_puts_distinct_real_images_in_the_cells() -> None:
    """7 px at factor 3: cells of 3, 2 and 2 px (IDC gives the first side % factor cells a pixel more)."""
    real = [torch.arange(20.0).view(20, 1, 1, 1).expand(20, 1, 7, 7) + 100 * c for c in range(2)]
    init = zoom_real_init(real, 2, 3, torch.Generator().manual_seed(0))
    assert init.shape == (4, 1, 7, 7)
    for n, image in enumerate(init):
        spans = ((0, 3), (3, 2), (5, 2))
        cells = [image[0, t:t + h, l:l + w] for t, h in spans for l, w in spans]
        values = [float(cell[0, 0]) for cell in cells]
        assert all(bool((cell == v).all()) for cell, v in zip(cells, values))
        assert len(set(values)) == 9 and all(100 * (n // 2) <= v < 100 * (n // 2) + 20 for v in values)


def test_zoom_set_stores_factor_and_fill_and_decodes() -> None:
    synset = ZoomSet(torch.rand(4, 3, 6, 6), torch.tensor([0, 0, 1, 1]), factor=torch.tensor(3), fill=torch.zeros(3))
    assert SYNSET_FORMATS["idc-zoom"] is ZoomSet
    again = ZoomSet.from_tensors(synset.tensors())
    x, y = again.training_data()
    assert x.shape == (36, 3, 6, 6) and y.tolist() == [0, 0, 1, 1] * 9
    assert synset.image_nbytes == 4 * 3 * 6 * 6 * 4 and synset.nbytes == synset.image_nbytes + 4 * 8 + 8 + 3 * 4


def test_params_and_imagenet10_presets() -> None:
    assert UDDParams(factor=3).factor == 3
    with pytest.raises(ValidationError):
        UDDParams(factor=0)
    with pytest.raises(ValidationError):
        UDDParams(decode="multi")
    p10, p20 = (resolve_params(UDDSpec, "imagenet10", ipc, {}) for ipc in (10, 20))
    assert (p10.factor, p10.iterations, p10.inner_loop, p10.lr_img, p10.lr_img_decay_at, p10.metric) == \
        (3, 500, 100, 0.003, [], "l1")
    assert (p10.pretrain_epochs, p10.net_cutmix_prob, p10.n_data, p10.batch_real, p10.batch_syn_max) == \
        (10, 1.0, 500, 64, 128)
    assert (p10.num_regions, len(p10.region_scales) * 4, p10.cfc) == (8, 12, True)
    assert (p10.decode, p20.decode) == ("single", "bound")
    r = PRESETS["idc-imagenet"]
    assert (r.epochs, r.batch_size, r.lr, r.decay_at, r.decay_factor, r.passes, r.cutmix_prob, r.dsa_mode) == \
        (1000, 64, 0.01, (2 / 3, 5 / 6), 0.2, 1000, 1.0, "idc")


def test_tiny_factor_three_distillation(digits: data.Dataset) -> None:
    spec = digits.spec
    ctx = DistillContext(digits, 2, 0, torch.device("cpu"),
                         lambda: nets.get_network("ConvNetW32", spec.channels, spec.num_classes, spec.image_size),
                         spec.dsa_strategy, checkpoint=Checkpoint())
    params = UDDParams(iterations=1, inner_loop=1, batch_real=8, batch_syn_max=12, n_data=16, net_batch=64,
                       factor=3, decode="bound", metric="l1", pretrain_epochs=1, num_regions=2)
    synset = UDD(params).distill(ctx)
    assert isinstance(synset, ZoomSet) and synset.images.shape == (20, 1, 8, 8) and int(synset.factor) == 3
    assert torch.allclose(synset.fill, (0.5 - torch.tensor(spec.mean)) / torch.tensor(spec.std))
    assert synset.problems(2, spec) == []
    x, y = synset.training_data()
    assert x.shape == (180, 1, 8, 8) and torch.bincount(y).tolist() == [18] * 10


def test_the_suite_validates_plans_and_maps_every_cell_to_table8(bench) -> None:
    from bench.config import load_suite
    from bench.plan import expected_cells, make_plan, report_options
    from bench.report.aggregate import aggregate
    from bench.report.views import reported_table

    assert bench("validate", str(SUITE))[0] == 0
    code, out, _ = bench("run", str(SUITE), "--dry-run")
    assert code == 0 and "29 to run (0 expert, 5 whole, 4 distill, 20 evaluate)" in out
    suite = load_suite(SUITE)
    assert suite.distill_arch == "ResNetAP-10" and suite.eval_archs == ("ResNetAP-10",)
    options = report_options(suite)
    assert options.seeds == (0, 1, 2, 3, 4) and options.distill_seeds == (0,) and options.whole_epochs == 300
    assert {n for n, _ in options.deviations} == {"udd-imagenet-metric", "udd-imagenet-schedule",
                                                  "idc-imagenet-augment"}
    table = reported_table(aggregate(expected_cells(make_plan(suite)), []), options)
    found = {}
    for row in (r for g in table.groups for r in g.rows):
        dataset, ipc, arch, _, reported, _, source, _ = (c.text for c in row.cells)
        assert (dataset, arch, source) == ("imagenet10", "ResNetAP-10", "UDD, Table 8")
        found[row.labels[0], ipc] = (row.cells[4].note, reported)
    assert found == {("IDC", "10"): ("IDC", "72.8"), ("IDC", "20"): ("IDC", "76.6"),
                     ("UDD", "10"): ("Ours", "73.2"), ("UDD", "20"): ("Ours", "77.1"),
                     ("Whole Dataset", ""): ("Whole Dataset", "90.8")}


def test_the_suite_uses_the_presets_it_names() -> None:
    from bench.config import load_suite
    suite = load_suite(SUITE)
    for entry in suite.methods:
        assert entry.preset == "idc-imagenet" and entry.recipe == PRESETS["idc-imagenet"]
        for ipc in (10, 20):
            p = entry.params_for("imagenet10", ipc)
            assert (p.factor, p.metric) == (3, "l1")
            assert (p.num_regions, p.cfc) == ((0, False) if entry.label == "IDC" else (8, True))
