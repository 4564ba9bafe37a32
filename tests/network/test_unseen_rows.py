"""Rows and cols a layer never sees: windows that do not tile their input (issue 22).

An unpadded strided conv or pool whose windows stop short of the input's end never
reads its last rows; neither does anything above it. A later padded conv or ceil-mode
pool has affine boxes that reach into those rows anyway: the field's ``end`` (the
first input row and col never seen) clips them. Hand-computed fields, then the
oracle of ``test_geometry``: the support of the input gradient must be the clipped box.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from convscope.network.geometry import Box, ReceptiveField, UnitFields, receptive_fields
from convscope.render.patch import crop
from network.test_geometry import assert_matches_gradient, uniform_fields

RF = ReceptiveField


def test_unpadded_strided_conv_then_padded_conv():
    # k3 s2 at 16 rows: 7 positions read rows 0..14, row 15 never; at 15 cols the windows tile.
    # Then k3 p1: (3 + 2*2, 2, -2); the last row's box [10, 17) stops at row 15.
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.Conv2d(4, 4, 3, padding=1))
    fields = uniform_fields(model, ["0", "1"], (16, 15))
    assert fields == {"0": RF((3, 3), (2, 2), (0, 0)), "1": RF((7, 7), (2, 2), (-2, -2), end=(15, None))}
    assert fields["1"].box(6, 6) == Box(10, 10, 15, 17)  # cols: the image border (zero padding past it)
    assert fields["1"].box(0, 0) == Box(-2, -2, 5, 5)
    assert_matches_gradient(model, ["0", "1"], (16, 15))


def test_ceil_mode_pool_past_a_conv_that_does_not_tile():
    # conv k7 s2 at 42: 18 positions read rows 0..40, row 41 never (SqueezeNet's conv1).
    # maxpool k3 s2 ceil: 9 positions, the last window over conv rows 16, 17 and the missing 18:
    # (7 + 2*2, 4, 0), the last box [32, 43) stops at 41. Then a Fire-like k3 p1: (11 + 2*4, 4, -4).
    # At 41 cols conv1 tiles (17 positions) and the ceil pool's last window fits (8 positions).
    model = nn.Sequential(
        nn.Conv2d(3, 4, 7, stride=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Conv2d(4, 4, 3, padding=1)
    )
    fields = uniform_fields(model, ["0", "2", "3"], (42, 41))
    assert fields == {
        "0": RF((7, 7), (2, 2), (0, 0)),
        "2": RF((11, 11), (4, 4), (0, 0), end=(41, None)),
        "3": RF((19, 19), (4, 4), (-4, -4), end=(41, None)),
    }
    assert fields["2"].box(8, 7) == Box(32, 28, 41, 39)
    assert fields["3"].box(8, 7) == Box(28, 24, 41, 43)
    assert_matches_gradient(model, ["0", "2", "3"], (42, 41))


def test_ceil_mode_pool_on_the_image_needs_no_limit():
    # The last window of a ceil-mode pool starts inside the map: past the image it is the border.
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Conv2d(4, 4, 3, padding=1))
    fields = uniform_fields(model, ["1", "2"], (16, 16))
    assert fields == {"1": RF((3, 3), (2, 2), (0, 0)), "2": RF((7, 7), (2, 2), (-2, -2))}
    assert_matches_gradient(model, ["1", "2"], (16, 16))


def test_reflect_pad_then_windows_that_do_not_tile():
    # reflect 2, conv k3 s2 at 16: 9 positions over padded rows 0..18, box coords [-2, 17);
    # pool k2 s2 ceil: 5 positions, the last over conv 8 and the missing 9: [14, 19) stops at 17,
    # which the reflection shows as image rows 14, 15, 14.
    model = nn.Sequential(nn.ReflectionPad2d(2), nn.Conv2d(3, 4, 3, stride=2), nn.MaxPool2d(2, 2, ceil_mode=True))
    fields = uniform_fields(model, ["1", "2"], (16, 16))
    assert fields["1"] == RF((3, 3), (2, 2), (-2, -2), padding="reflect")
    assert fields["2"] == RF((5, 5), (4, 4), (-2, -2), padding="reflect", end=(17, 17))
    assert fields["2"].support(4, 0, (16, 16)) == ([14, 15], [0, 1, 2])
    assert_matches_gradient(model, ["1", "2"], (16, 16))


class TwoBranches(nn.Module):
    """A branch that never sees the last row next to one that does, concatenated, then mixed."""

    def __init__(self) -> None:
        super().__init__()
        self.short = nn.Sequential(nn.Conv2d(3, 2, 3, stride=2), nn.Conv2d(2, 2, 3, padding=1))
        self.full = nn.Conv2d(3, 2, 4, stride=2)
        self.cat = nn.Identity()
        self.mix = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.mix(self.cat(torch.cat([self.short(x), self.full(x)], 1)))


def test_branches_keep_their_own_limit_and_the_union_takes_the_furthest():
    # short: k3 s2 at 16 reads rows 0..14 (7 positions), then k3 p1: (7, 2, -2) until 15.
    # full: k4 s2 at 16, 7 positions too, reads rows 0..15: (4, 2, 0), no limit.
    # mix unites them: (7, 2, -2), and reads what either reads: up to the image border.
    fields = receptive_fields(TwoBranches(), ["cat", "mix"], (16, 16))
    short, full = RF((7, 7), (2, 2), (-2, -2), end=(15, 15)), RF((4, 4), (2, 2), (0, 0))
    assert fields["cat"] == UnitFields(((0, 2, short), (2, 4, full)))
    assert fields["mix"].uniform == RF((7, 7), (2, 2), (-2, -2))
    assert_matches_gradient(TwoBranches(), ["cat"], (16, 16), units=[0, 1, 2, 3])
    assert_matches_gradient(TwoBranches(), ["mix"], (16, 16), units=[0])


def test_to_dict_round_trip_and_old_atlases():
    field = RF((19, 19), (4, 4), (-4, -4), end=(95, None))
    assert field.to_dict() == {"size": [19, 19], "stride": [4, 4], "offset": [-4, -4], "end": [95, None]}
    assert RF.from_dict(field.to_dict()) == field
    old = {"size": [19, 19], "stride": [4, 4], "offset": [-4, -4]}
    assert RF.from_dict(old) == RF((19, 19), (4, 4), (-4, -4)) and "end" not in RF.from_dict(old).to_dict()
    assert UnitFields.from_list(UnitFields.of(field, 3).to_list()) == UnitFields.of(field, 3)
    assert field.text() == "19 s4 o-4 end95x-"


# ----------------------------------------------------------------- real networks


@pytest.mark.slow
def test_squeezenet_at_96_never_draws_row_95():
    # conv1 k7 s2 at 96: 45 positions read rows 0..94. Every deeper layer stops there.
    model = torchvision.models.squeezenet1_0()
    layers = ["0", "2", "3", "6", "7", "12"]
    fields = receptive_fields(model.features, layers, (96, 96))
    assert fields["0"].uniform == RF((7, 7), (2, 2), (0, 0))
    assert fields["3"].field(100) == RF((19, 19), (4, 4), (-4, -4), end=(95, 95))
    for name in layers[1:]:
        rows = model.features[: int(name) + 1](torch.zeros(1, 3, 96, 96)).shape[-1]
        for _, _, field in fields[name].ranges:
            assert max(field.box(r, r).bottom for r in range(rows)) == 95, (name, field)
    # The global pool's one box is what conv1 reads: rows and cols 0..94.
    whole = receptive_fields(model, ["classifier.3"], (96, 96))["classifier.3"].uniform
    assert whole == RF((95, 95), (0, 0), (0, 0)) and whole.box(0, 0) == Box(0, 0, 95, 95)
    # The patch of the bottom-right position of the last Fire never shows row or col 95.
    image = np.zeros((96, 96, 3), np.uint8)
    image[95], image[:, 95] = 255, 255
    for _, _, field in fields["12"].ranges:
        patch, inside = crop(image, field.box(4, 4), np.zeros(3, np.uint8))
        assert patch.max() == 0 and inside.all(), field
    assert_matches_gradient(model.features, ["0", "2"], (96, 96))
    for name, units in (("3", [5, 100]), ("6", [5]), ("7", [5, 200]), ("12", [5, 300])):  # both halves of a Fire
        assert_matches_gradient(model.features, [name], (96, 96), units=units)
