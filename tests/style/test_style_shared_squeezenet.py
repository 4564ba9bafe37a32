"""The real ImageNet SqueezeNet of ../shared on a real photo and painting (skipped without ../shared)."""

import pytest

from oracles import need_shared

pytestmark = pytest.mark.slow

MODEL = "models/squeezenet1_0-imagenet.pth"
PHOTO = "data/imagenet-sample/n01514668_cock.jpg"
PAINTING = "data/paintings/starry_night.jpg"


def test_squeezenet_default_layers_and_losses_fall():
    shared = need_shared(MODEL, PHOTO, PAINTING)
    from convscope.network.load import load_network
    from convscope.style import stylise

    net = load_network("torchvision:squeezenet1_0", shared / MODEL)
    result = stylise(net, shared / PHOTO, shared / PAINTING, size=48, steps=6)
    assert result.style_layers == ["features.0", "features.4", "features.7", "features.9", "features.12"]
    assert result.content_layers == ["features.8"]
    assert result.end.total < 0.5 * result.start.total
    assert max(result.style_ratios().values()) < 1.0
