"""projection_to_image by hand; occlusion against a brute-force loop; render_occlusion by hand."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from convscope.project import ClassTarget, UnitTarget, occlusion_map, projection_to_image, render_occlusion


def test_projection_to_image_centres_zero_on_grey_and_saturates_outliers() -> None:
    p = torch.zeros(3, 10, 10)
    p[0, 0, :] = torch.arange(1.0, 11.0)  # ten values, the 99th percentile is 9.91
    p[1, 1, 0] = -1000.0  # an outlier saturates instead of washing out the rest
    img = projection_to_image(p)
    assert img.shape == (10, 10, 3) and img.dtype == np.uint8
    assert img[5, 5].tolist() == [128, 128, 128]
    assert img[1, 0, 1] == 0
    scale = float(torch.quantile(torch.cat([torch.arange(1.0, 11.0), torch.tensor([1000.0])]), 0.99))
    assert img[0, 0, 0] == round(128 + 127 * 1 / scale)
    assert projection_to_image(torch.zeros(3, 2, 2)).tolist() == [[[128] * 3] * 2] * 2


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


def _brute(model: nn.Module, x: torch.Tensor, fill: torch.Tensor, size: int, stride: int, value) -> torch.Tensor:
    out = []
    for top in range(0, x.shape[2] - size + 1, stride):
        row = []
        for left in range(0, x.shape[3] - size + 1, stride):
            y = x.clone()
            y[0, :, top : top + size, left : left + size] = fill.reshape(3, 1, 1)
            with torch.no_grad():
                row.append(value(y))
        out.append(row)
    return torch.tensor(out)


def test_occlusion_matches_a_loop_for_class_and_unit_targets() -> None:
    model = Tiny()
    x = torch.randn(1, 3, 11, 9, generator=torch.Generator().manual_seed(1))
    fill = torch.tensor([0.5, -0.2, 0.1])
    got = occlusion_map(model, x, target=ClassTarget(2), size=4, stride=3, fill=fill, batch_size=4)
    want = _brute(model, x, fill, 4, 3, lambda y: float(model(y).softmax(1)[0, 2]))
    assert got.shape == (3, 2)
    assert torch.allclose(got, want, atol=1e-6)
    got = occlusion_map(model, x, target=UnitTarget("relu", 1), size=3, stride=2, batch_size=5)
    want = _brute(model, x, torch.zeros(3), 3, 2, lambda y: float(model.relu(model.conv(y))[0, 1].max()))
    assert torch.allclose(got, want, atol=1e-6)
    got = occlusion_map(model, x, target=UnitTarget("conv", 3, (2, 4)), size=2, stride=2)
    want = _brute(model, x, torch.zeros(3), 2, 2, lambda y: float(model.conv(y)[0, 3, 2, 4]))
    assert torch.allclose(got, want, atol=1e-6)
    assert model.training


def test_render_occlusion_colours_drops_and_outlines_the_worst_square() -> None:
    image = np.full((8, 12, 3), 100, np.uint8)
    heat = torch.tensor([[1.0, 0.2, 1.5]])  # baseline 1: a drop of 0.8 in the middle, a rise at the right
    out = render_occlusion(image, heat, size=4, stride=4, baseline=1.0)
    assert out[0, 4:8].tolist() == [[255, 255, 0]] * 4  # the worst square's outline (cols 4-7)
    assert out[4, 5].tolist() == [round(100 * 0.3 + 255 * 0.7), 30, 30]  # full drop: 0.7 red
    a = 0.7 * 0.5 / 0.8  # a rise of 0.5 against the largest change 0.8: blue
    assert out[4, 9].tolist() == [round(100 * (1 - a))] * 2 + [round(100 * (1 - a) + 255 * a)]
    assert out[4, 1].tolist() == [100, 100, 100]  # no change, no colour
    assert image[0, 4].tolist() == [100, 100, 100]  # the input is not modified


def test_occlusion_over_a_region_past_the_border_matches_a_loop() -> None:
    from convscope.network.geometry import Box

    model = Tiny()
    x = torch.randn(1, 3, 11, 9, generator=torch.Generator().manual_seed(2))
    region = Box(-2, 3, 7, 12)  # 9 x 9, reaching above the image and past its right side
    got = occlusion_map(model, x, target=UnitTarget("conv", 1, (1, 4)), size=3, stride=2, region=region)
    want = []
    for top in range(-2, 7 - 3 + 1, 2):
        for left in range(3, 12 - 3 + 1, 2):
            y = x.clone()
            y[0, :, max(top, 0) : top + 3, left : left + 3] = 0.0  # only the part inside the image
            with torch.no_grad():
                want.append(float(model.conv(y)[0, 1, 1, 4]))
    assert got.shape == (4, 4)
    assert torch.allclose(got.flatten(), torch.tensor(want), atol=1e-6)
