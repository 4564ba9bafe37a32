"""Patches, cells, grids and the choice of overview units."""

import numpy as np
import pytest
import torch

from convscope.network.geometry import Box
from convscope.render.figures import layer_mosaic, overview, overview_layers, unit_figure, unit_grid
from convscope.render.grid import fit_cell, grid_shape, tile
from convscope.render.patch import STRIPE_COLOUR, crop, mark_padding, mean_colour
from convscope.render.selection import choose_units, clarity
from convscope.views.base import Picture


def test_crop_inside_is_a_plain_slice():
    image = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    patch, inside = crop(image, Box(1, 2, 4, 5), fill=np.zeros(3, np.uint8))
    assert np.array_equal(patch, image[1:4, 2:5]) and inside.all()


def test_crop_past_the_border_fills_and_marks():
    image = np.full((4, 4, 3), 200, dtype=np.uint8)
    fill = mean_colour((0.485, 0.456, 0.406))
    assert fill.tolist() == [124, 116, 104]
    patch, inside = crop(image, Box(-2, 3, 2, 7), fill=fill)
    assert patch.shape == (4, 4, 3)
    # rows -2, -1 and cols 4.. lie outside; only rows 0-1, col 3 are image
    assert inside.tolist() == [[False] * 4, [False] * 4, [True, False, False, False], [True, False, False, False]]
    assert patch[2, 0].tolist() == [200, 200, 200] and patch[0, 0].tolist() == fill.tolist()


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_crop_shows_what_torch_pads_with(mode):
    image = np.arange(6 * 7 * 3, dtype=np.uint8).reshape(6, 7, 3)
    padded = torch.nn.functional.pad(torch.from_numpy(image).permute(2, 0, 1)[None].float(), (3, 3, 3, 3), mode=mode)
    padded = padded[0].permute(1, 2, 0).to(torch.uint8).numpy()  # row r, col c of the image at r + 3, c + 3
    for box in [Box(-3, -2, 2, 4), Box(3, 4, 9, 10), Box(-3, -3, 9, 10), Box(1, 1, 4, 5), Box(-2, 6, 0, 10)]:
        patch, inside = crop(image, box, fill=np.zeros(3, np.uint8), padding=mode)
        expected = padded[box.top + 3 : box.bottom + 3, box.left + 3 : box.right + 3]
        assert patch.dtype == image.dtype and np.array_equal(patch, expected), (mode, box)
        plain_patch, plain_inside = crop(image, box, fill=np.zeros(3, np.uint8))
        assert np.array_equal(inside, plain_inside)  # the stripes mark the same pixels
        assert np.array_equal(patch[inside], plain_patch[inside])


def test_box_entirely_outside_is_all_padding():
    patch, inside = crop(np.zeros((4, 4, 3), np.uint8), Box(10, 10, 12, 12), fill=np.full(3, 7, np.uint8))
    assert not inside.any() and (patch == 7).all()


def test_padding_is_striped_and_content_untouched():
    cell = np.full((8, 8, 3), 50, np.uint8)
    inside = np.zeros((8, 8), bool)
    inside[:, 4:] = True
    marked = mark_padding(cell, inside)
    assert (marked[:, 4:] == 50).all()
    striped = (marked[:, :4] == STRIPE_COLOUR).all(axis=-1)
    assert 0 < striped.sum() < 32  # stripes, not a solid fill


def test_fit_cell_enlarges_crisply_and_keeps_aspect():
    patch = np.zeros((2, 4, 3), np.uint8)
    patch[:, 2:] = 255
    cell = fit_cell(patch, 8)
    assert cell.shape == (8, 8, 3)
    # 2x4 -> 4x8, centred vertically: rows 2..5 hold the patch, with a sharp edge at col 4
    assert (cell[2:6, :4] == 0).all() and (cell[2:6, 4:] == 255).all()
    assert (cell[:2] == 255).all()  # letterbox background is white


def test_grid_shape_near_square_and_tile_layout():
    assert [grid_shape(k) for k in (1, 2, 4, 9, 10, 16)] == [(1, 1), (1, 2), (2, 2), (3, 3), (3, 4), (4, 4)]
    cells = [np.full((2, 2, 3), i, np.uint8) for i in range(5)]
    grid = tile(cells, (2, 3), gap=1)
    assert grid.shape == (5, 8, 3)
    assert grid[3, 0, 0] == 3 and grid[0, 6, 0] == 2  # rank 3 starts row 2; rank 2 ends row 1


def test_unit_figure_puts_projections_left_of_patches():
    patches = unit_grid([np.full((4, 4, 3), 10, np.uint8)] * 9, 9)
    projections = unit_grid([np.full((4, 4, 3), 20, np.uint8)] * 9, 9)
    figure = unit_figure([projections, patches])
    assert figure.shape[0] == patches.shape[0] and figure.shape[1] > 2 * patches.shape[1]
    assert figure[0, 0, 0] == 20 and figure[0, -1, 0] == 10


def test_mosaic_and_overview_are_images():
    figures = [np.full((14, 14, 3), i * 20, np.uint8) for i in range(10)]
    mosaic = layer_mosaic(figures, "conv1")
    assert mosaic.dtype == np.uint8 and mosaic.shape[1] >= 4 * 14
    fig = overview([("a", figures[:9]), ("b", figures[:4])])
    assert fig.ndim == 3 and fig.shape[1] > 2 * 3 * 14


def test_clarity_ranks_selective_units_first_and_dead_units_last():
    g = torch.Generator().manual_seed(0)
    sig = torch.randn(100, 3, generator=g)
    sig[:, 2] = 1.0  # dead: constant
    top = torch.tensor([[5.0], [2.0], [1.0]])
    c = clarity(top, sig)
    assert c[0] > c[1] and c[2] == float("-inf")


def test_choose_units_prefers_different_units_over_near_copies():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, generator=g), torch.randn(200, generator=g)
    # units 0, 1, 2 are near copies of a; unit 3 follows b; unit 4 is dead.
    sig = torch.stack([a, a + 0.01, a + 0.02, b, torch.zeros(200)], dim=1)
    top = torch.tensor([[4.0], [3.9], [3.8], [3.0], [0.0]])
    chosen = choose_units(top, sig, n=2)
    assert chosen == [0, 3]
    assert choose_units(top, sig, n=9) == [0, 3, 1, 2, 4]


def test_overview_layers_are_spread_over_depth_first_and_last_included():
    assert overview_layers(6) == list(range(6))
    assert overview_layers(26) == [0, 5, 10, 15, 20, 25]
    assert overview_layers(7, most=3) == [0, 3, 6]
    chosen = overview_layers(53)
    assert chosen[0] == 0 and chosen[-1] == 52 and len(chosen) == 6
    gaps = [b - a for a, b in zip(chosen, chosen[1:])]
    assert max(gaps) - min(gaps) <= 1


def test_overview_wraps_layers_into_rows_instead_of_a_strip():
    figure = np.full((100, 300, 3), 7, np.uint8)
    blocks = [(f"layer {i}", [figure] * 9) for i in range(6)]  # each block about 950 px wide
    fig = overview(blocks, max_width=3400)
    block_width = 3 * 300 + 2 * 8
    assert 3 * block_width <= fig.shape[1] <= 3400  # three layers per row
    assert fig.shape[0] > 2 * (3 * 100)  # two rows, each three units high


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_a_huge_box_is_sampled_from_the_same_patch(mode):
    """A deep layer's box thousands of pixels wide is cut at every ``step``-th pixel: exactly the
    full patch (checked against ``F.pad``) sampled with that step, mask included."""
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    box = Box(-7, -13, 20 + 9, 30 + 4)
    full, full_inside = crop(image, box, np.array([1, 2, 3], np.uint8), mode)
    padded = torch.nn.functional.pad(torch.from_numpy(image).permute(2, 0, 1).float()[None], (13, 4, 7, 9), mode="constant" if mode == "zeros" else mode)
    if mode != "zeros":
        assert np.array_equal(full, padded[0].permute(1, 2, 0).byte().numpy())
    small, small_inside = crop(image, box, np.array([1, 2, 3], np.uint8), mode, max_side=12)
    step = -(-47 // 12)  # ceil(longest side / max_side)
    assert max(small.shape[:2]) <= 12
    assert np.array_equal(small, full[::step, ::step]) and np.array_equal(small_inside, full_inside[::step, ::step])


@pytest.mark.parametrize("padding", ["zeros", "reflect"])
def test_the_overview_keeps_the_part_of_a_box_on_the_image(padding):
    """``Picture.on_image`` of a box reaching past two borders is the image's own pixels under
    the box clipped by hand, whatever the padding drew outside."""
    image = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    picture = Picture(*crop(image, Box(-3, 8, 5, 16), fill=np.array([1, 2, 3], dtype=np.uint8), padding=padding))
    clipped = picture.on_image()
    assert clipped.inside is None and np.array_equal(clipped.pixels, image[0:5, 8:12])
    inside = Picture(*crop(image, Box(2, 2, 6, 6), fill=0))
    assert np.array_equal(inside.on_image().pixels, image[2:6, 2:6])
