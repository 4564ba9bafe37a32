"""Reflect, replicate and circular padding: 'box + mode' against the gradient support.

With a padding mode other than zeros, a border position sees copies of image
pixels: the box (in padded coordinates) mapped through the mode
(:meth:`ReceptiveField.support`) must be exactly the set of pixels with a non-zero
input gradient; where that is not exact the field must be ``None``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope.network.geometry import ReceptiveField, UnitFields
from convscope.network.rf_algebra import fold
from network.test_geometry import assert_matches_gradient, uniform_fields

RF = ReceptiveField


def stack(mode: str) -> nn.Sequential:
    """Two 'same' convs, a stride-2 one and a 'same' one, all padded with ``mode``."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode=mode),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, padding_mode=mode),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode=mode),
    )


BOXES = [((3, 3), (1, 1), (-1, -1)), ((5, 5), (1, 1), (-2, -2)), ((7, 7), (2, 2), (-3, -3)), ((11, 11), (2, 2), (-5, -5))]


@pytest.mark.parametrize(
    "mode, size, known",
    [
        # reflect: exact where the boxes are symmetric about the border pixels; after the
        # stride, the far border of an even image is not a position's centre any more.
        ("reflect", (17, 17), 4),
        ("reflect", (16, 16), 3),
        # replicate: exact only while a position is one pixel (at the input).
        ("replicate", (17, 17), 1),
        # circular: exact while the map tiles the image (positions * stride == size).
        ("circular", (16, 16), 4),
        ("circular", (17, 17), 3),
    ],
)
def test_conv_padding_modes(mode, size, known):
    model = stack(mode)
    layers = ["0", "1", "2", "3"]
    fields = uniform_fields(model, layers, size)
    assert [fields[n] for n in layers] == [RF(*b, padding=mode) for b in BOXES[:known]] + [None] * (4 - known)
    assert_matches_gradient(model, layers[:known], size)


class Padded(nn.Module):
    """``F.pad`` of the input (uneven amounts), a conv, then optionally a zero-padded conv."""

    def __init__(self, mode: str, zero_after: bool = False) -> None:
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(3, 4, 3)
        self.after = nn.Conv2d(4, 4, 3, padding=1 if zero_after else 0)

    def forward(self, x):
        return self.after(self.conv(F.pad(x, (2, 1, 1, 3), mode=self.mode)))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_pad_of_the_input(mode):
    fields = uniform_fields(Padded(mode), ["conv", "after"], (9, 11))
    # rows padded 1 before, cols 2 before: box of (0, 0) starts at (-1, -2).
    assert fields == {"conv": RF((3, 3), (1, 1), (-1, -2), mode), "after": RF((5, 5), (1, 1), (-1, -2), mode)}
    assert_matches_gradient(Padded(mode), ["conv", "after"], (9, 11))


def test_modes_that_meet_are_unknown():
    # a reflect pad, then zero padding of a map whose boxes reach past the image: neither mode describes it.
    assert uniform_fields(Padded("reflect", zero_after=True), ["conv", "after"], (9, 11))["after"] is None
    # zeros first, then reflect: unknown too.
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))
    assert uniform_fields(model, ["0", "1"], (9, 9)) == {"0": RF((3, 3), (1, 1), (-1, -1)), "1": None}
    # reflecting an unpadded k3 map: position -1 shows position 1, pixels [1, 4), but the
    # box [-1, 2) reflected is [0, 2): not 'box + mode', so unknown.
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))
    assert uniform_fields(model, ["1"], (9, 9))["1"] is None
    # a 1x1 map (inside the image, zeros never used) then reflect: exact.
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))
    assert uniform_fields(model, ["1"], (9, 9))["1"] == RF((3, 3), (1, 1), (-1, -1), "reflect")
    assert_matches_gradient(model, ["1"], (9, 9))


def test_padding_in_json_and_support():
    old = {"size": [3, 3], "stride": [1, 1], "offset": [-1, -1]}
    assert RF.from_dict(old).padding == "zeros" and RF.from_dict(old).to_dict() == old
    rf = RF((3, 3), (1, 1), (-1, -1), "replicate")
    assert RF.from_dict(rf.to_dict()) == rf and rf.to_dict()["padding"] == "replicate"
    assert UnitFields.from_list(UnitFields.of(rf, 4).to_list()).uniform == rf
    with pytest.raises(ValueError):
        RF.from_dict({**old, "padding": "mirror"})
    assert rf.support(0, 0, (5, 5)) == ([0, 1], [0, 1])
    assert RF((3, 3), (1, 1), (-1, -1)).support(0, 4, (5, 5)) == ([0, 1], [3, 4])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_fold_is_what_torch_pads_with(mode):
    # an image whose pixel values are their column index, padded by torch: fold must read the same.
    length, amount = 5, 4  # torch's reflect needs amount < length
    line = torch.arange(length, dtype=torch.float32).view(1, 1, length)
    padded = F.pad(line, (amount, amount), mode=mode)[0, 0].long().numpy()
    assert np.array_equal(fold(np.arange(-amount, length + amount), length, mode), padded)
