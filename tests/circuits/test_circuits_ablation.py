"""Batched unit ablation: planted nets with hand-computed drops, the batched way against a plain
loop of one masked full forward per unit (written here with plain hooks), the fallback over a
skip connection, Bau's test, and the real SqueezeNet's features.12."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from oracles import need_shared
from torch import nn

from convscope.circuits import ablation
from convscope.circuits.ablation import ablate, sample_images
from convscope.errors import ConvscopeError
from convscope.network.layers import LayerInfo


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def loader(x: torch.Tensor):
    return lambda indices: x[list(indices)]


def plain_logits(model: nn.Module, layer: str, x: torch.Tensor, units: int, axis: int) -> torch.Tensor:
    """``(units, N, K)``: per unit one full forward of ``x`` with that unit's output zeroed by a plain hook."""
    module = dict(model.named_modules())[layer]
    found = []
    model.eval()
    for u in range(units):
        def zero(m, i, out, u=u):
            out = out.clone()
            out.select(axis, u).zero_()
            return out

        handle = module.register_forward_hook(zero)
        try:
            with torch.no_grad():
                found.append(model(x))
        finally:
            handle.remove()
    return torch.stack(found)


def plain_drops(base: torch.Tensor, ablated: torch.Tensor, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """drops and ablated accuracy ``(units, K)`` from the logits, by loops."""
    units, _, k = ablated.shape
    drops, acc = np.full((units, k), np.nan), np.full((units, k), np.nan)
    for c in set(classes.tolist()):
        mine = np.flatnonzero(classes == c)
        for u in range(units):
            drops[u, c] = np.mean([float(base[i, c] - ablated[u, i, c]) for i in mine])
            acc[u, c] = np.mean([int(ablated[u, i].argmax()) == c for i in mine])
    return drops, acc


# ---------- planted nets ----------


class Head(nn.Module):
    """Mean over positions, then a linear read-out (no bias)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        self.linear.weight.data = weight.clone()

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.linear(a.mean(dim=(2, 3)))


def planted(weight: torch.Tensor) -> nn.Sequential:
    """Units = ReLU of a 1x1 conv whose unit u sums the input's channels times (u + 1); classes read by ``weight``."""
    units = weight.shape[1]
    conv = nn.Conv2d(3, units, 1, bias=False)
    conv.weight.data = torch.arange(1.0, units + 1).view(units, 1, 1, 1).expand(units, 3, 1, 1).clone()
    return nn.Sequential(conv, nn.ReLU(), Head(weight))


def test_zeroing_the_one_unit_a_class_reads_drops_that_class_alone_by_the_hand_computed_amount():
    weight = torch.zeros(3, 5)
    weight[0, 0], weight[0, 1], weight[1, 3], weight[2, 4] = 1.0, 0.5, 2.0, -1.5
    model = planted(weight)
    x = torch.rand(6, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    labels = [1, 1, 0, 2, 1, 0]
    found = ablate(model, LayerInfo("1", "ReLU", (5, 4, 5), None), loader(x), range(6), labels, batch_size=4, units_per_pass=2)
    unit3 = 4.0 * x.sum(dim=1).mean(dim=(1, 2)).double()  # unit 3's mean value: 4 x the channel sum (all positive)
    expected = float(2.0 * unit3[[0, 1, 4]].mean())
    assert found.drops[3, 1] == pytest.approx(expected, rel=1e-6)
    assert found.drops[3, 0] == 0 and found.drops[3, 2] == 0
    assert np.all(found.drops[[0, 1, 2, 4], 1] == 0)
    assert found.method == "batched" and found.class_by == "label"
    assert found.counts.tolist() == [2, 3, 1] and found.classes_of_images.tolist() == labels
    assert found.matters_for(3)[0][:2] == (1, pytest.approx(expected, rel=1e-6))
    assert found.units_for(1, n=1) == [(3, pytest.approx(expected, rel=1e-6))]


class Permute(nn.Module):
    def __init__(self, *order: int) -> None:
        super().__init__()
        self.order = order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.order)


def random_nets():
    torch.manual_seed(3)
    nchw = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(inplace=True), nn.Conv2d(6, 7, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(7, 4))
    nhwc = nn.Sequential(nn.Conv2d(3, 6, 3), Permute(0, 2, 3, 1), nn.ReLU(), Permute(0, 3, 1, 2), nn.Conv2d(6, 5, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 4))
    flat = nn.Sequential(nn.Conv2d(3, 6, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 4))
    return [
        ("nchw", nchw, LayerInfo("1", "ReLU", (6, 6, 6), None), 1),
        ("nhwc", nhwc, LayerInfo("2", "ReLU", (6, 6, 6), None, dims=(3, 1, 2)), 3),
        ("flat", flat, LayerInfo("4", "ReLU", (9, 1, 1), None), 1),
    ]


@pytest.mark.parametrize("name, model, layer, axis", random_nets(), ids=["nchw", "nhwc", "flat"])
def test_batched_equals_a_plain_loop_of_one_masked_forward_per_unit(name, model, layer, axis):
    x = torch.randn(7, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    found = ablate(model, layer, loader(x), range(7), None, batch_size=3, units_per_pass=2)
    with torch.no_grad():
        base = model.eval()(x)
    ablated = plain_logits(model, layer.name, x, layer.units, axis)
    classes = base.argmax(dim=1).numpy()
    drops, acc = plain_drops(base, ablated, classes)
    assert found.method == "batched" and found.class_by == "predicted"
    assert found.classes_of_images.tolist() == classes.tolist()
    np.testing.assert_allclose(found.base_logits, base.numpy(), rtol=1e-6, atol=1e-6)
    scale = float(base.abs().max())
    np.testing.assert_allclose(found.drops, drops, rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(found.ablated_accuracy, acc.astype(np.float32))
    assert np.all(found.accuracy[found.counts > 0] == 1)  # classes by prediction
    assert np.all(np.isnan(found.drops[:, found.counts == 0]))


class Skipped(nn.Module):
    """A layer with a skip connection over it: the head reads the block's input too."""

    def __init__(self, join: str) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.stem, self.layer, self.join = nn.Conv2d(3, 4, 3), nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU()), join
        self.head = nn.Linear(4 if join == "add" else 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.stem(x)
        b = self.layer(a)
        joined = b + a if self.join == "add" else torch.cat([b, a], dim=1)
        return self.head(joined.mean(dim=(2, 3)))


@pytest.mark.parametrize("join", ["add", "cat"])  # add: the dummy's one image broadcasts silently; cat: a shape error
def test_a_skip_connection_over_the_layer_falls_back_to_the_plain_way_and_stays_exact(join):
    model = Skipped(join)
    x = torch.randn(5, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    found = ablate(model, LayerInfo("layer", "Sequential", (4, 4, 4), None), loader(x), range(5), [0, 1, 2, 0, 1], batch_size=2)
    assert found.method == "plain" and hook_count(model) == 0
    with torch.no_grad():
        base = model.eval()(x)
    drops, acc = plain_drops(base, plain_logits(model, "layer", x, 4, 1), np.array([0, 1, 2, 0, 1]))
    np.testing.assert_allclose(found.drops, drops, rtol=0, atol=1e-6 * float(base.abs().max()))
    np.testing.assert_array_equal(found.ablated_accuracy, acc.astype(np.float32))


# ---------- errors, hooks, flags ----------


def test_a_sample_larger_than_the_data_is_one_clear_error():
    with pytest.raises(ConvscopeError, match=r"an ablation sample of 6 images is larger than the data \(5 images\)") as caught:
        sample_images(5, 6)
    assert caught.value.hint
    picked = sample_images(100, 10, seed=4)
    assert picked.dtype == np.int64 and len(set(picked.tolist())) == 10 and np.all(np.diff(picked) > 0)
    assert picked.tolist() == sample_images(100, 10, seed=4).tolist() != sample_images(100, 10, seed=5).tolist()


class Boom(Exception):
    pass


class Bomb(nn.Module):
    """Identity that raises on its ``at``-th call (0: never)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at:
            raise Boom
        return x


@pytest.mark.parametrize("at", [0, 1, 4, 7])  # never; in the base forward; in the probe; in a batched pass
def test_hooks_are_removed_and_flags_restored_after_success_and_after_an_exception(at):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), Bomb(at), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(), nn.Linear(4, 3))
    model.train()
    model[1].eval()
    model[0].weight.requires_grad_(False)
    flags = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    x = torch.randn(4, 3, 6, 6)
    layer = LayerInfo("2", "ReLU", (4, 4, 4), None)
    if at:
        with pytest.raises(Boom):
            ablate(model, layer, loader(x), range(4), None, batch_size=2, units_per_pass=1)
    else:
        assert ablate(model, layer, loader(x), range(4), None, batch_size=2, units_per_pass=1).method == "batched"
    assert hook_count(model) == 0
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == grads


def test_classes_outside_the_model_and_bad_arguments_are_clear_errors():
    model, x = planted(torch.ones(2, 3)), torch.rand(2, 3, 2, 2)
    layer = LayerInfo("1", "ReLU", (3, 2, 2), None)
    with pytest.raises(ConvscopeError, match=r"classes must lie in \[0, 2\)"):
        ablate(model, layer, loader(x), [0, 1], [0, 2])
    with pytest.raises(ConvscopeError, match="one class per image"):
        ablate(model, layer, loader(x), [0, 1], [0])
    with pytest.raises(ConvscopeError, match="batch size"):
        ablate(model, layer, loader(x), [0, 1], None, batch_size=0)
    with pytest.raises(ConvscopeError, match="units per pass"):
        ablate(model, layer, loader(x), [0, 1], None, units_per_pass=0)
    assert hook_count(model) == 0


def test_progress_counts_every_row_up_to_the_total():
    model, x = planted(torch.ones(2, 3)), torch.rand(5, 3, 2, 2)
    seen = []
    ablate(model, LayerInfo("1", "ReLU", (3, 2, 2), None), loader(x), range(5), None, batch_size=2, repeats=2, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (3 * 5 + 5 * 3, 3 * 5 + 5 * 3) and all(a[0] < b[0] for a, b in itertools.pairwise(seen))


# ---------- Bau's test ----------


def test_bau_top_units_beat_random_ones_by_the_hand_computed_drops():
    units, n, repeats = 8, 2, 3
    weight = torch.full((3, units), 0.1)
    for k in range(3):
        weight[k, 2 * k] = weight[k, 2 * k + 1] = 3.0  # class k reads units 2k and 2k+1
    model = planted(weight)
    x = torch.rand(9, 3, 3, 3, generator=torch.Generator().manual_seed(6))
    labels = np.array([0, 1, 2, 2, 1, 0, 0, 1, 1])
    found = ablate(model, LayerInfo("1", "ReLU", (units, 3, 3), None), loader(x), range(9), labels.tolist(), bau_n=n, repeats=repeats, seed=11, batch_size=4)
    means = torch.arange(1.0, units + 1).double()[None, :] * x.sum(dim=1).mean(dim=(1, 2)).double()[:, None]  # (N, units)
    generator = torch.Generator().manual_seed(11)
    for k in range(3):
        mine = labels == k
        top = [2 * k, 2 * k + 1]
        assert [u for u, _ in found.units_for(k, n)] == [2 * k + 1, 2 * k]  # unit 2k+1 is the stronger one
        assert found.bau_top[k] == pytest.approx(float((means[mine][:, top] * weight[k, top].double()).sum(dim=1).mean()), rel=1e-6)
        draws = [torch.randperm(units, generator=generator)[:n] for _ in range(repeats)]
        random = np.mean([float((means[mine][:, d] * weight[k, d].double()).sum(dim=1).mean()) for d in draws])
        assert found.bau_random[k] == pytest.approx(random, rel=1e-6)
    assert found.top_beats_random == 1.0 and found.bau_n == n


def test_bau_on_a_class_without_images_is_nan():
    model, x = planted(torch.ones(3, 4)), torch.rand(3, 3, 2, 2)
    found = ablate(model, LayerInfo("1", "ReLU", (4, 2, 2), None), loader(x), range(3), [0, 0, 1], bau_n=2)
    assert np.isnan(found.bau_top[2]) and np.isnan(found.bau_random[2]) and np.isnan(found.accuracy[2])
    assert found.units_for(2) == [] and [k for k, _, _ in found.matters_for(0)] == [0, 1]


# ---------- the real SqueezeNet ----------


@pytest.mark.slow
def test_real_squeezenet_features_12_batched_equals_one_forward_per_unit():
    shared = need_shared("models/squeezenet1_0-imagenet.pth", "data/imagenet-sample")
    from convscope import find_images, load_network, load_pixels, select_layers

    net = load_network("torchvision:squeezenet1_0", shared / "models/squeezenet1_0-imagenet.pth")
    (layer,) = select_layers(net.model, ["features.12"], net.preprocess.input_size)
    photos = find_images(shared / "data/imagenet-sample")
    picked = sample_images(len(photos.paths), 2, seed=0)  # 512 full forwards of 2 photos: ~20 s
    x = net.model_input(load_pixels(photos, picked.tolist(), net.preprocess))
    found = ablate(net.model, layer, lambda i: x[[int(np.searchsorted(picked, j)) for j in i]], picked, None, batch_size=1)
    assert found.method == "batched" and found.drops.shape == (512, 1000)
    with torch.no_grad():
        base = net.model.eval()(x)
    ablated = plain_logits(net.model, "features.12", x, 512, 1)  # 512 full forwards
    scale = float(base.abs().max())
    with torch.no_grad():
        output = ablation._layer_output(net.model, "features.12", x)
        fast = torch.cat([ablation._unit_rows(net.model, "features.12", x, output, 1, torch.arange(u, u + 32), True) for u in range(0, 512, 32)])
    np.testing.assert_allclose(fast.numpy(), ablated.double().numpy(), rtol=0, atol=1e-5 * scale)
    drops, acc = plain_drops(base, ablated, found.classes_of_images)
    np.testing.assert_allclose(found.drops, drops, rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(found.ablated_accuracy, acc.astype(np.float32))
    assert hook_count(net.model) == 0
