"""A unit's inputs from the layer below: planted wiring with known answers, and every way of feeding
the hits (crops, whole lower maps, whole images) against an independent autograd loop, one hit at a time."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from convscope.circuits.inputs import HitTable, LayerInputs, NoPathError, circuit_inputs
from convscope.network.layers import select_layers


def plain_inputs(model: nn.Module, below: str, upper: str, x: torch.Tensor, unit: int, row: int, col: int) -> torch.Tensor:
    """The oracle: ``(C_below,)`` gradient x activation of one hit, by plain autograd on one whole
    image, in a copy of the model whose ReLUs are not in place (so the captured output stays the
    layer's own)."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    seen = {}
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o)) for name in (below, upper)]
    try:
        with torch.enable_grad():
            model(x)
            out = seen[upper]
            out = out[:, :, None, None] if out.dim() == 2 else out
            (gradient,) = torch.autograd.grad(out[0, unit, row, col], seen[below])
    finally:
        for handle in handles:
            handle.remove()
    lower = seen[below].detach()
    lower, gradient = (t[:, :, None, None] if t.dim() == 2 else t for t in (lower, gradient))
    return (lower.double() * gradient.double()).sum(dim=(2, 3))[0]


def random_hits(info, images: int, count: int, seed: int = 0) -> HitTable:
    g = np.random.default_rng(seed)
    units, rows, cols = info.shape
    return HitTable(
        g.integers(0, units, count), g.integers(0, images, count), g.integers(0, rows, count), g.integers(0, cols, count)
    )


def check_against_loop(model, names, x, method, hit_count=12, rtol=1e-5):
    infos = select_layers(model, names, tuple(x.shape[2:]))
    pairs = list(zip(infos[:-1], infos[1:]))
    tables = {upper.name: random_hits(upper, len(x), hit_count, seed=i) for i, (_, upper) in enumerate(pairs)}
    found = circuit_inputs(model, pairs, tables, lambda ids: x[ids], batch_size=3, hit_batch=5, method=method)
    for result, (below, upper) in zip(found, pairs):
        table = tables[upper.name]
        expected = np.zeros_like(result.contributions)
        for u, i, r, c in zip(table.units, table.images, table.rows, table.cols):
            expected[u] += plain_inputs(model, below.name, upper.name, x[i : i + 1], u, r, c).numpy()
        expected /= np.maximum(np.bincount(table.units, minlength=upper.units), 1)[:, None]
        scale = max(np.abs(expected).max(), 1e-12)
        assert np.abs(result.contributions - expected).max() <= rtol * scale, (upper.name, result.method)
    return found


def squeeze_like() -> nn.Module:
    """Padding, strides, a ceil-mode pool and a concatenation, as in SqueezeNet."""

    class Fire(nn.Module):
        def __init__(self, c_in: int, squeeze: int, expand: int) -> None:
            super().__init__()
            self.squeeze = nn.Conv2d(c_in, squeeze, 1)
            self.e1 = nn.Conv2d(squeeze, expand, 1)
            self.e3 = nn.Conv2d(squeeze, expand, 3, padding=1)

        def forward(self, x):
            s = torch.relu(self.squeeze(x))
            return torch.cat([torch.relu(self.e1(s)), torch.relu(self.e3(s))], 1)

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 5, stride=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
        Fire(6, 4, 4), Fire(8, 4, 5), nn.MaxPool2d(3, 2, ceil_mode=True), Fire(10, 4, 6),
        nn.Conv2d(12, 7, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    ).eval()


@pytest.mark.parametrize("method", ["auto", "crop", "expand", "full"])
def test_every_way_equals_a_plain_autograd_loop(method):
    model = squeeze_like()
    x = torch.randn(5, 3, 67, 61)
    found = check_against_loop(model, ["0", "3", "4", "6", "7"], x, method)
    if method == "auto":  # a network of local operations: crops agree, so they are used
        assert [f.method for f in found] == ["crop"] * 4
    else:
        assert all(f.method == method for f in found)


def test_the_logits_layer_is_built_from_the_layer_below():
    model = squeeze_like()
    x = torch.randn(4, 3, 64, 64)
    found = check_against_loop(model, ["6", "10"], x, "auto")
    assert found[0].method == "expand"  # a global layer: no crop, the lower maps whole


def test_planted_unit_relu_2a_minus_3b():
    """u = relu(2a - 3b) at one position: a contributes 2a, b contributes -3b, exactly."""
    lower = nn.Conv2d(3, 2, 1, bias=False)  # a = x0, b = x1
    upper = nn.Conv2d(2, 1, 1, bias=False)
    with torch.no_grad():
        lower.weight.zero_()
        lower.weight[0, 0] = lower.weight[1, 1] = 1.0
        upper.weight[0, 0], upper.weight[0, 1] = 2.0, -3.0
    model = nn.Sequential(lower, upper, nn.ReLU())
    x = torch.zeros(1, 3, 5, 5)
    x[0, 0, 2, 3], x[0, 1, 2, 3] = 4.0, 1.5  # u = relu(8 - 4.5) = 3.5 at (2, 3)
    infos = select_layers(model, ["0", "2"], (5, 5))
    table = HitTable(*(np.array([v]) for v in (0, 0, 2, 3)))
    [found] = circuit_inputs(model, [(infos[0], infos[1])], {"2": table}, lambda ids: x[ids])
    assert found.contributions[0].tolist() == [8.0, -4.5]
    assert found.activations[0] == 3.5
    assert found.top(0, sign=1) == [(0, 8.0 / 12.5, 8.0)]
    assert found.top(0, sign=-1) == [(1, -4.5 / 12.5, -4.5)]


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.relu(self.conv(x) + x)


def test_a_residual_block_passes_its_input_through_the_skip():
    """With the block's conv at zero, unit c of relu(conv(x) + x) is built from unit c of x alone."""
    block = Residual(3)
    nn.init.zeros_(block.conv.weight)
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(), block).eval()
    x = torch.rand(2, 3, 9, 9)
    infos = select_layers(model, ["1", "2"], (9, 9))
    table = HitTable(np.array([0, 1, 2]), np.array([0, 1, 1]), np.array([4, 0, 8]), np.array([4, 8, 0]))
    [found] = circuit_inputs(model, [(infos[0], infos[1])], {"2": table}, lambda ids: x[ids])
    with torch.no_grad():
        lower = torch.relu(model[0](x))
    for unit, image, row, col in zip(table.units, table.images, table.rows, table.cols):
        expected = np.zeros(3)
        expected[unit] = float(lower[image, unit, row, col])
        np.testing.assert_allclose(found.contributions[unit], expected, rtol=1e-6, atol=1e-7)


def test_a_residual_block_with_weights_equals_the_loop():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), Residual(4), Residual(4)).eval()
    check_against_loop(model, ["1", "2", "3"], torch.randn(3, 3, 12, 12), "auto")


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 1, 1, bias=False)
        self.b = nn.Conv2d(2, 1, 1, bias=False)

    def forward(self, x):
        return torch.cat([x, self.a(x), self.b(x)], 1)


def test_a_concatenation_routes_each_part_to_its_own_inputs():
    """cat([x, a(x), b(x)]): units 0, 1 are x's own units; unit 2 = 5 x1 reads only x1; unit 3 = -x0 + x1."""
    cat = Concat()
    with torch.no_grad():
        cat.a.weight.copy_(torch.tensor([0.0, 5.0]).view(1, 2, 1, 1))
        cat.b.weight.copy_(torch.tensor([-1.0, 1.0]).view(1, 2, 1, 1))
    model = nn.Sequential(nn.Conv2d(3, 2, 1), cat).eval()
    x = torch.rand(1, 3, 4, 4)
    infos = select_layers(model, ["0", "1"], (4, 4))
    table = HitTable(np.arange(4), np.zeros(4, np.int64), np.full(4, 1), np.full(4, 2))
    [found] = circuit_inputs(model, [(infos[0], infos[1])], {"1": table}, lambda ids: x[ids])
    with torch.no_grad():
        a0, a1 = model[0](x)[0, :, 1, 2].tolist()
    expected = [[a0, 0], [0, a1], [0, 5 * a1], [-a0, a1]]
    np.testing.assert_allclose(found.contributions, expected, rtol=1e-6, atol=1e-7)


def test_without_biases_the_contributions_add_up_to_the_activation():
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(3, 5, 3, bias=False), nn.ReLU(), nn.Conv2d(5, 6, 3, stride=2, bias=False), nn.ReLU(), nn.MaxPool2d(2)
    ).eval()
    x = torch.randn(3, 3, 20, 20)
    infos = select_layers(model, ["1", "4"], (20, 20))
    table = random_hits(infos[1], 3, 10)
    [found] = circuit_inputs(model, [(infos[0], infos[1])], {"4": table}, lambda ids: x[ids])
    hit = found.hits > 0
    np.testing.assert_allclose(found.contributions[hit].sum(axis=1), found.activations[hit], rtol=1e-6, atol=1e-6)


class TwoBranches(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(3, 2, 1)
        self.right = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return self.left(x) + 0 * self.right(x).detach()


def test_a_pair_with_no_path_between_them_is_one_clear_error():
    model = nn.Sequential(TwoBranches()).eval()
    infos = select_layers(model, ["0.right", "0"], (4, 4))
    table = HitTable(*(np.zeros(1, np.int64) for _ in range(4)))
    with pytest.raises(NoPathError, match="no path"):
        circuit_inputs(model, [(infos[0], infos[1])], {"0": table}, lambda ids: torch.rand(len(ids), 3, 4, 4))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_an_upper_layer_that_runs_first_is_one_clear_error():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU()).eval()
    infos = select_layers(model, ["0", "1"], (4, 4))
    table = HitTable(*(np.zeros(1, np.int64) for _ in range(4)))
    with pytest.raises(NoPathError, match="runs before"):
        circuit_inputs(model, [(infos[1], infos[0])], {"0": table}, lambda ids: torch.rand(len(ids), 3, 4, 4))


def test_no_hook_survives_and_the_mode_is_given_back():
    model = squeeze_like().train()
    x = torch.randn(2, 3, 40, 40)
    infos = select_layers(model, ["3", "4"], (40, 40))
    circuit_inputs(model, [(infos[0], infos[1])], {"4": random_hits(infos[1], 2, 4)}, lambda ids: x[ids])
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


def test_top_and_shares():
    found = LayerInputs("b", "a", np.array([[1.0, -2.0, 3.0, 0.0, 3.0]]), np.array([5.0]), np.array([2]), "crop")
    assert found.shares[0].tolist() == pytest.approx([1 / 9, -2 / 9, 3 / 9, 0, 3 / 9])
    assert [c for c, _, _ in found.top(0, 2)] == [2, 4]  # ties: the lower unit first
    assert [c for c, _, _ in found.top(0, 8, sign=-1)] == [1]


@pytest.mark.slow
def test_real_squeezenet_equals_the_loop():
    """Every default layer of the real ImageNet SqueezeNet from the one before it, on three photos:
    crops where they agree, and the same contributions as the plain loop to 1e-5."""
    from oracles import need_shared

    from convscope import load_network
    from convscope.data import image_source
    from convscope.data.dataset import load_pixels

    shared = need_shared("models/squeezenet1_0-imagenet.pth", "data/imagenet-sample")
    net = load_network("torchvision:squeezenet1_0", shared / "models" / "squeezenet1_0-imagenet.pth")
    images = image_source(shared / "data" / "imagenet-sample")
    x = net.preprocess.normalize(load_pixels(images, [3, 207, 950], net.preprocess))
    names = ["features.0", "features.3", "features.5", "features.7", "features.10", "features.12", "classifier"]
    found = check_against_loop(net.model, names, x, "auto", hit_count=4)
    assert [f.method for f in found] == ["crop"] * 5 + ["expand"]
