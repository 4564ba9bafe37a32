"""Receptive fields: hand-computed values, and the support of an input gradient.

The gradient check: in a copy of the model with every parameter made positive and
max-pools swapped for average pools of the same geometry, every input pixel in a
position's box (clipped to the image) changes that activation, and no other does.
So the bounding box of ``d y[0, unit, row, col] / d input`` must equal the clipped box.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models.vgg import cfgs, make_layers
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from convscope.errors import GeometryError, LayerError
from convscope.network.geometry import Box, ReceptiveField, receptive_fields, unit_geometry
from oracles import support_box

RF = ReceptiveField


# ----------------------------------------------------------------- the gradient oracle


def positive_copy(model: nn.Module) -> nn.Module:
    """A copy with positive parameters, max-pools as avg-pools, and no in-place ReLU."""
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.abs() + 0.1)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                assert child.dilation in (1, (1, 1))
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
            elif hasattr(child, "inplace"):
                child.inplace = False
    return model


def uniform_fields(model: nn.Module, layers: list[str], size: tuple[int, int]) -> dict[str, ReceptiveField | None]:
    """The one field of each layer (``None`` when unknown); fails when a layer's units differ."""
    found = {}
    for name, fields in receptive_fields(model, layers, size).items():
        assert fields is None or fields.uniform is not None, (name, fields)
        found[name] = fields.uniform if fields is not None else None
    return found


def clip(box: Box, size: tuple[int, int]) -> Box | None:
    """The part of ``box`` inside the image; ``None`` when it lies in the padding alone."""
    clipped = Box(max(box.top, 0), max(box.left, 0), min(box.bottom, size[0]), min(box.right, size[1]))
    return clipped if clipped.height > 0 and clipped.width > 0 else None


def assert_matches_gradient(
    model: nn.Module, layers: list[str], size: tuple[int, int], units: list[int] | None = None,
    dims: tuple[int, int, int] = (1, 2, 3),
) -> None:
    """Corners, edge middles and the centre of every layer: computed box vs gradient support.

    For each of ``units`` (default: the middle unit) the nine positions are checked in
    one backward pass: a batch of nine copies of one random image, copy ``p``
    differentiated at position ``p`` only. ``dims``: the tensor dims of (units, rows, cols).
    With zero padding the support's bounding box must be the box clipped to the
    image; with another padding mode the support, pixel by pixel, must be what the
    box shows through the mode (:meth:`ReceptiveField.support`).
    """
    fields = receptive_fields(model, layers, size)
    oracle = positive_copy(model)
    outputs = {}
    modules = dict(oracle.named_modules())
    hooks = [modules[n].register_forward_hook(lambda m, i, o, n=n: outputs.update({n: o.clone()})) for n in layers]
    image = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(0)) + 0.5
    x = image.repeat(9, 1, 1, 1).requires_grad_()
    try:
        oracle(x)
    finally:
        for h in hooks:
            h.remove()
    for name in layers:
        assert fields[name] is not None, name
        out = outputs[name].permute(0, *dims)
        _, count, rows, cols = out.shape
        assert fields[name].units == count, (name, fields[name])
        picks = [(r, c) for r in (0, rows // 2, rows - 1) for c in (0, cols // 2, cols - 1)]
        for unit in units if units is not None else [count // 2]:
            field = fields[name].field(unit)
            chosen = torch.stack([out[p, unit, r, c] for p, (r, c) in enumerate(picks)])
            (grad,) = torch.autograd.grad(chosen.sum(), x, retain_graph=True)
            for p, (row, col) in enumerate(picks):
                if field.padding == "zeros":  # the plain oracle, independent of support()
                    assert support_box(grad[p]) == clip(field.box(row, col), size), (name, unit, row, col, field)
                else:  # every pixel the box shows through the mode (no dilation in these tests)
                    expected = _support_mask(field, row, col, size)
                    assert torch.equal(grad[p].abs().sum(dim=0) > 0, expected), (name, unit, row, col, field)


def _support_mask(field: ReceptiveField, row: int, col: int, size: tuple[int, int]) -> torch.Tensor:
    rows, cols = field.support(row, col, size)
    mask = torch.zeros(size, dtype=torch.bool)
    if rows and cols:
        mask[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]] = True
    return mask


# ----------------------------------------------------------------- hand-built nets


def test_conv_pool_conv_by_hand():
    # conv3 p1: rows [-1, 2); maxpool2: 4 wide, stride 2, from -1; conv3 p1: pool cells -1..1 -> [-3, 5).
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 5, 3, padding=1))
    fields = uniform_fields(model, ["0", "2", "3"], (16, 16))
    assert fields == {
        "0": RF((3, 3), (1, 1), (-1, -1)),
        "2": RF((4, 4), (2, 2), (-1, -1)),
        "3": RF((8, 8), (2, 2), (-3, -3)),
    }
    assert fields["3"].box(0, 0) == Box(-3, -3, 5, 5)
    assert_matches_gradient(model, ["0", "2", "3"], (16, 16))


def test_dilation_and_unpadded_stride():
    # dil 2 p2: 1 + 2*2 = 5 wide from -2; then k3 s2 p0: 5 + 2 = 7, stride 2, still from -2.
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=2, dilation=2), nn.Conv2d(4, 4, 3, stride=2))
    assert uniform_fields(model, ["1"], (15, 15))["1"] == RF((7, 7), (2, 2), (-2, -2))
    assert_matches_gradient(model, ["0", "1"], (15, 15))


def test_non_square_kernels_strides_and_input():
    # rows: k3 p1 -> (3, 1, -1); k1 s2 -> (3, 2, -1).
    # cols: k5 s2 p0 -> (5, 2, 0); k3 p1 -> (5 + 2*2, 2, 0 - 2) = (9, 2, -2).
    model = nn.Sequential(
        nn.Conv2d(3, 4, (3, 5), stride=(1, 2), padding=(1, 0)),
        nn.Conv2d(4, 4, (1, 3), stride=(2, 1), padding=(0, 1)),
    )
    assert uniform_fields(model, ["1"], (13, 31))["1"] == RF((3, 9), (2, 2), (-1, -2))
    assert_matches_gradient(model, ["0", "1"], (13, 31))


def test_pool_options_and_adaptive_pools():
    # avg k3 s2 p1 ceil: (3, 2, -1); maxpool k2 default stride: (3 + 2, 4, -1);
    # adaptive 4 -> 2 is a pool k2 s2: (5 + 4, 8, -1).
    model = nn.Sequential(
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True), nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(2),
        nn.AdaptiveAvgPool2d(2),
    )
    fields = uniform_fields(model, ["0", "1", "2", "3"], (16, 16))
    assert fields["1"] == RF((5, 5), (4, 4), (-1, -1))
    assert fields["2"] == fields["3"] == RF((9, 9), (8, 8), (-1, -1))
    assert_matches_gradient(nn.Sequential(nn.Conv2d(3, 2, 1), *model), ["1", "2", "3"], (16, 16))


class Tapped(nn.Module):
    """Runs ``body`` on a conv's output and shows the result at ``tap`` (an Identity)."""

    def __init__(self, body) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.body = body
        self.tap = nn.Identity()

    def forward(self, x):
        return self.tap(self.body(self, self.conv(x)))


def test_slicing_and_pads_shift_the_box():
    # conv (3, 1, -1); rows 1::2 -> (3, 2, 0); cols ::3 -> (3, 3, -1); then pad 2 top, 1 left.
    model = Tapped(lambda self, x: F.pad(x[:, :, 1::2, ::3], (1, 0, 2, 0)))
    assert uniform_fields(model, ["tap"], (16, 17))["tap"] == RF((3, 3), (2, 3), (-4, -4))
    assert_matches_gradient(model, ["tap"], (16, 17))


def test_channel_pad_and_cat_keep_the_field():
    model = Tapped(lambda self, x: torch.cat([F.pad(x, (0, 0, 0, 0, 1, 2)), x * 2], dim=1))
    assert uniform_fields(model, ["tap"], (8, 8))["tap"] == RF((3, 3), (1, 1), (-1, -1))


class Residual(nn.Module):
    def __init__(self, mismatched: bool = False) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1, stride=2 if mismatched else 1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        # stride 1, 16 -> 8 rows when mismatched: same shape, different stride.
        self.short = nn.Conv2d(3, 4, 9) if mismatched else nn.Conv2d(3, 4, (1, 7), padding=(0, 3))
        self.out = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.b(torch.relu(self.a(x)))
        y += self.short(x)
        return self.out(y)


def test_residual_block_is_the_union_of_its_paths():
    # main: (5, 1, -2) both axes; shortcut rows (1, 1, 0), cols (7, 1, -3).
    # union rows [-2, 3) -> (5, 1, -2); cols [-3, 4) -> (7, 1, -3).
    model = Residual()
    fields = uniform_fields(model, ["b", "out"], (12, 12))
    assert fields["b"] == RF((5, 5), (1, 1), (-2, -2))  # captured before the in-place add
    assert fields["out"] == RF((5, 7), (1, 1), (-2, -3))
    assert_matches_gradient(model, ["b", "out"], (12, 12))


def test_union_of_different_strides_is_none():
    assert uniform_fields(Residual(mismatched=True), ["b", "out"], (16, 16)) == {
        "b": RF((7, 7), (2, 2), (-3, -3)),
        "out": None,
    }


class OptionA(nn.Module):
    """A tiny CIFAR ResNet stage with the "option A" shortcut (subsample, zero-pad channels)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.shortcut = nn.Identity()
        self.out = nn.ReLU()

    def forward(self, x):
        x = torch.relu(self.stem(x))
        main = self.conv2(torch.relu(self.conv1(x)))
        return self.out(main + self.shortcut(F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))))


def test_option_a_shortcut():
    # stem (3, 1, -1); conv1 s2 p1: (5, 2, -2); conv2 p1: (9, 2, -4);
    # shortcut ::2 of the stem: (3, 2, -1) is inside conv2's box, so the union is (9, 2, -4).
    fields = uniform_fields(OptionA(), ["shortcut", "conv2", "out"], (12, 12))
    assert fields["shortcut"] == RF((3, 3), (2, 2), (-1, -1))
    assert fields["out"] == fields["conv2"] == RF((9, 9), (2, 2), (-4, -4))
    assert_matches_gradient(OptionA(), ["shortcut", "out"], (12, 12))


class NHWCBlock(nn.Module):
    """A ConvNeXt-like block: depthwise conv, then LayerNorm and an MLP in NHWC."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.dw = nn.Conv2d(8, 8, 7, padding=3, groups=8)
        self.norm = nn.LayerNorm(8)
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 8)
        self.out = nn.Identity()

    def forward(self, x):
        x = self.stem(x)
        y = self.norm(self.dw(x).permute(0, 2, 3, 1))
        y = self.fc2(F.gelu(self.fc1(y))).permute(0, 3, 1, 2)
        return self.out(x + y)


def test_nhwc_permute_block():
    # stem (4, 4, 0); dw k7 p3: (4 + 6*4, 4, -12) = (28, 4, -12); the NHWC MLP keeps it.
    fields = uniform_fields(NHWCBlock(), ["stem", "fc1", "out"], (32, 32))
    assert fields["out"] == fields["fc1"] == RF((28, 28), (4, 4), (-12, -12))
    geometry = unit_geometry(NHWCBlock(), ["fc1", "out"], (32, 32))
    assert geometry["fc1"][1] == (3, 1, 2) and geometry["out"][1] == (1, 2, 3)
    assert_matches_gradient(NHWCBlock(), ["fc1"], (32, 32), units=[0, 15], dims=(3, 1, 2))


def test_squeeze_excitation_is_global():
    model = Tapped(lambda self, x: x * torch.sigmoid(x.mean(dim=(2, 3), keepdim=True)))
    assert uniform_fields(model, ["tap"], (10, 12))["tap"] == RF((10, 12), (0, 0), (0, 0))


def test_global_box_is_what_the_map_covers():
    # k3 s3 p0 on 10 rows covers rows [0, 9) only; the pooled unit never sees row 9.
    model = nn.Sequential(nn.Conv2d(3, 2, 3, stride=3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    assert uniform_fields(model, ["1", "2"], (10, 12))["1"] == RF((9, 12), (0, 0), (0, 0))
    assert uniform_fields(model, ["2"], (10, 12))["2"] == RF((9, 12), (0, 0), (0, 0))


@pytest.mark.parametrize(
    "body",
    [
        lambda self, x: F.interpolate(x, scale_factor=2),
        lambda self, x: F.adaptive_avg_pool2d(x, 3),  # 8 -> 3: windows of uneven size
        lambda self, x: torch.cat([x, x], dim=2),
        lambda self, x: torch.softmax(x, dim=3),
        lambda self, x: torch.flip(x, dims=(2,)),
    ],
    ids=["upsample", "adaptive-uneven", "cat-rows", "softmax-cols", "flip"],
)
def test_non_local_ops_give_none(body):
    model = Tapped(body)
    model.after = nn.Conv2d(4, 4, 1)
    model.forward = lambda x: model.after(model.tap(body(model, model.conv(x))))
    assert uniform_fields(model, ["conv", "tap", "after"], (8, 8)) == {
        "conv": RF((3, 3), (1, 1), (-1, -1)),
        "tap": None,
        "after": None,
    }


# ----------------------------------------------------------------- real networks


def test_alexnet_by_hand():
    # conv k11 s4 p2: (11, 4, -2); pool k3 s2: (19, 8, -2); conv k5 p2: (19 + 4*8, 8, -2 - 16) = (51, 8, -18);
    # pool: (67, 16, -18); conv k3 p1: (99, 16, -34); (131, 16, -50); (163, 16, -66).
    model = torchvision.models.alexnet()
    fields = uniform_fields(model, ["features.0", "features.3", "features.6", "features.8", "features.10"], (224, 224))
    assert {n: (f.size[0], f.stride[0], f.offset[0]) for n, f in fields.items()} == {
        "features.0": (11, 4, -2),
        "features.3": (51, 8, -18),
        "features.6": (99, 16, -34),
        "features.8": (131, 16, -50),
        "features.10": (163, 16, -66),
    }
    assert all(f.size[0] == f.size[1] and f.offset[0] == f.offset[1] for f in fields.values())


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch, layers, size",
    [
        ("alexnet", ["0", "3", "6", "10", "12"], (127, 127)),
        ("vgg11", ["3", "8", "13", "18"], (64, 64)),
    ],
)
def test_real_feature_stacks_match_the_gradient(arch, layers, size):
    # Only the feature stacks: the big classifiers add nothing but seconds.
    features = torchvision.models.AlexNet().features if arch == "alexnet" else make_layers(cfgs["A"])
    assert_matches_gradient(features, layers, size)


@pytest.mark.slow
def test_resnet18_matches_the_gradient():
    model = torchvision.models.resnet18()
    assert_matches_gradient(model, ["maxpool", "layer1.0.bn2", "layer1.1", "layer2.0", "layer3.1", "avgpool"], (64, 64))


# ----------------------------------------------------------------- errors and hygiene


def _clean(model: nn.Module) -> bool:
    no_hooks = all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    return no_hooks and _get_current_dispatch_mode() is None


def test_nothing_survives_success_or_failure():
    model = torchvision.models.alexnet().train()
    receptive_fields(model, ["features.3"], (64, 64))
    assert _clean(model) and model.training
    with pytest.raises(LayerError):
        receptive_fields(model, ["features.99"], (64, 64))
    assert _clean(model) and model.training
    with pytest.raises(GeometryError, match="too small"):
        receptive_fields(model, ["classifier.1"], (16, 16))
    assert _clean(model) and model.training
