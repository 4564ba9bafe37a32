"""The real ImageNet SqueezeNet 1.0 of ../shared on a dog photo: relevances equal a plain autograd loop."""

from __future__ import annotations

import pytest
import torch
import torchvision

from convscope import explain, load_network
from helpers import plain_relevance
from oracles import need_shared

pytestmark = pytest.mark.slow
SHARED = need_shared("models/squeezenet1_0-imagenet.pth", "data/imagenet-sample/n02088364_beagle.jpg")
LAYERS = ["features.0", "features.5", "features.12", "classifier"]


def test_real_squeezenet_on_a_beagle():
    weights = SHARED / "models" / "squeezenet1_0-imagenet.pth"
    net = load_network("torchvision:squeezenet1_0", weights)
    result = explain(net, SHARED / "data/imagenet-sample/n02088364_beagle.jpg", layers=LAYERS, top=5, heatmaps=False)
    assert result.class_name == "beagle" and result.target == result.predicted == 162
    oracle = torchvision.models.squeezenet1_0()
    oracle.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    x = net.model_input(torch.from_numpy(result.image).permute(2, 0, 1)[None])
    expected = plain_relevance(oracle, x, LAYERS, 162)
    for layer in result.layers:
        r = expected[layer.layer]
        for u in layer.units:
            assert u.relevance == pytest.approx(float(r[u.unit]), rel=1e-5)
        assert layer.total == pytest.approx(float(r.sum()), rel=1e-5)
    assert result.layer("classifier").units[0].relevance == pytest.approx(result.logit, rel=1e-6)
