"""Receptive fields per unit: concatenated branches, grouped convs, NHWC layers, default layers.

Every expectation is hand-computed and checked against the support of the input
gradient of single units on both sides of each concatenation (the oracle of
``test_geometry``: positive weights, so nothing cancels).
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch import nn

from convscope.errors import ConvscopeWarning, LayerError
from convscope.network.geometry import ReceptiveField, UnitFields, receptive_fields, unit_geometry
from convscope.network.layers import LayerInfo, conv_layers, discover_layers, select_layers, to_nchw
from network.test_geometry import assert_matches_gradient

RF = ReceptiveField


def fields_of(ranges: list[tuple[int, int, RF]]) -> UnitFields:
    return UnitFields(tuple(ranges))


# ----------------------------------------------------------------- hand-built nets


class Fire(nn.Module):
    """SqueezeNet's Fire after a stem: a 1x1 and a 3x3 expand branch, concatenated."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2)
        self.squeeze = nn.Conv2d(4, 3, 1)
        self.e1, self.e3 = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 5, 3, padding=1)
        self.out = nn.ReLU()
        self.after = nn.Conv2d(9, 2, 1)

    def forward(self, x):
        s = torch.relu(self.squeeze(self.stem(x)))
        y = self.out(torch.cat([torch.relu(self.e1(s)), torch.relu(self.e3(s))], 1))
        return self.after(y)


def test_fire_module_units_keep_their_branch_field():
    # stem k3 s2: (3, 2, 0); e1: the same; e3 k3 p1: (3 + 2*2, 2, -2) = (7, 2, -2);
    # after (1x1 over all 9 channels): the union (7, 2, -2).
    fields = receptive_fields(Fire(), ["out", "after"], (15, 15))
    assert fields["out"] == fields_of([(0, 4, RF((3, 3), (2, 2), (0, 0))), (4, 9, RF((7, 7), (2, 2), (-2, -2)))])
    assert fields["after"].uniform == RF((7, 7), (2, 2), (-2, -2))
    assert fields["out"].field(3).size == (3, 3) and fields["out"].field(4).size == (7, 7)
    assert_matches_gradient(Fire(), ["out"], (15, 15), units=[0, 3, 4, 8])


class Branches(nn.Module):
    """Concatenations, channel slices, a depthwise and a grouped conv, a shuffle and residual adds."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 3, padding=1)
        self.cat = nn.Identity()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = nn.Conv2d(8, 6, 1, groups=2)
        self.shuffle = nn.ChannelShuffle(2)
        self.tall = nn.Conv2d(3, 8, (5, 1), padding=(2, 0))
        self.added = nn.Identity()
        self.sliced = nn.Identity()
        self.pair = nn.Identity()
        self.twice = nn.Identity()

    def forward(self, x):
        y = self.cat(torch.cat([self.a(x), self.b(x)], 1))
        d = self.dw(y)
        g = self.grouped(d)
        s = self.shuffle(y)
        p = torch.cat([self.a(x)[:, :2], self.b(x)[:, :2], self.b(x)], 1)  # 2 + 6 channels
        t = self.twice(torch.cat([y, s[:, :3], d], 1))  # three per-channel parts of different lengths
        q = torch.cat([self.tall(x)[:, :5], self.a(x)[:, :3]], 1)  # 5 + 3 channels
        return t.sum() + g.sum() + s.sum() + self.added(y + self.tall(x)).sum() + self.sliced(y[:, 3:6]).sum() + self.pair(p + q).sum()


ONE, THREE = RF((1, 1), (1, 1), (0, 0)), RF((3, 3), (1, 1), (-1, -1))


def test_depthwise_grouped_shuffled_sliced_and_added_channels():
    model = Branches()
    layers = ["cat", "dw", "grouped", "shuffle", "added", "sliced", "pair", "twice"]
    fields = receptive_fields(model, layers, (12, 12))
    assert fields["cat"] == fields_of([(0, 4, ONE), (4, 8, THREE)])
    # depthwise k3 p1: each channel grows by 2 on its own.
    assert fields["dw"] == fields_of([(0, 4, THREE), (4, 8, RF((5, 5), (1, 1), (-2, -2)))])
    # groups=2: output group k (3 channels) sees input group k (4 channels).
    assert fields["grouped"] == fields_of([(0, 3, THREE), (3, 6, RF((5, 5), (1, 1), (-2, -2)))])
    # shuffle of 2 groups of 4: output i is input (i % 2) * 4 + i // 2: a, b, a, b, ...
    assert [fields["shuffle"].field(i) for i in range(8)] == [ONE, THREE] * 4
    # + a (5, 1) conv: per channel the union (rows 5, cols 1 or 3).
    assert fields["added"] == fields_of([(0, 4, RF((5, 1), (1, 1), (-2, 0))), (4, 8, RF((5, 3), (1, 1), (-2, -1)))])
    assert fields["sliced"] == fields_of([(0, 1, ONE), (1, 3, THREE)])
    # segments cut at 2 and at 5: 0-1 one+tall, 2-4 three+tall, 5-7 three+one.
    assert fields["pair"] == fields_of(
        [(0, 2, RF((5, 1), (1, 1), (-2, 0))), (2, 5, RF((5, 3), (1, 1), (-2, -1))), (5, 8, THREE)]
    )
    five = RF((5, 5), (1, 1), (-2, -2))
    assert fields["twice"] == fields_of(
        [(0, 4, ONE), (4, 8, THREE), (8, 9, ONE), (9, 10, THREE), (10, 11, ONE), (11, 15, THREE), (15, 19, five)]
    )
    assert_matches_gradient(model, ["twice"], (12, 12), units=[8, 9, 14, 15])
    assert_matches_gradient(model, layers, (12, 12), units=[0, 1, 2])
    assert_matches_gradient(model, ["cat", "dw", "grouped", "shuffle", "added", "pair"], (12, 12), units=[3, 4, 5])
    assert_matches_gradient(model, ["cat", "dw", "added", "pair"], (12, 12), units=[7])


class Mixers(nn.Module):
    """A two-field tensor through operators that keep or unite its channels."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.linear = nn.Linear(8, 5)
        self.norm = nn.LayerNorm(8)
        self.taps = nn.ModuleDict({k: nn.Identity() for k in ("bn", "softmax", "mean", "nhwc", "linear", "norm", "flat")})

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], 1)
        t = self.taps
        nhwc = t["nhwc"](y.permute(0, 2, 3, 1))
        n, c, h, w = y.shape
        flat = y.reshape(n, c * h, w).reshape(n, c, h, w)
        outs = [t["bn"](self.bn(y)), t["softmax"](torch.softmax(y, 1)), t["mean"](y.mean(1, keepdim=True)),
                t["linear"](self.linear(nhwc)), t["norm"](self.norm(nhwc)), t["flat"](flat)]
        return sum(o.sum() for o in outs)


def test_channel_mixing_ops_unite_and_channel_wise_ops_keep():
    model = Mixers()
    geometry = unit_geometry(model, ["taps.bn", "taps.softmax", "taps.mean", "taps.nhwc", "taps.linear", "taps.norm", "taps.flat"], (9, 9))
    two = fields_of([(0, 4, ONE), (4, 8, THREE)])
    assert geometry["taps.bn"] == (two, (1, 2, 3))  # eval batch norm: per channel
    assert geometry["taps.nhwc"] == (two, (3, 1, 2))
    for name in ("taps.softmax", "taps.mean"):
        assert geometry[name][0].uniform == THREE, name
    assert geometry["taps.linear"] == (UnitFields.of(THREE, 5), (3, 1, 2))
    assert geometry["taps.norm"] == (UnitFields.of(THREE, 8), (3, 1, 2))
    assert geometry["taps.flat"] == (None, None)  # a view merging per-channel fields with rows
    assert_matches_gradient(model, ["taps.bn", "taps.softmax", "taps.mean"], (9, 9), units=[0])
    assert_matches_gradient(model, ["taps.linear", "taps.norm", "taps.nhwc"], (9, 9), units=[0, 4], dims=(3, 1, 2))


class Shuffled(nn.Module):
    """A ShuffleNet-V2 unit: half the channels kept, half through a branch, then shuffled by views."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.functional = functional
        self.stem = nn.Conv2d(3, 8, 1)
        self.branch = nn.Conv2d(4, 4, 3, padding=1)
        self.out = nn.Identity()

    def forward(self, x):
        x1, x2 = self.stem(x).chunk(2, dim=1)
        y = torch.cat([x1, self.branch(x2)], 1)
        if self.functional:
            return self.out(nn.functional.channel_shuffle(y, 2))
        n, c, h, w = y.shape  # torchvision's shufflenetv2.channel_shuffle
        return self.out(y.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, -1, h, w))


def test_channel_shuffle_by_views_is_exact():
    by_op = receptive_fields(Shuffled(True), ["out"], (10, 10))["out"]
    by_views = receptive_fields(Shuffled(False), ["out"], (10, 10))["out"]
    assert by_op == by_views and [by_views.field(i) for i in range(8)] == [ONE, THREE] * 4
    assert_matches_gradient(Shuffled(False), ["out"], (10, 10), units=[0, 1, 6, 7])
    assert by_views.text() == "8 unit ranges: 1 s1 o0 | 3 s1 o-1"


# ----------------------------------------------------------------- real networks


@pytest.mark.slow
def test_squeezenet_fire_halves():
    # conv k7 s2: (7, 2, 0); maxpool k3 s2: (11, 4, 0); Fire: expand1x1 (11, 4, 0), expand3x3 p1 (19, 4, -4).
    model = torchvision.models.squeezenet1_0()
    fields = receptive_fields(model, ["features.3"], (65, 65))["features.3"]
    assert fields == fields_of([(0, 64, RF((11, 11), (4, 4), (0, 0))), (64, 128, RF((19, 19), (4, 4), (-4, -4)))])
    assert_matches_gradient(model.features, ["3"], (65, 65), units=[5, 100])  # 65: conv1 reaches the last row


@pytest.mark.slow
def test_shufflenet_units_alternate_after_the_shuffle():
    # stage2.0: conv1 k3 s2 p1 (3, 2, -1); pool k3 s2 p1 (7, 4, -3); both branches end (15, 8, -7).
    # stage2.1: the kept half (15, 8, -7); the branch (1x1, dw k3 p1, 1x1) (31, 8, -15); shuffled: alternate.
    model = torchvision.models.shufflenet_v2_x0_5()
    fields = receptive_fields(model, ["stage2.1"], (64, 64))["stage2.1"]
    kept, branch = RF((15, 15), (8, 8), (-7, -7)), RF((31, 31), (8, 8), (-15, -15))
    assert [fields.field(u) for u in range(48)] == [kept, branch] * 24
    assert_matches_gradient(model, ["stage2.1"], (64, 64), units=[0, 1, 46, 47])


@pytest.mark.slow
def test_googlenet_inception_branches():
    # conv1 k7 s2 p3 (7, 2, -3); pool k3 s2 ceil (11, 4, -3); conv2 1x1, conv3 k3 p1 (19, 4, -7);
    # pool (27, 8, -7). inception3a: 1x1 branch (27, 8, -7); 3x3 branches and pool+1x1 (43, 8, -15).
    model = torchvision.models.googlenet(aux_logits=False, init_weights=False)
    fields = receptive_fields(model, ["inception3a"], (64, 64))["inception3a"]
    assert fields == fields_of([(0, 64, RF((27, 27), (8, 8), (-7, -7))), (64, 256, RF((43, 43), (8, 8), (-15, -15)))])
    assert_matches_gradient(model, ["inception3a"], (64, 64), units=[0, 100, 200, 250])


@pytest.mark.slow
def test_densenet_block_output():
    # conv0 k7 s2 p3 (7, 2, -3); pool0 k3 s2 p1 (11, 4, -5); dense layer k (1x1 over all, 3x3 p1):
    # (11 + 8k, 4, -5 - 4k); the block output is its input, then each layer's 32 channels.
    model = torchvision.models.densenet121()
    fields = receptive_fields(model, ["features.denseblock1"], (64, 64))["features.denseblock1"]
    expected = [(0, 64, RF((11, 11), (4, 4), (-5, -5)))]
    expected += [(32 + 32 * k, 64 + 32 * k, RF((11 + 8 * k,) * 2, (4, 4), (-5 - 4 * k,) * 2)) for k in range(1, 7)]
    assert fields == fields_of(expected)
    assert_matches_gradient(model.features, ["denseblock1"], (64, 64), units=[0, 64, 255])


@pytest.mark.slow
def test_convnext_channels_last_layers():
    # stem k4 s4 (4, 4, 0); depthwise k7 p3 (28, 4, -12); LayerNorm and Linear over C keep it.
    model = torchvision.models.convnext_tiny()
    infos = {i.name: i for i in discover_layers(model, (64, 64))}
    norm, fc = infos["features.1.0.block.2"], infos["features.1.0.block.3"]
    assert (norm.shape, norm.dims) == ((96, 16, 16), (3, 1, 2))
    assert (fc.shape, fc.dims) == ((384, 16, 16), (3, 1, 2))
    assert fc.fields.uniform == RF((28, 28), (4, 4), (-12, -12)) and fc.fields.units == 384
    assert infos["features.1.0.block.0"].dims == (1, 2, 3)
    assert [i.name for i in select_layers(model, ["features.1.0.block.4"], (64, 64))] == ["features.1.0.block.4"]
    assert_matches_gradient(model.features, ["1.0.block.4"], (64, 64), units=[0, 383], dims=(3, 1, 2))


# ----------------------------------------------------------------- layouts and layer choice


def test_to_nchw_round_trip():
    x = torch.randn(2, 5, 6, 7)
    nchw = to_nchw(x, (3, 1, 2))
    assert nchw.shape == (2, 7, 5, 6) and torch.equal(nchw[:, 4, 2, 3], x[:, 2, 3, 4])
    assert torch.equal(nchw.permute(0, 2, 3, 1), x) and to_nchw(x, (1, 2, 3)) is not None
    assert torch.equal(to_nchw(x, (1, 2, 3)), x)


class Tokens(nn.Module):
    """A patch embedding, tokens (N, L, C), and an NHWC map whose geometry is lost (a flip)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.mlp = nn.Linear(8, 8)
        self.lost = nn.Identity()
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        e = self.embed(x)
        t = self.mlp(e.flatten(2).transpose(1, 2))
        nhwc = self.lost(torch.flip(e.permute(0, 2, 3, 1), dims=(1,)))
        return t.sum() + nhwc.sum() + self.up(e).sum()


def test_tokens_and_unknown_layouts_are_refused_clearly():
    model = Tokens()
    infos = {i.name: i for i in discover_layers(model, (16, 16))}
    assert "mlp" not in infos  # tokens: not listed
    assert infos["lost"].dims is None and infos["lost"].fields is None
    assert infos["up"].dims == (1, 2, 3) and infos["up"].fields is None and infos["up"].shape == (8, 8, 8)
    with pytest.raises(LayerError, match="tokens"):
        select_layers(model, ["mlp"], (16, 16))
    with pytest.raises(LayerError, match="layout is not known"):
        select_layers(model, ["lost"], (16, 16))
    assert [i.name for i in select_layers(model, ["up"], (16, 16))] == ["up"]


@pytest.mark.slow
def test_squeeze_excitation_layers_keep_their_layout():
    # global fields: the layout survives the pool, the 1x1 convs on (N, C, 1, 1) and the gate.
    model = torchvision.models.mobilenet_v3_small()
    names = ["features.1.block.1.avgpool", "features.1.block.1.fc2", "features.1.block.1.scale_activation", "features.1"]
    geometry = unit_geometry(model, names, (64, 64))
    assert all(dims == (1, 2, 3) for _, dims in geometry.values()), geometry
    assert all(fields.uniform == RF((64, 64), (0, 0), (0, 0)) for fields, _ in geometry.values())
    infos = {i.name: i for i in select_layers(model, names, (64, 64))}
    assert infos["features.1.block.1.scale_activation"].shape == (16, 1, 1)


@pytest.mark.slow
def test_every_conv_request_skips_convs_that_never_run():
    model = torchvision.models.googlenet(aux_logits=True, init_weights=False)
    with pytest.warns(ConvscopeWarning, match=r"2 Conv2d layer\(s\) do not run.*aux1\.conv\.conv, aux2\.conv\.conv"):
        names = conv_layers(model, (64, 64))
    assert "aux1.conv.conv" not in names and names[0] == "conv1.conv" and len(names) == 57
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert conv_layers(torchvision.models.alexnet(), (64, 64)) == [f"features.{i}" for i in (0, 3, 6, 8, 10)]


def test_unit_fields_json_and_layer_info():
    fields = fields_of([(0, 4, ONE), (4, 8, RF((3, 3), (1, 1), (-1, -1), padding="reflect"))])
    items = fields.to_list()
    assert items[1] == {"units": [4, 8], "size": [3, 3], "stride": [1, 1], "offset": [-1, -1], "padding": "reflect"}
    assert UnitFields.from_list(items) == fields and fields.uniform is None
    assert fields.text() == "units 0-3: 1 s1 o0; 4-7: 3 s1 o-1 reflect"
    info = LayerInfo("x", "ReLU", (8, 5, 5), fields)
    assert info.receptive_field is None and info.to_dict()["receptive_fields"] == items
    with pytest.raises(ValueError):
        fields_of([(0, 4, ONE), (5, 8, ONE)])
    with pytest.raises(IndexError):
        fields.field(8)
