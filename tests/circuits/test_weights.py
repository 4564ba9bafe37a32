"""The weights view: which (below, upper) pairs are direct, and their kernels.

Direct pairs are hand-built (conv -> ReLU -> BatchNorm -> MaxPool -> Dropout -> conv) or
AlexNet's; the pairs that are not have a channel-mixing op between (a 1x1 conv, a residual add
of a mixed branch, a skip from before the lower layer, SqueezeNet's Fire squeeze). The kernels
are checked against the conv's weight, indexed element by element in plain loops.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from convscope.circuits.weights import direct_conv, kernels
from convscope.errors import ConvscopeError
from convscope.network.layers import LayerInfo, discover_layers

SIDE = 16


def infos(model: nn.Module, side: int = SIDE) -> dict[str, LayerInfo]:
    return {info.name: info for info in discover_layers(model, (side, side))}


def chain() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(5), nn.MaxPool2d(2), nn.Dropout(0.5), nn.Conv2d(5, 4, 3))
    with torch.no_grad():  # a BatchNorm that is not the identity
        net[2].running_mean.uniform_(-1, 1)
        net[2].running_var.uniform_(0.5, 2)
        net[2].weight.uniform_(0.5, 2)
    return net


class Residual(nn.Module):
    """``conv2(relu(conv1(x)) + mix(relu(conv1(x))))``: a mixed branch added back."""

    def __init__(self, skip_from_stem: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 5, 1)
        self.conv1, self.relu, self.mix, self.conv2 = nn.Conv2d(5, 5, 3, padding=1), nn.ReLU(), nn.Conv2d(5, 5, 1), nn.Conv2d(5, 2, 3)
        self.skip_from_stem = skip_from_stem

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.stem(x)
        y = self.relu(self.conv1(stem))
        return self.conv2(y + stem if self.skip_from_stem else y + self.mix(y))


class Fire(nn.Module):
    """SqueezeNet's Fire: a 1x1 squeeze (4 -> 4 here, so that the channel counts alone do not tell), then 1x1 and 3x3 expands concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.squeeze, self.squeeze_activation = nn.Conv2d(4, 4, 1), nn.ReLU()
        self.expand1x1, self.expand3x3 = nn.Conv2d(4, 3, 1), nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze_activation(self.squeeze(x))
        return torch.relu(torch.cat([self.expand1x1(s), self.expand3x3(s)], 1))


def fire_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), Fire(), nn.Conv2d(6, 2, 1))


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_a_conv_relu_batchnorm_pool_dropout_conv_chain_is_direct() -> None:
    net = chain()
    net.train()
    layers = infos(net)
    assert direct_conv(net, layers["0"], layers["5"], torch.rand(2, 3, SIDE, SIDE)) is net[5]
    assert net.training and net[4].training and no_hooks(net)  # modes given back, hooks removed
    # every layer between is channel-wise too: from the ReLU, the BatchNorm, the pool
    for below in ("1", "2", "3", "4"):
        assert direct_conv(net, layers[below], layers["5"], torch.rand(2, 3, SIDE, SIDE)) is net[5], below


def test_kernels_are_the_weight_slices_unit_by_unit() -> None:
    conv = chain()[5]
    weight = conv.weight.detach().numpy()
    for unit in range(4):
        inputs = [4, 0, 2]
        found = kernels(conv, unit, inputs)
        assert found.shape == (3, 3, 3) and found.dtype == np.float32
        for i, c in enumerate(inputs):
            for r in range(3):
                for s in range(3):
                    assert found[i, r, s] == weight[unit][c][r][s]
    assert kernels(conv, 0, []).shape == (0, 3, 3)


def test_kernels_reject_units_outside_the_conv() -> None:
    conv = chain()[5]
    with pytest.raises(ConvscopeError, match="output channels"):
        kernels(conv, 4, [0])
    with pytest.raises(ConvscopeError, match="input channels"):
        kernels(conv, 0, [5])


def test_a_1x1_channel_mixing_conv_between_is_not_direct() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 5, 1), nn.ReLU(), nn.Conv2d(5, 2, 3))
    layers = infos(net)
    assert direct_conv(net, layers["1"], layers["4"], torch.rand(2, 3, SIDE, SIDE)) is None
    assert direct_conv(net, layers["3"], layers["4"], torch.rand(2, 3, SIDE, SIDE)) is net[4]
    assert no_hooks(net)


@pytest.mark.parametrize("skip_from_stem", [False, True], ids=["mixed-branch", "skip-from-before"])
def test_a_residual_add_between_is_not_direct(skip_from_stem: bool) -> None:
    net = Residual(skip_from_stem)
    layers = infos(net)
    # skip-from-before: each channel still depends only on its own lower channel, but also on the stem
    assert direct_conv(net, layers["relu"], layers["conv2"], torch.rand(2, 3, SIDE, SIDE)) is None
    assert no_hooks(net)


def test_a_fire_block_is_not_direct_but_its_expands_are() -> None:
    net = fire_net()
    layers = infos(net)
    x = torch.rand(2, 3, SIDE, SIDE)
    assert direct_conv(net, layers["1"], layers["2.expand3x3"], x) is None  # through the squeeze
    assert direct_conv(net, layers["1"], layers["2.expand1x1"], x) is None
    assert direct_conv(net, layers["1"], layers["2"], x) is None  # not a conv
    assert direct_conv(net, layers["2.squeeze_activation"], layers["2.expand3x3"], x) is net[2].expand3x3
    assert direct_conv(net, layers["2"], layers["3"], x) is net[3]  # the concatenation is the lower layer itself
    assert no_hooks(net)


def test_a_pair_the_wrong_way_round_or_with_other_channel_counts_is_not_direct() -> None:
    net = chain()
    layers = infos(net)
    x = torch.rand(1, 3, SIDE, SIDE)
    assert direct_conv(net, layers["5"], layers["0"], x) is None  # the conv runs first (and has 3 inputs)
    grouped = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, groups=2))
    g = infos(grouped)
    assert direct_conv(grouped, g["1"], g["2"], x) is None
    assert no_hooks(net) and no_hooks(grouped)


def test_hooks_are_removed_when_the_forward_fails() -> None:
    net = chain()
    layers = infos(net)
    with pytest.raises(RuntimeError):
        direct_conv(net, layers["0"], layers["5"], torch.rand(1, 4, SIDE, SIDE))  # 4 input channels
    assert no_hooks(net)


def test_alexnet_conv1_to_conv2_is_direct() -> None:
    torch.manual_seed(0)
    model = torchvision.models.alexnet()  # random weights, no download
    layers = infos(model, 112)
    x = torch.rand(2, 3, 112, 112)
    assert direct_conv(model, layers["features.0"], layers["features.3"], x) is model.features[3]
    assert direct_conv(model, layers["features.1"], layers["features.3"], x) is model.features[3]
    assert direct_conv(model, layers["features.3"], layers["features.6"], x) is model.features[6]
    assert direct_conv(model, layers["features.0"], layers["features.6"], x) is None  # 64 units, 192 inputs
    weight = model.features[3].weight.detach().numpy()
    found = kernels(model.features[3], 7, [63, 1])
    assert found.shape == (2, 5, 5) and (found[0] == weight[7, 63]).all() and (found[1] == weight[7, 1]).all()
