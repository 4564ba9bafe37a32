"""The pieces that an atlas, a layer and a unit show in Jupyter, built from :mod:`.html`.

A unit card holds its top patches (a grid, rank 0 top left, each with its activation and
image label), the stored projection grid, its bottom patches, the histogram of each image's
strongest activation with its quantiles, its firing rate, its class means as bars and its
suggested label. A layer shows its summary and a grid of units; an atlas its layer table.
Each object lays out its own card (:meth:`~convscope.notebook.unit.Unit.to_html`, ...) from
the boxes, sections, patch grids and tiles here, which take plain data only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from convscope.notebook.html import CONFIDENCE, FONT, INK, MUTED, PAPER, RULE, esc, img, number, png_uri
from convscope.notebook.records import Hit, Label
from convscope.render.grid import grid_shape
from convscope.render.patch import mark_padding

#: Side of a patch cell in a unit card, and of a bottom patch; cell of a layer grid thumbnail.
PATCH_SIDE, BOTTOM_SIDE, THUMB_CELL = 84, 72, 30

BOX = f"{FONT}; color: {INK}; background: {PAPER}; border: 1px solid {RULE}; border-radius: 6px; padding: 12px 14px"
HEADING = f"color: {MUTED}; font-size: 11px; text-transform: uppercase; letter-spacing: 0.04em; margin: 0 0 4px 0"
SMALL = f"color: {MUTED}; font-size: 11px"


def display_patch(patch: np.ndarray, inside: np.ndarray, side: int) -> np.ndarray:
    """``patch`` ``(h, w, 3)`` as a unit card shows it in a ``side``-pixel cell, striped past the
    border at the shown scale (as the atlas's grid cells are), so the padding of a small patch
    stays visible: enlarged by the largest whole factor that fits (nearest neighbour), kept as it
    is up to ``2 * side`` (the browser scales it), reduced to ``2 * side`` (box filter) beyond.

    Example:
        >>> cell = display_patch(np.zeros((3, 3, 3), np.uint8), np.eye(3, dtype=bool), 12)
        >>> cell.shape, cell[0, 4].tolist()
        ((12, 12, 3), [96, 96, 96])
        >>> display_patch(np.zeros((512, 256, 3), np.uint8), np.ones((512, 256), bool), 84).shape
        (168, 84, 3)
    """
    longest = max(patch.shape[:2])
    factor = side // longest
    if factor > 1:
        patch = patch.repeat(factor, axis=0).repeat(factor, axis=1)
        inside = inside.repeat(factor, axis=0).repeat(factor, axis=1)
    elif longest > 2 * side:
        scale = 2 * side / longest
        size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
        patch = np.asarray(Image.fromarray(patch).resize(size, Image.Resampling.BOX))
        inside = np.asarray(Image.fromarray(inside).resize(size, Image.Resampling.NEAREST))
    return mark_padding(patch, inside)


def patch_grid(pieces: Sequence[tuple[np.ndarray, np.ndarray]], hits: Sequence[Hit], k: int, side: int) -> str:
    """Patches on a near-square grid of ``side``-pixel cells, each with its activation and label."""
    cols = grid_shape(max(k, 1))[1]
    cells = []
    for (pixels, inside), hit in zip(pieces, hits):
        patch = display_patch(pixels, inside, side)
        where = f"row {hit.row}, col {hit.col}, box [{', '.join(map(str, hit.box))})"
        title = f"rank {hit.rank} · {number(hit.activation)} · {hit.image}{f' ({hit.label})' if hit.label else ''} · {where}"
        caption = number(hit.activation) + (f" · {hit.label}" if hit.label else "")
        cells.append(
            f'<div style="width: {side}px">'
            f'<div style="width: {side}px; height: {side}px; display: flex; align-items: center; justify-content: center; background: #f6f8fa">'
            f"{img(patch, side=side, title=title)}</div>"
            f'<div style="{SMALL}; white-space: nowrap; overflow: hidden; text-overflow: ellipsis" title="{esc(title)}">{esc(caption)}</div></div>'
        )
    return f'<div style="display: grid; grid-template-columns: repeat({cols}, {side}px); gap: 4px">{"".join(cells)}</div>'


def unit_tile(picture: np.ndarray, index: int, label: Label | None, dead: bool, class_name: str | None) -> str:
    """A unit in a layer grid: ``picture`` (its top patches as one small grid), its number
    ``index`` and a line below: dead, its suggested ``label`` or the class it scores."""
    if dead:
        line = '<span style="color: #cf222e">dead</span>'
    elif label is not None:
        dot = f'<span style="color: {CONFIDENCE.get(label.confidence, MUTED)}">●</span>'
        line = f'{dot} <span title="{esc(label.text)}">{esc(label.name)}</span>'
    else:
        line = f'<span style="color: {MUTED}">{esc(class_name or "")}</span>'
    width = picture.shape[1]
    return (
        f'<div style="width: {width}px">'
        f'<img src="{png_uri(picture)}" width="{width}" height="{picture.shape[0]}" alt="unit {index}" style="display: block">'
        f'<div style="font-size: 11px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis"><b>{index}</b> {line}</div></div>'
    )


def section(heading: str, body: str) -> str:
    """``body`` under a small upper-case ``heading``."""
    return f'<div><div style="{HEADING}">{esc(heading)}</div>{body}</div>'


def row(items: Sequence[str], gap: int) -> str:
    """``items`` side by side, wrapping, ``gap`` pixels apart."""
    return f'<div style="display: flex; flex-wrap: wrap; align-items: flex-start; gap: {gap}px; margin-top: 12px">{"".join(items)}</div>'


def grid_width(k: int, side: int) -> int:
    """The width in pixels of :func:`patch_grid` of ``k`` patches in ``side``-pixel cells."""
    cols = grid_shape(max(k, 1))[1]
    return cols * side + (cols - 1) * 4


def name_of_class(names: Sequence[str] | None, index: Any) -> str:
    """The name of class ``index`` in ``names``, or ``"class <index>"`` where there is none.

    Example:
        >>> name_of_class(("cat", "dog"), 1), name_of_class(None, 1), name_of_class(("cat",), 3)
        ('dog', 'class 1', 'class 3')
    """
    if names is not None and isinstance(index, int) and 0 <= index < len(names):
        return str(names[index])
    return f"class {index}"
