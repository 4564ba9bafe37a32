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


def _own_grams(model, mean, std, pixels, layers):
    """Gram matrices ``F Fᵀ / (C H W)`` of ``model.features``' outputs, by a plain loop (not convscope's code)."""
    import torch

    x, out = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1), {}
    with torch.no_grad():
        for index, module in enumerate(model.features):
            x = module(x)
            if f"features.{index}" in layers:
                flat = x[0].reshape(x.shape[1], -1).double()
                out[f"features.{index}"] = flat @ flat.T / flat.numel()
    return out


def test_squeezenet_defaults_reach_every_style_layers_floor_level():
    """At the defaults (256 px, 300 steps) every style layer ends at most max(1%, 1.5x its floor) of its start.

    The floor is the painting itself, resized to the result, against the target. Checked twice: by
    :func:`convscope.style.quality` and by Gram matrices of this file's own loop over ``features``
    on the saved ``uint8`` picture. Before the style layers were normalised by their start,
    ``features.7`` and ``features.9`` ended at 2.1x and 1.8x their floors (1.24% and 2.2% of their start).
    """
    shared = need_shared(MODEL, PHOTO, PAINTING)
    import numpy as np
    import torch
    from PIL import Image

    from convscope.network.load import load_network
    from convscope.style import quality, stylise
    from convscope.style.quality import CONTENT_RATIO_MAX, FLOOR_FACTOR, STYLE_RATIO_MAX

    net = load_network("torchvision:squeezenet1_0", shared / MODEL)
    result = stylise(net, shared / PHOTO, shared / PAINTING)
    check = quality(result)
    assert set(result.floor) == set(result.style_layers)
    assert check.style_met, check.lines()
    assert check.content_met and max(check.content.values()) <= CONTENT_RATIO_MAX, check.lines()

    def pixels(image, hw=None):
        if hw is not None:
            image = image.resize((hw[1], hw[0]), Image.Resampling.BICUBIC)
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)[None]

    hw = result.image.shape[:2]
    photo, painting = Image.open(shared / PHOTO).convert("RGB"), Image.open(shared / PAINTING).convert("RGB")
    scale = 256 / max(painting.size)
    own = {
        name: _own_grams(net.model, net.preprocess.mean, net.preprocess.std, px, result.style_layers)
        for name, px in (
            ("target", pixels(painting, (round(painting.size[1] * scale), round(painting.size[0] * scale)))),
            ("start", pixels(photo, hw)), ("end", pixels(Image.fromarray(result.image))), ("floor", pixels(painting, hw)),
        )
    }
    mse = {k: {n: float((g - own["target"][n]).pow(2).mean()) for n, g in own[k].items()} for k in ("start", "end", "floor")}
    for name in result.style_layers:
        ratio, floor = mse["end"][name] / mse["start"][name], mse["floor"][name] / mse["start"][name]
        assert floor == pytest.approx(result.floor_ratios()[name], rel=0.02)
        assert ratio <= max(STYLE_RATIO_MAX, FLOOR_FACTOR * floor), (name, ratio, floor)
