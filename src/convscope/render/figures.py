"""The figures of an atlas: a unit's grid, a layer's mosaic, the overview.

Inputs are the fitted cells (``uint8 (cell, cell, 3)``) that render.grid makes;
outputs are ``uint8 (H, W, 3)`` arrays. Nothing is saved here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from convscope.render.grid import caption, grid_shape, side_by_side, stack, tile

#: Pixels between cells of a unit grid, and between unit grids.
CELL_GAP = 2
UNIT_GAP = 8


def unit_grid(cells: Sequence[np.ndarray], k: int, gap: int = CELL_GAP) -> np.ndarray:
    """A unit's ``k`` cells on a near-square grid (3 x 3 for k = 9); rank 0 top left."""
    return tile(cells, grid_shape(k), gap)


def unit_figure(grids: Sequence[np.ndarray]) -> np.ndarray:
    """A unit's grids side by side, left to right (the atlas puts the projection grid left of
    the patch grid, as in Zeiler & Fergus's Figure 2)."""
    return grids[0] if len(grids) == 1 else side_by_side(grids, UNIT_GAP // 2)


def shrink(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resized by ``scale`` (< 1) with a box filter."""
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def mosaic_scale(count: int, width: int, max_width: int) -> float:
    """How much ``count`` figures ``width`` pixels wide shrink to fit a mosaic ``max_width`` wide."""
    cols = math.ceil(math.sqrt(count))
    return min(1.0, (max_width - (cols - 1) * UNIT_GAP) / (cols * width))


def layer_mosaic(figures: Sequence[np.ndarray], title: str, max_width: int = 2400) -> np.ndarray:
    """Every unit's figure of a layer on a near-square grid, unit 0 top left, titled."""
    cols = math.ceil(math.sqrt(len(figures)))
    scale = mosaic_scale(len(figures), figures[0].shape[1], max_width)
    small = [shrink(f, scale) for f in figures] if scale < 1 else list(figures)
    return caption(tile(small, (math.ceil(len(small) / cols), cols), UNIT_GAP), title)


def overview_layers(count: int, most: int = 6) -> list[int]:
    """Which of ``count`` layers (in forward order) the overview shows: all when there are at
    most ``most``, else ``most`` spread evenly over depth, the first and the last among them.

    Example:
        >>> overview_layers(5), overview_layers(26)
        ([0, 1, 2, 3, 4], [0, 5, 10, 15, 20, 25])
    """
    if count <= most:
        return list(range(count))
    return sorted({round(i * (count - 1) / (most - 1)) for i in range(most)})


def overview(blocks: Sequence[tuple[str, Sequence[np.ndarray]]], max_width: int = 3400) -> np.ndarray:
    """The lecture's figure: per layer, its chosen units' figures 3 x 3 under a title, layers left
    to right, wrapping onto a new row before the figure gets wider than ``max_width`` pixels."""
    rendered = []
    for title, figures in blocks:
        rendered.append(caption(tile(list(figures), grid_shape(len(figures)) if figures else (1, 1), UNIT_GAP), title))
    rows: list[list[np.ndarray]] = [[]]
    width = 0
    for block in rendered:
        if rows[-1] and width + 3 * UNIT_GAP + block.shape[1] > max_width:
            rows.append([])
            width = 0
        width += (3 * UNIT_GAP if rows[-1] else 0) + block.shape[1]
        rows[-1].append(block)
    return stack([stack(row, 3 * UNIT_GAP) for row in rows], 3 * UNIT_GAP, vertical=True)
