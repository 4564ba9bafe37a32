"""Default layers: the stem and every block, found from where the data flow narrows to one tensor.

Hand-built nets with answers known by construction, then torchvision's families
(random weights, small inputs) against the lists the rule is documented to give.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch import nn

from convscope.errors import LayerError
from convscope.network.blocks import find_blocks, trace
from convscope.network.layers import conv_layers, default_layers, select_layers
from convscope.network.torchscript import to_hookable
from tiny_models import fire_net, tiny_alexnet


def blocks(model: nn.Module, size: int = 32) -> list[str]:
    """The rule's blocks before the scannable filter (fast: one traced forward, no geometry)."""
    model.eval()
    x = torch.zeros(1, 3, size, size)
    with torch.no_grad(), trace(model, x) as t:
        model(x)
    return find_blocks(model, t)


def names(model: nn.Module, requested: list[str] | None, size: int = 32) -> list[str]:
    return [info.name for info in select_layers(model, requested, (size, size))]


def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, padding=1)


class Block(nn.Module):
    """A residual block: conv-bn-relu-conv-bn, plus the input (or its 1x1 projection), in-place ReLU after the add."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu = conv(c_in, c_out, stride), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
        self.conv2, self.bn2 = conv(c_out, c_out), nn.BatchNorm2d(c_out)
        self.down = nn.Conv2d(c_in, c_out, 1, stride) if (c_in, stride) != (c_out, 1) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += x if self.down is None else self.down(x)
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn, self.relu = conv(3, 8), nn.BatchNorm2d(8), nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(Block(8, 8), Block(8, 8))
        self.layer2 = nn.Sequential(Block(8, 16, 2))  # one block: named by the block
        self.layer3 = nn.Sequential(nn.Sequential(Block(16, 16)), nn.Identity())  # still the block
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.relu(self.bn(self.stem(x))))))
        return self.fc(self.pool(x).flatten(1))


class Mixed(nn.Module):
    """Inception-like: three branches from one input, concatenated."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(c, 4, 1)
        self.b3 = nn.Sequential(nn.Conv2d(c, 4, 1), nn.ReLU(), conv(4, 4))
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.cat([self.b1(x), self.b3(x), self.pool(x)], 1))


class Gate(nn.Module):
    """Squeeze-and-excitation: a 1x1-conv gate computed from the input, multiplied into it."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool, self.fc1, self.fc2 = nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, 2, 1), nn.Conv2d(2, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(self.pool(x)))))


class GatedBlock(nn.Module):
    """An MBConv without skip: expand, depthwise, gate, project; a chain, yet one block by its class."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.expand, self.dw = nn.Conv2d(c_in, 16, 1), nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.gate, self.project = Gate(16), nn.Conv2d(16, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.gate(torch.relu(self.dw(torch.relu(self.expand(x))))))


def test_a_plain_chain_keeps_every_conv():
    model = nn.Sequential(conv(3, 4), nn.ReLU(inplace=True), nn.MaxPool2d(2), conv(4, 6), nn.ReLU(), conv(6, 6),
                          nn.Flatten(), nn.LazyLinear(2))
    assert blocks(model) == ["0", "3", "5"]
    assert default_layers(model, (32, 32)) == ["0", "3", "5"] == conv_layers(model, (32, 32))
    assert names(tiny_alexnet(), None) == ["features.0", "features.3"]


def test_a_residual_net_gives_its_stem_and_blocks_with_the_innermost_name():
    model = ResNet()
    expected = ["stem", "layer1.0", "layer1.1", "layer2.0", "layer3.0.0"]
    assert blocks(model) == expected
    assert names(model, None) == expected
    assert len(names(model, ["convs"])) == 10  # stem, 2 + 2, 2 + the projection, 2


def test_a_branching_block_is_one_layer():
    model = nn.Sequential(conv(3, 8), nn.ReLU(), Mixed(8), Mixed(12), conv(12, 4))
    assert blocks(model) == ["0", "2", "3", "4"]


def test_gating_inside_a_block_and_a_gate_between_blocks():
    model = nn.Sequential(conv(3, 8), GatedBlock(8, 8), GatedBlock(8, 12), Gate(12), nn.AdaptiveAvgPool2d(1))
    # The gate's pool and 1x1 convs are branches (the input is read again by the product):
    # neither the gate's parts nor the block's parts are cuts, the blocks and the top gate are.
    assert blocks(model) == ["0", "1", "2", "3"]


class AddOutside(nn.Module):
    """The block's output is added to its input outside it: not a cut, so not a layer."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.head = conv(3, 8), conv(8, 4)
        self.branch, self.relu = nn.Sequential(conv(8, 8), nn.ReLU(), conv(8, 8)), nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.branch(x)
        y += x
        return self.head(self.relu(y))


def test_in_place_operations_after_a_block():
    assert blocks(AddOutside()) == ["stem", "head"]
    # In place ReLU after the add inside the block: the block's output is stamped by the ReLU, still a cut.
    model = nn.Sequential(conv(3, 8), Block(8, 8), nn.ReLU(inplace=True), Block(8, 8))
    assert blocks(model) == ["0", "1", "3"]
    # An in-place ReLU changes the tensor the conv returned: the pair is the layer, not the conv.
    pairs = nn.Sequential(nn.Sequential(conv(3, 4), nn.ReLU(inplace=True)), nn.Sequential(conv(4, 4), nn.ReLU(inplace=True)))
    assert blocks(pairs) == ["0", "1"]


class Preallocated(nn.Module):
    """Half of the stem copied into a tensor made from scratch: writing into its view makes it depend on the input."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.head = conv(3, 8), conv(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        buf = torch.zeros(s.shape[0], 8, *s.shape[2:])
        buf[:, :4] = s[:, :4]
        return self.head(buf)


def test_writes_into_a_view_reach_its_base():
    assert blocks(Preallocated()) == ["stem", "head"]


class Holder(nn.Module):
    """Blocks in a ModuleList (never called itself), behind a normalisation in a wrapper."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv(3, 8), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.ModuleList([Block(8, 8), Block(8, 8)])
        self.shared = Block(8, 8)  # called twice: its two outputs cannot be told apart

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.shared(self.shared(x))


class Normalise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) / 0.25


def test_module_lists_shared_modules_and_wrappers():
    assert blocks(Holder()) == ["stem", "blocks.0", "blocks.1"]
    wrapped = nn.Sequential(Normalise(), Holder())
    assert blocks(wrapped) == ["1.stem", "1.blocks.0", "1.blocks.1"]  # the wrapped net is split like the root
    assert blocks(fire_net(), 12) == ["fire"]  # a wrapper of one block: the block


class TwoBranches(nn.Module):
    """Nothing is a cut between input and output: the rule finds no block."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = conv(3, 4), conv(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.a(x), self.b(x)], 1)


def test_no_block_falls_back_to_every_conv():
    model = TwoBranches()
    assert blocks(model) == []
    assert default_layers(model, (16, 16)) == ["a", "b"] == names(model, None, 16)


def test_keywords_ask_for_blocks_or_every_conv():
    model = ResNet()
    assert names(model, ["blocks", "stem"]) == ["stem", "layer1.0", "layer1.1", "layer2.0", "layer3.0.0"]
    assert names(model, ["layer1.0", "convs"])[:4] == ["layer1.0", "stem", "layer1.0.conv1", "layer1.0.conv2"]
    with pytest.raises(LayerError, match="keywords blocks"):
        names(model, ["layer9.*"])


def test_every_conv_warns_about_convs_that_never_run():
    with pytest.warns(Warning, match=r"1 Conv2d layer\(s\) do not run.*unused"):
        assert names(fire_net(), ["convs"], 12) == ["fire.squeeze", "fire.expand1x1", "fire.expand3x3"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert names(fire_net(), None, 12) == ["fire"]  # the block rule does not look at unused convs


def test_no_hook_survives_a_trace():
    model = ResNet()
    x = torch.zeros(1, 3, 16, 16)
    with pytest.raises(RuntimeError), torch.no_grad(), trace(model, x):
        model(torch.zeros(1, 5, 16, 16))  # wrong channel count
    with torch.no_grad(), trace(model, x):
        model(x)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def staged(pattern: str, depths: dict) -> list[str]:
    """``pattern`` with every stage and block index, ``staged("l{}.{}", {1: 2}) == ["l1.0", "l1.1"]``."""
    return [pattern.format(stage, j) for stage, depth in depths.items() for j in range(depth)]


INCEPTIONS = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
MIXED = ["5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"]
TORCHVISION = {
    "resnet18": (64, ["conv1", *staged("layer{}.{}", {1: 2, 2: 2, 3: 2, 4: 2})]),
    "efficientnet_b0": (64, ["features.0", *staged("features.{}.{}", {1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 1}),
                             "features.8"]),
    "mobilenet_v2": (64, [f"features.{i}" for i in range(19)]),
    "densenet121": (64, ["features.conv0", *[f"features.{kind}{i}" for i in (1, 2, 3) for kind in ("denseblock", "transition")],
                         "features.denseblock4"]),
    "googlenet": (64, ["conv1", "conv2", "conv3", *[f"inception{s}" for s in INCEPTIONS]]),
    "squeezenet1_0": (64, [f"features.{i}" for i in (0, 3, 4, 5, 7, 8, 9, 10, 12)] + ["classifier"]),
    "regnet_y_400mf": (64, ["stem", *staged("trunk_output.block{0}.block{0}-{1}", {1: 1, 2: 3, 3: 6, 4: 6})]),
    "convnext_tiny": (64, ["features.0", *staged("features.{}.{}", {1: 3}), "features.2.1", *staged("features.{}.{}", {3: 3}),
                           "features.4.1", *staged("features.{}.{}", {5: 9}), "features.6.1", *staged("features.{}.{}", {7: 3})]),
    "inception_v3": (299, ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                           *[f"Mixed_{s}" for s in MIXED]]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TORCHVISION))
def test_torchvision_families(name):
    size, expected = TORCHVISION[name]
    kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = getattr(torchvision.models, name)(**kwargs)
    assert blocks(model, size) == expected


@pytest.mark.slow
def test_scannable_defaults_and_every_conv_on_real_networks():
    assert names(torchvision.models.alexnet(), None, 64) == [f"features.{i}" for i in (0, 3, 6, 8, 10)]
    assert names(torchvision.models.vgg11(), None, 32) == [f"features.{i}" for i in (0, 3, 6, 8, 11, 13, 16, 18)]
    model = torchvision.models.resnet50()
    chosen = select_layers(model, None, (64, 64))
    assert [i.name for i in chosen] == ["conv1", *staged("layer{}.{}", {1: 3, 2: 4, 3: 6, 4: 3})]
    assert sum(i.units for i in chosen) == 64 + 3 * 256 + 4 * 512 + 6 * 1024 + 3 * 2048
    assert len(names(model, ["convs"], 64)) == 53


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_models_give_the_eager_blocks(how, tmp_path):
    """A converted Sequential is known by its original class name; other classes stay blocks."""
    eager = ResNet().eval()
    x = torch.zeros(1, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.jit.script(eager) if how == "script" else torch.jit.trace(eager, x, check_trace=False)
    torch.jit.save(compiled, tmp_path / "model.pt")
    model = to_hookable(torch.jit.load(tmp_path / "model.pt"))
    assert blocks(model) == blocks(eager) == ["stem", "layer1.0", "layer1.1", "layer2.0", "layer3.0.0"]
