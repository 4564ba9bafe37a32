"""Grids of cells: a unit's hits, a layer's units, the overview figure.

Everything here takes and returns ``uint8`` arrays ``(H, W, 3)``; nothing is saved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from convscope.render.patch import mark_padding

BACKGROUND = (255, 255, 255)
EMPTY_CELL = (235, 235, 235)


def grid_shape(k: int) -> tuple[int, int]:
    """A near-square ``(rows, cols)`` holding ``k`` cells: 9 -> (3, 3), 5 -> (2, 3).

    Example:
        >>> grid_shape(9), grid_shape(5), grid_shape(1)
        ((3, 3), (2, 3), (1, 1))
    """
    cols = math.ceil(math.sqrt(k))
    return math.ceil(k / cols), cols


def fit_cell(patch: np.ndarray, cell: int, inside: np.ndarray | None = None) -> np.ndarray:
    """Scale ``patch`` ``(h, w, 3)`` to fit a ``cell`` x ``cell`` square, keeping its aspect.

    Small patches are enlarged with nearest-neighbour (pixels stay crisp), large ones
    reduced with a box filter. Where ``inside`` ``(h, w)`` is False, the cell is striped.
    """
    h, w = patch.shape[:2]
    scale = cell / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    scaled = np.asarray(Image.fromarray(patch).resize(size, resample))
    if inside is not None:
        mask = np.asarray(Image.fromarray(inside).resize(size, Image.Resampling.NEAREST))
        scaled = mark_padding(scaled, mask)
    out = np.empty((cell, cell, 3), dtype=np.uint8)
    out[...] = BACKGROUND
    top, left = (cell - size[1]) // 2, (cell - size[0]) // 2
    out[top : top + size[1], left : left + size[0]] = scaled
    return out


def tile(cells: Sequence[np.ndarray], shape: tuple[int, int], gap: int, background=BACKGROUND) -> np.ndarray:
    """Lay equal-sized cells ``(h, w, 3)`` out row by row on ``shape`` ``(rows, cols)``.

    Missing cells (fewer than rows x cols) are left as ``EMPTY_CELL``.
    """
    rows, cols = shape
    h, w = cells[0].shape[:2] if cells else (1, 1)
    out = np.empty((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), dtype=np.uint8)
    out[...] = background
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        y, x = r * (h + gap), c * (w + gap)
        out[y : y + h, x : x + w] = cells[i] if i < len(cells) else EMPTY_CELL
    return out


def side_by_side(images: Sequence[np.ndarray], gap: int, background=BACKGROUND) -> np.ndarray:
    """Images of equal height next to each other (projection grid | patch grid)."""
    return tile(list(images), (1, len(images)), gap, background) if len(images) > 1 else images[0]


def caption(image: np.ndarray, text: str, size: int = 14) -> np.ndarray:
    """``image`` with one line of ``text`` above it."""
    font = ImageFont.load_default(size=size)
    height = size + 8
    out = Image.new("RGB", (max(image.shape[1], int(font.getlength(text)) + 8), image.shape[0] + height), BACKGROUND)
    out.paste(Image.fromarray(image), (0, height))
    ImageDraw.Draw(out).text((2, 2), text, fill=(20, 20, 20), font=font)
    return np.asarray(out)


def stack(images: Sequence[np.ndarray], gap: int, *, vertical: bool = False) -> np.ndarray:
    """Images of any size next to each other (or one below the other), top/left aligned."""
    axis_len = [im.shape[0 if vertical else 1] for im in images]
    other = max(im.shape[1 if vertical else 0] for im in images)
    total = sum(axis_len) + gap * (len(images) - 1)
    out = np.empty((total, other, 3) if vertical else (other, total, 3), dtype=np.uint8)
    out[...] = BACKGROUND
    pos = 0
    for im, n in zip(images, axis_len):
        if vertical:
            out[pos : pos + n, : im.shape[1]] = im
        else:
            out[: im.shape[0], pos : pos + n] = im
        pos += n + gap
    return out
