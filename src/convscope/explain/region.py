"""Reverse lookup: the units whose receptive fields cover a region of the image, by activation there.

A position ``(row, col)`` of a unit covers the region ``[top, left, bottom, right)`` when its
box (:meth:`~convscope.network.geometry.ReceptiveField.box`) contains it whole. A unit's value
is its largest activation over the positions that cover the region; units without one are left
out. Boxes are separable (rows from ``row``, cols from ``col``), so the covering positions are
the product of the covering rows and the covering cols.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from convscope.errors import ConvscopeError
from convscope.network.geometry import Box, ReceptiveField, UnitFields


@dataclass(frozen=True)
class RegionUnit:
    """A unit under the region: its largest activation at a covering position, and where.

    Attributes:
        unit: the channel.
        activation: the activation there.
        row, col: the position; ``box`` its receptive field.
    """

    unit: int
    activation: float
    row: int
    col: int
    box: Box


def parse_region(text: str) -> Box:
    """``"10,20,60,90"`` -> ``Box(10, 20, 60, 90)`` (top, left, bottom, right; model-input pixels).

    Example:
        >>> parse_region("10,20,60,90")
        Box(top=10, left=20, bottom=60, right=90)
    """
    try:
        values = [int(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or values[2] <= values[0] or values[3] <= values[1]:
        raise ConvscopeError(
            f"--region {text!r} is not TOP,LEFT,BOTTOM,RIGHT with bottom > top and right > left",
            hint="give model-input pixels, e.g. --region 40,60,100,120",
        )
    return Box(*values)


def covering(field: ReceptiveField, rows: int, cols: int, region: Box) -> tuple[torch.Tensor, torch.Tensor]:
    """The rows ``(rows,)`` and cols ``(cols,)`` (bool) whose boxes contain ``region`` along that axis."""
    down = [field.box(r, 0) for r in range(rows)]
    across = [field.box(0, c) for c in range(cols)]
    row_ok = torch.tensor([b.top <= region.top and b.bottom >= region.bottom for b in down], dtype=torch.bool)
    col_ok = torch.tensor([b.left <= region.left and b.right >= region.right for b in across], dtype=torch.bool)
    return row_ok, col_ok


def region_units(activation: torch.Tensor, fields: UnitFields, region: Box, top: int | None = None) -> list[RegionUnit]:
    """The units of a layer whose fields cover ``region``, strongest first (ties: lower unit first).

    Args:
        activation: the layer's ``(C, H, W)`` on the image.
        fields: the receptive field of every unit.
        region: ``[top, left, bottom, right)`` in model-input pixels.
        top: keep this many (``None``: all).

    Example:
        >>> fields = UnitFields.of(ReceptiveField((3, 3), (1, 1), (-1, -1)), 2)
        >>> act = torch.arange(2 * 4 * 4, dtype=torch.float32).view(2, 4, 4)
        >>> [(u.unit, u.row, u.col) for u in region_units(act, fields, Box(1, 1, 3, 3))]
        [(1, 2, 2), (0, 2, 2)]
    """
    channels, rows, cols = activation.shape
    if fields.units != channels:
        raise ConvscopeError(f"the fields cover {fields.units} units, the layer has {channels}", hint="pass the fields of this layer")
    act = activation.detach().float().cpu()
    found: list[RegionUnit] = []
    for start, stop, field in fields.ranges:
        row_ok, col_ok = covering(field, rows, cols, region)
        mask = row_ok[:, None] & col_ok[None, :]
        if not mask.any():
            continue
        values = act[start:stop].masked_fill(~mask, float("-inf")).flatten(1)
        best, where = values.max(dim=1)
        for offset, (value, flat) in enumerate(zip(best.tolist(), where.tolist())):
            row, col = divmod(flat, cols)
            found.append(RegionUnit(start + offset, value, row, col, field.box(row, col)))
    found.sort(key=lambda u: (-u.activation, u.unit))
    return found if top is None else found[:top]
