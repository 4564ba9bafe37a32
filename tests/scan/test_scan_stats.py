"""The scan's bottom hits and statistics against brute force, on hand-built units with known answers."""

import numpy as np
import pytest
import torch
from torch import nn

from convscope.scan.scan import scan
from convscope.stats import class_selectivity, hit_purity, top_class

IMAGES, SIDE = 40, 6


def units_net() -> nn.Module:
    """Four 3x3 units on pixels in [0, 1]: dead (-1 everywhere), always on (+1), red-only (R - 0.5 at the centre tap), random."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.tensor([-1.0, 1.0, -0.5, 0.0]))
        conv.weight[2, 0, 1, 1] = 1.0
        conv.weight[3].normal_()
    return nn.Sequential(conv)


def data() -> tuple[torch.Tensor, torch.Tensor]:
    """``(IMAGES, 3, SIDE, SIDE)`` uint8: even images pure red (class 0), odd ones random without red (class 1)."""
    g = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (IMAGES, 3, SIDE, SIDE), dtype=torch.uint8, generator=g)
    pixels[:, 0] = 0
    pixels[0::2] = 0
    pixels[0::2, 0] = 255
    labels = torch.arange(IMAGES) % 2
    return pixels, labels


def run(k: int = 5):
    pixels, labels = data()
    batches = [(pixels[s : s + 7], torch.arange(s, min(s + 7, IMAGES)), torch.ones(len(pixels[s : s + 7]), dtype=torch.bool), [""] * 7) for s in range(0, IMAGES, 7)]
    result = scan(units_net(), [("0", 4)], batches, lambda p: p.float() / 255, k=k, labels=labels.tolist(), classes=2, progress=False)
    with torch.no_grad():
        acts = units_net()(pixels.float() / 255).reshape(IMAGES, 4, -1)
    return result.layers["0"], acts, labels


def test_dead_always_on_and_firing_rate():
    layer, acts, _ = run()
    per_image = acts.amax(dim=2).numpy()
    assert layer.moments.dead.tolist() == [True, False, False, False]
    assert layer.moments.always_on.tolist()[:3] == [False, True, False]
    assert layer.moments.firing_rate[2] == 0.5  # the red unit: 0.5 on the red half, -0.5 on the rest
    np.testing.assert_allclose(layer.moments.firing_rate, (per_image > 0).mean(axis=0))
    np.testing.assert_allclose(layer.moments.mean, per_image.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-9)


def test_bottom_hits_equal_brute_force():
    layer, acts, _ = run(k=5)
    lows, low_at = acts.min(dim=2)
    highs, high_at = acts.max(dim=2)
    for unit in range(4):
        negative = bool((lows[:, unit] < 0).any())
        assert bool(layer.bottom_min[unit]) == negative
        values, where = (lows, low_at) if negative else (highs, high_at)
        ranked = sorted(range(IMAGES), key=lambda i: (values[i, unit].item(), i))[:5]  # lowest first, earlier image on ties
        assert layer.bottom.images[unit].tolist() == ranked
        assert layer.bottom.values[unit].tolist() == [values[i, unit].item() for i in ranked]
        assert layer.bottom.positions[unit].tolist() == [where[i, unit].item() for i in ranked]
    assert layer.bottom_min.tolist() == [True, False, True, True]  # the always-on unit never goes below zero


def test_quantiles_over_every_image_equal_numpy():
    layer, acts, _ = run()
    per_image = acts.amax(dim=2).numpy().astype(np.float64)
    dist = layer.distribution
    assert dist.exact and dist.images == IMAGES
    np.testing.assert_allclose(dist.quantiles, np.quantile(per_image, dist.qs, axis=0).T, rtol=1e-6, atol=1e-6)
    for unit in (2, 3):
        counts, _ = np.histogram(per_image[:, unit], bins=dist.counts.shape[1])
        assert dist.counts[unit].tolist() == counts.tolist()


def test_class_means_selectivity_and_purity_of_the_red_unit():
    layer, acts, labels = run(k=5)
    per_image = acts.amax(dim=2).numpy().astype(np.float64)
    direct = np.stack([per_image[labels.numpy() == c].mean(axis=0) for c in (0, 1)], axis=1)  # (units, classes)
    np.testing.assert_allclose(layer.class_means.means, direct, rtol=1e-6)
    # Red unit: 0.5 on every red image, -0.5 on the others (no red there): the rest's mean is clipped to 0.
    assert direct[2, 0] == pytest.approx(0.5) and direct[2, 1] < 0
    selectivity = class_selectivity(layer.class_means.means)
    assert selectivity[2] == pytest.approx(1.0)
    hit_labels = labels.numpy()[layer.topk.images.numpy()]
    purity = hit_purity(hit_labels, top_class(layer.class_means.means))
    assert purity[2] == 1.0
