"""LRP on the real ImageNet SqueezeNet 1.0 of ../shared (in-place ReLUs, as torchvision builds it):
channel relevances and conditional heatmaps equal zennit + zennit-crp's CondAttribution with EpsilonPlusFlat."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from convscope import explain, load_network
from convscope.explain import class_gradients
from helpers import crp_heatmaps, zennit_lrp
from oracles import need_module, need_shared

pytestmark = pytest.mark.slow
SHARED = need_shared(
    "models/squeezenet1_0-imagenet.pth", "data/imagenet-sample/n02088364_beagle.jpg", "data/imagenet-sample/n01443537_goldfish.jpg"
)
need_module("zennit")
need_module("crp")
LAYERS = ["features.0", "features.3", "features.12", "classifier"]  # the first conv, a Fire module, the last Fire, the logits
TOL = 1e-4


def close(found: torch.Tensor, expected: torch.Tensor, tol: float = TOL) -> None:
    found, expected = found.double(), expected.double()
    assert float((found - expected).abs().max() / expected.abs().max()) < tol


@pytest.fixture(scope="module")
def net():
    return load_network("torchvision:squeezenet1_0", SHARED / "models/squeezenet1_0-imagenet.pth")


def input_of(net, photo: str, size: int) -> torch.Tensor:
    """The photo squashed to ``size`` px square, normalised: ``(1, 3, size, size)``."""
    image = Image.open(SHARED / "data/imagenet-sample" / photo).convert("RGB").resize((size, size))
    return net.model_input(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None])


@pytest.mark.parametrize("photo", ["n02088364_beagle.jpg", "n01443537_goldfish.jpg"])
def test_channel_relevances_equal_crp_at_128_px(net, photo):
    x = input_of(net, photo, 128)
    found = class_gradients(net.model, x, LAYERS, method="lrp")
    expected, heatmap = zennit_lrp(net.model, x, LAYERS, found.target)
    for name in LAYERS:
        close(found.layers[name].relevance, expected[name])
    close(found.input_heatmap(x), heatmap)
    assert float(found.layers["classifier"].relevance[found.target]) == pytest.approx(float(found.logits[found.target]), rel=1e-6)


def test_explain_lrp_at_224_equals_crp_relevances_and_conditional_heatmaps(net):
    """The whole explain() path (channels-last heatmap passes, the logits' shortcut) on the beagle."""
    result = explain(net, SHARED / "data/imagenet-sample/n02088364_beagle.jpg", layers=LAYERS, top=3, method="lrp")
    assert result.class_name == "beagle" and result.method == "LRP epsilon-plus-flat"
    x = net.model_input(torch.from_numpy(result.image).permute(2, 0, 1)[None])
    expected, _ = zennit_lrp(net.model, x, LAYERS, result.target)
    for layer in result.layers:
        r = expected[layer.layer]
        order = sorted((u for u in range(len(r)) if r[u] != 0), key=lambda u: (-float(r[u]), u))[:3]
        assert [u.unit for u in layer.units] == order
        for u in layer.units:
            assert u.relevance == pytest.approx(float(r[u.unit]), rel=TOL, abs=TOL * float(r.abs().max()))
        assert layer.total_abs == pytest.approx(float(r.abs().sum()), rel=TOL)
        units = [u.unit for u in layer.units]
        heat = crp_heatmaps(net.model, x, layer.layer, units, result.target)
        for u, h in zip(layer.units, heat):
            close(u.heatmap, h)
