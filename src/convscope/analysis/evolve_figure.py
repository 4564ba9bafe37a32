"""Zeiler & Fergus's Figure 4 laid out: per layer, units down, checkpoints across.

Each cell is a unit's strongest hit at one checkpoint: its patch cut to the receptive
field box (the projection beside it when the evolution has one), scaled to a square of
:data:`CELL` pixels. A red frame marks a cell whose image differs from the previous
checkpoint's (the paper's "sudden jumps"); a grey frame the others. Captions name the
layer, the checkpoints (columns) and the units (rows). Everything is ``uint8 (H, W, 3)``;
nothing is saved.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from convscope.analysis.evolve import Cell, Evolution, LayerEvolution
from convscope.render.grid import BACKGROUND, EMPTY_CELL, fit_cell, stack

#: Side of one picture in the figure, in pixels.
CELL = 64
#: Width of the frame around each cell; red where the image changed.
FRAME = 3
CHANGED = (220, 30, 30)
KEPT = (200, 200, 200)
#: Pixels between cells and between layer blocks.
GAP = 4
BLOCK_GAP = 18
#: Width of the row captions ("unit 12").
LABEL_WIDTH = 64


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text(width: int, height: int, text: str, size: int = 12, centre: bool = True) -> np.ndarray:
    """``uint8 (height, width, 3)`` with ``text`` on the background (lines split at ``\\n``)."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font = _font(size)
    lines = text.split("\n")
    y = max(0, (height - len(lines) * (size + 2)) // 2)
    for line in lines:
        w = font.getlength(line)
        draw.text(((width - w) / 2 if centre else 2, y), line, fill=(20, 20, 20), font=font)
        y += size + 2
    return np.asarray(image)


def cell_picture(cell: Cell | None, projection: bool, cell_side: int = CELL) -> np.ndarray:
    """One cell ``uint8 (cell_side + 2 FRAME, n * cell_side + ..., 3)``: the patch (and projection), framed.

    Example:
        >>> cell_picture(None, projection=False).shape
        (70, 70, 3)
    """
    count = 2 if projection else 1
    inner_w = count * cell_side + (count - 1) * 2
    out = np.empty((cell_side + 2 * FRAME, inner_w + 2 * FRAME, 3), dtype=np.uint8)
    if cell is None:
        out[...] = EMPTY_CELL
        return out
    out[...] = CHANGED if cell.changed else KEPT
    pictures = [cell.patch] + ([cell.projection] if projection and cell.projection is not None else [])
    x = FRAME
    inner = out[FRAME : FRAME + cell_side, FRAME : FRAME + inner_w]
    inner[...] = BACKGROUND
    for picture in pictures:
        out[FRAME : FRAME + cell_side, x : x + cell_side] = fit_cell(picture.pixels, cell_side, picture.inside)
        x += cell_side + 2
    return out


def layer_block(layer: LayerEvolution, names: Sequence[str], projection: bool, cell_side: int = CELL) -> np.ndarray:
    """One layer of the figure: a title, a row of checkpoint names, then one row per unit."""
    sample = cell_picture(None, projection, cell_side)
    h, w = sample.shape[:2]
    header = [_text(LABEL_WIDTH, 30, "")] + [_text(w, 30, name, 11) for name in names]
    rows = [stack(header, GAP)]
    for unit, cells in zip(layer.units, layer.cells):
        label = _text(LABEL_WIDTH, h, f"unit {unit}", 12, centre=False)
        rows.append(stack([label] + [cell_picture(c, projection, cell_side) for c in cells], GAP))
    changed = sum(c is not None and c.changed for cells in layer.cells for c in cells)
    title = f"{layer.layer}: top-1 patch{' and projection' if projection else ''} of {len(layer.units)} units at each checkpoint ({changed} image changes, framed red)"
    body = stack(rows, GAP, vertical=True)
    head = _text(max(body.shape[1], int(_font(14).getlength(title)) + 8), 24, title, 14, centre=False)
    return stack([head, body], 2, vertical=True)


def evolution_figure(evolution: Evolution, cell_side: int = CELL) -> np.ndarray:
    """The whole figure: every layer's block, shallow to deep, one below the other.

    Example:
        >>> picture = evolution_figure(evolve(net, "photos/", ["a.pt", "b.pt"]))  # doctest: +SKIP
        >>> picture.dtype  # doctest: +SKIP
        dtype('uint8')
    """
    projection = evolution.projection is not None
    blocks = [layer_block(layer, evolution.names, projection, cell_side) for layer in evolution.layers]
    return stack(blocks, BLOCK_GAP, vertical=True)
