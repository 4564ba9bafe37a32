"""Gram matrices and losses against direct computations; the default layers; colour preservation."""

import numpy as np
import pytest
import torch
import torchvision

from convscope.style import blend_grams, default_style_layers, gram, preserve_colour, style_loss, tv_loss, vgg_names


def test_gram_equals_a_loop_and_einsum():
    f = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    n, c, h, w = f.shape
    loop = torch.zeros(n, c, c)
    for b in range(n):
        for i in range(c):
            for j in range(c):
                loop[b, i, j] = sum(f[b, i, r, q] * f[b, j, r, q] for r in range(h) for q in range(w)) / (c * h * w)
    torch.testing.assert_close(gram(f), loop)
    torch.testing.assert_close(gram(f), torch.einsum("nihw,njhw->nij", f, f) / (c * h * w))
    assert gram(f).shape == (2, 3, 3)


def test_gram_refuses_a_flat_tensor():
    with pytest.raises(ValueError, match="N, C, H, W"):
        gram(torch.zeros(1, 3))


def test_style_loss_is_zero_on_its_own_target_and_blend_is_the_weighted_mean():
    f = torch.rand(1, 4, 6, 6)
    assert float(style_loss(f, gram(f))) == 0.0
    a, b = torch.ones(1, 2, 2), torch.zeros(1, 2, 2)
    torch.testing.assert_close(blend_grams([a, b], [3.0, 1.0]), torch.full((1, 2, 2), 0.75))
    with pytest.raises(ValueError):
        blend_grams([a, b], [1.0])


def test_tv_loss_by_hand():
    x = torch.zeros(1, 3, 2, 2)
    x[..., 0, 0] = 1.0  # one bright corner: 1 vertical and 1 horizontal jump per channel
    assert float(tv_loss(x)) == pytest.approx(3 / 6 + 3 / 6)
    assert float(tv_loss(torch.ones(1, 3, 5, 5))) == 0.0


def test_vgg19_gatys_layers():
    model = torchvision.models.vgg19()
    names = vgg_names(model)
    convs = [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.Conv2d)]
    assert len(names) == 16 and sorted(int(v.split(".")[1]) for v in names.values()) == convs
    content, style = default_style_layers(model, (64, 64))
    assert style == ["features.0", "features.5", "features.10", "features.19", "features.28"]
    assert content == ["features.21"]


def test_other_networks_get_the_documented_rule():
    content, style = default_style_layers(torchvision.models.squeezenet1_0(), (64, 64))
    assert style == ["features.0", "features.4", "features.7", "features.9", "features.12"]
    assert content == ["features.8"]


def test_preserve_colour_keeps_the_luminance_of_the_result_and_the_hue_of_the_content():
    rng = np.random.default_rng(0)
    stylised, content = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    out = preserve_colour(stylised, content)
    lum = lambda im: im.astype(float) @ [0.299, 0.587, 0.114]  # noqa: E731
    assert np.abs(lum(out) - lum(stylised)).mean() < 12  # clipping out of gamut moves a little
    assert np.array_equal(preserve_colour(content, content), content)
