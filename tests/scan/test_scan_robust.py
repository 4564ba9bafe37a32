"""The scan on awkward data: NaN and infinite activations, half-precision models, class-sorted
folders (the overview's signature sample), each against a brute force computed here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from convscope.render.selection import choose_units
from convscope.scan.scan import scan, signature_sample
from tiny_models import ColourNet, tiny_alexnet


def batches(pixels: torch.Tensor, size: int = 7) -> list[tuple]:
    n = len(pixels)
    return [
        (pixels[s : s + size], torch.arange(s, min(s + size, n)), torch.ones(len(pixels[s : s + size]), dtype=torch.bool), [""] * size)
        for s in range(0, n, size)
    ]


class Poisoned(nn.Module):
    """ColourNet whose output is NaN where the input's green is 255 and +inf where its blue is 255."""

    def __init__(self) -> None:
        super().__init__()
        self.colour = ColourNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.colour(x)
        y = torch.where(x[:, 1:2] == 1.0, float("nan"), y)
        return torch.where(x[:, 2:3] == 1.0, float("inf"), y)


def test_nan_and_infinite_activations_never_become_hits_nor_enter_the_mean():
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 240, (30, 3, 4, 4), dtype=torch.uint8, generator=g)
    pixels[4, 1] = 255  # image 4: NaN everywhere
    pixels[9, 2] = 255  # image 9: +inf everywhere
    pixels[13, 1, 0, 0] = 255  # image 13: one NaN position; its other positions still count
    pixels[13, 0, 3, 3] = 249  # ... and its red at (3, 3) is the data set's strongest
    model = Poisoned()
    result = scan(nn.Sequential(model), [("0", 3)], batches(pixels), lambda p: p.float() / 255, k=5, progress=False)
    layer = result.layers["0"]

    acts = model(pixels.float() / 255).detach().reshape(30, 3, -1).numpy()
    finite = np.isfinite(acts)
    assert layer.nonfinite.tolist() == (~finite).sum(axis=(0, 2)).tolist()
    best = np.where(finite, acts, -np.inf).max(axis=2)  # (images, units): the strongest finite activation
    for unit in range(3):
        ranked = [i for i in sorted(range(30), key=lambda i: (-best[i, unit], i)) if np.isfinite(best[i, unit])][:5]
        assert layer.topk.images[unit].tolist() == ranked
        assert 4 not in ranked and 9 not in ranked
        expected_mean = best[np.isfinite(best[:, unit]), unit].mean()
        assert layer.mean[unit].item() == pytest.approx(expected_mean, rel=1e-6)
    assert layer.topk.images[0, 0].item() == 13
    assert torch.isfinite(layer.topk.values).all()


def test_a_unit_that_is_never_finite_has_no_hits_and_a_nan_mean():
    pixels = torch.zeros(6, 3, 4, 4, dtype=torch.uint8)
    pixels[:, 1] = 255  # NaN everywhere, in every image
    result = scan(nn.Sequential(Poisoned()), [("0", 3)], batches(pixels), lambda p: p.float() / 255, k=3, progress=False)
    layer = result.layers["0"]
    assert layer.topk.images.tolist() == [[-1, -1, -1]] * 3
    assert torch.isnan(layer.mean).all() and layer.nonfinite.tolist() == [96, 96, 96]
    assert choose_units(layer.topk.values, layer.signature, n=3) == [0, 1, 2]  # no crash, all dead


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_take_inputs_in_their_dtype(dtype):
    model = tiny_alexnet().eval()
    g = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8, generator=g)
    normalize = lambda p: p.float() / 127.5 - 1  # noqa: E731  (float32, as Preprocess gives)
    full = scan(model, [("features.3", 6)], batches(pixels), normalize, k=3, progress=False).layers["features.3"]
    half = scan(model.to(dtype), [("features.3", 6)], batches(pixels), normalize, k=3, progress=False).layers["features.3"]
    assert torch.allclose(half.topk.values, full.topk.values, rtol=0.05, atol=0.05)
    assert (half.topk.images[:, 0] == full.topk.images[:, 0]).float().mean() >= 0.8


def test_signature_sample_is_spread_over_all_images_and_seeded():
    sample = signature_sample(1000)
    assert len(sample) == 256 and len(set(sample.tolist())) == 256 and torch.equal(sample, sample.sort().values)
    assert sample.min() < 50 and sample.max() > 950 and (sample >= 500).sum() > 100
    assert torch.equal(sample, signature_sample(1000)) and not torch.equal(sample, signature_sample(1000, seed=1))
    assert signature_sample(10).tolist() == list(range(10))


def test_overview_units_come_from_the_whole_data_set_not_its_first_class():
    """An ImageFolder sorted by class: 600 reddish images, then 400 blue ones. The blue unit is
    silent on the first 256 images, so a signature of those calls it dead; it is the clearest."""
    g = torch.Generator().manual_seed(2)
    pixels = torch.zeros(1000, 3, 2, 2, dtype=torch.uint8)
    pixels[:600, 0] = torch.randint(0, 256, (600, 2, 2), dtype=torch.uint8, generator=g)
    pixels[:600, 1] = torch.randint(0, 40, (600, 2, 2), dtype=torch.uint8, generator=g)
    pixels[600:, 2] = torch.randint(0, 256, (400, 2, 2), dtype=torch.uint8, generator=g)
    model = nn.Sequential(ColourNet())
    layer = scan(model, [("0", 3)], batches(pixels, 100), lambda p: p.float() / 255, k=9, total=1000, progress=False).layers["0"]
    sample = signature_sample(1000)
    direct = model(pixels[sample].float() / 255).detach().amax(dim=(2, 3))
    assert torch.equal(layer.signature, direct)
    assert choose_units(layer.topk.values, layer.signature, n=1) == [2]  # the clearest
    first = model(pixels[:256].float() / 255).detach().amax(dim=(2, 3))  # the old signature: images 0-255
    assert choose_units(layer.topk.values, first, n=3)[-1] == 2  # there it looked dead
