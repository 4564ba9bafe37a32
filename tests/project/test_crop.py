"""The crop speed path gives the full-image pictures; a wrong geometry falls back, still right."""

from __future__ import annotations

import logging

import pytest
import torch
import torchvision

from convscope.network.geometry import ReceptiveField
from convscope.project import Rule, plan_crop, project_hits

RESNET_LAYER2 = ReceptiveField((67, 67), (8, 8), (-33, -33))  # resnet18 layer2.0, worked out by hand
ALEXNET = {
    "features.0": (ReceptiveField((11, 11), (4, 4), (-2, -2)), 64, 55),
    "features.3": (ReceptiveField((51, 51), (8, 8), (-18, -18)), 192, 27),
    "features.10": (ReceptiveField((163, 163), (16, 16), (-66, -66)), 256, 13),
}


def test_plan_crop_covers_the_box_on_the_stride_grid() -> None:
    rf = ReceptiveField((11, 11), (4, 4), (-2, -2))
    for row in range(55):
        crop = plan_crop(rf, row, row, 224, 224)
        box = rf.box(row, row)
        assert crop.top % 4 == 0 and crop.top <= max(box.top, 0)
        assert crop.top + crop.height >= min(box.bottom, 224)
        assert crop.row == row - crop.top // 4
        assert crop.height in (13, 16)


def _every_border_and_some_inner(size: int, units: int, n: int, generator: torch.Generator) -> tuple:
    edge = torch.tensor([0, 1, size - 2, size - 1])
    rows = torch.cat([edge, edge, torch.randint(0, size, (n,), generator=generator)])
    cols = torch.cat([edge, edge.flip(0), torch.randint(0, size, (n,), generator=generator)])
    return torch.randint(0, units, (len(rows),), generator=generator), rows, cols


def _fell_back(
    caplog: pytest.LogCaptureFixture,
    model: torch.nn.Module,
    layer: str,
    rf: ReceptiveField,
    hits: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    rule: Rule,
) -> bool:
    """Project ``hits`` (inputs, units, rows, cols) with crops and without; the two must agree.

    Returns whether some crop class differed and fell back to the full image.
    """
    with caplog.at_level(logging.INFO, logger="convscope.project.projection"):
        fast = project_hits(model, layer, *hits, rule, receptive_field=rf)
    full = project_hits(model, layer, *hits, rule)
    assert float((fast - full).abs().max()) <= 1e-6 * float(full.abs().max())
    return "differs" in caplog.text


@pytest.mark.slow
def test_crop_equals_full_image_on_a_residual_net(caplog: pytest.LogCaptureFixture) -> None:
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(12, 3, 96, 96, generator=g)
    units, rows, cols = _every_border_and_some_inner(12, 128, 4, g)
    assert not _fell_back(caplog, model, "layer2.0", RESNET_LAYER2, (x, units, rows, cols), "guided")


@pytest.mark.slow
def test_a_wrong_receptive_field_falls_back_to_the_full_image(caplog: pytest.LogCaptureFixture) -> None:
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(6, 3, 96, 96, generator=g)
    units, rows, cols = torch.tensor([1, 2, 3, 4, 5, 6]), torch.tensor([5, 6, 7, 5, 6, 7]), torch.tensor([4, 5, 6, 6, 5, 4])
    wrong = ReceptiveField((31, 31), (8, 8), (-9, -9))  # too small: crops cut the true box
    assert _fell_back(caplog, model, "layer2.0", wrong, (x, units, rows, cols), "deconvnet")


@pytest.mark.slow
@pytest.mark.parametrize("layer", list(ALEXNET))
def test_crop_equals_full_image_on_alexnet(layer: str, caplog: pytest.LogCaptureFixture) -> None:
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(0)
    model = torchvision.models.alexnet().eval()
    rf, units, size = ALEXNET[layer]
    u, rows, cols = _every_border_and_some_inner(size, units, 2, g)
    x = torch.randn(len(u), 3, 224, 224, generator=g)
    assert not _fell_back(caplog, model, layer, rf, (x, u, rows, cols), "deconvnet")


@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
def test_hits_sharing_an_image_share_a_forward_pass_and_get_their_own_pictures(rule: str) -> None:
    from convscope.network.geometry import receptive_fields

    torch.manual_seed(0)
    model = torchvision.models.alexnet().eval()
    layer = "features.6"
    rf = receptive_fields(model, [layer], (224, 224))[layer].uniform  # every unit of a plain conv shares one field
    images = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    # Seven hits on three images; several on the same image and position (same crop), one at a border.
    ids = [0, 0, 0, 1, 1, 2, 0]
    units = torch.tensor([5, 9, 5, 3, 4, 7, 1])
    rows = torch.tensor([6, 6, 2, 6, 6, 0, 6])
    cols = torch.tensor([6, 6, 7, 6, 6, 12, 6])
    inputs = images[ids]
    alone = project_hits(model, layer, inputs, units, rows, cols, rule, receptive_field=rf)
    shared = project_hits(model, layer, inputs, units, rows, cols, rule, receptive_field=rf, image_ids=ids)
    scale = float(alone.abs().max())
    assert float((alone - shared).abs().max()) <= 1e-5 * scale
    assert float((shared[0] - shared[1]).abs().max()) > 1e-3 * scale  # same crop, other unit: other picture


# --- A zero reference projection (dead unit, zero gradient) does not vouch for a crop class ---

TRUE_RF = ReceptiveField((5, 5), (1, 1), (-2, -2))  # two 3x3 convs with padding 1
WRONG_RF = ReceptiveField((3, 3), (1, 1), (-1, -1))  # too small: its crops cut the true box


def _dead_unit_model() -> torch.nn.Module:
    """Conv-ReLU-conv; unit 0 of the second conv has zero weights: its projections are all zeros."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3, padding=1))
    with torch.no_grad():
        model[2].weight[0] = 0.0
        model[2].bias[0] = 0.5
    return model.eval()


@pytest.fixture
def wrong_planner(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the crop planner wrong (it plans for a too small field) while the caller passes the true one."""
    import convscope.project.projection as projection

    monkeypatch.setattr(projection, "plan_crop", lambda rf, row, col, h, w: plan_crop(WRONG_RF, row, col, h, w))


@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
def test_a_zero_first_reference_does_not_vouch_for_a_wrong_crop(rule: Rule, wrong_planner: None) -> None:
    model = _dead_unit_model()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    units, rows, cols = torch.tensor([0, 1]), torch.tensor([8, 7]), torch.tensor([8, 9])  # one class, dead unit first
    full = project_hits(model, "2", x, units, rows, cols, rule)
    assert float(full[0].abs().max()) == 0.0 and float(full[1].abs().max()) > 0.0
    crop = plan_crop(WRONG_RF, 7, 9, 16, 16)  # the control: the wrong crop does change hit 1's picture
    alone = project_hits(model, "2", x[1:, :, crop.top : crop.top + crop.height, crop.left : crop.left + crop.width],
                         units[1:], torch.tensor([crop.row]), torch.tensor([crop.col]), rule)  # fmt: skip
    pasted = torch.zeros_like(full[1])
    pasted[:, crop.top : crop.top + crop.height, crop.left : crop.left + crop.width] = alone[0]
    assert float((pasted - full[1]).abs().max()) > 1e-2 * float(full[1].abs().max())
    checks: dict[tuple, bool] = {}
    fast = project_hits(model, "2", x, units, rows, cols, rule, receptive_field=TRUE_RF, crop_checks=checks)
    assert float((fast - full).abs().max()) <= 1e-6 * float(full.abs().max())
    assert list(checks.values()) == [False]  # decided by hit 1, whose reference is not zero


def test_a_class_seen_only_on_a_dead_unit_stays_undecided_for_later_calls(wrong_planner: None, caplog) -> None:
    model = _dead_unit_model()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    checks: dict[tuple, bool] = {}  # kept across calls, as the atlas does per layer
    with caplog.at_level(logging.INFO, logger="convscope.project.projection"):
        first = project_hits(model, "2", x[:2], torch.tensor([0, 0]), torch.tensor([8, 6]), torch.tensor([8, 9]),
                             "deconvnet", receptive_field=TRUE_RF, crop_checks=checks)  # fmt: skip
    assert float(first.abs().max()) == 0.0 and checks == {}  # every reference zero: full image, nothing vouched
    assert "every reference projection" in caplog.text
    units, rows, cols = torch.tensor([1]), torch.tensor([7]), torch.tensor([9])
    later = project_hits(model, "2", x[2:], units, rows, cols, "deconvnet", receptive_field=TRUE_RF, crop_checks=checks)
    full = project_hits(model, "2", x[2:], units, rows, cols, "deconvnet")
    assert float((later - full).abs().max()) <= 1e-6 * float(full.abs().max())
    assert list(checks.values()) == [False]


def test_a_right_crop_is_still_trusted_after_a_zero_reference() -> None:
    model = _dead_unit_model()
    x = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    units, rows, cols = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([8, 7, 8, 6, 9]), torch.tensor([8, 8, 7, 9, 8])
    checks: dict[tuple, bool] = {}
    fast = project_hits(model, "2", x, units, rows, cols, "guided", receptive_field=TRUE_RF, crop_checks=checks)
    full = project_hits(model, "2", x, units, rows, cols, "guided")
    assert float((fast - full).abs().max()) <= 1e-6 * float(full.abs().max())
    assert list(checks.values()) == [True]  # three zero references, then hit 3 decided it: the crop is right
