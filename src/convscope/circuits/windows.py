"""Where a unit's value comes from in the layer below: the window of lower positions it can depend on.

A unit of layer ``upper`` at ``(row, col)`` sees the input box of its receptive field, the union
of the boxes of everything it depends on. So a position ``p`` of layer ``below`` can only matter
to it if the box of ``p`` (of some lower unit) lies inside that box: those positions hold every
position the unit depends on (a superset, which is all that a crop needs to be exact).

A crop of the lower map must keep the grid of ``upper``'s positions: it starts on a multiple of
``S = stride_upper / stride_below`` (an integer, else there is no crop), and the unit's position
in the crop is ``row - start / S``. Each crop is ``span + S`` long per axis (``span`` the
window's length as if the map had no edges), or reaches from the last such multiple that leaves
that much room to the map's end, so a layer's crops come in few sizes and can be batched.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from convscope.network.geometry import ReceptiveField
from convscope.network.layers import LayerInfo


class Window(NamedTuple):
    """A crop of a lower map ``[top, bottom) x [left, right)`` (lower positions) and the shift of the
    upper unit's position in it (``row - shift_row``, ``col - shift_col``)."""

    top: int
    bottom: int
    left: int
    right: int
    shift_row: int
    shift_col: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left


def can_crop(below: LayerInfo, upper: LayerInfo) -> bool:
    """Whether both layers have local fields (non-zero strides) and ``upper``'s strides are whole
    multiples of ``below``'s (the same for all their units).

    Example:
        >>> from convscope.network.geometry import UnitFields
        >>> a = LayerInfo("a", "Conv2d", (4, 8, 8), UnitFields.of(ReceptiveField((3, 3), (1, 1), (-1, -1)), 4))
        >>> b = LayerInfo("b", "Conv2d", (4, 4, 4), UnitFields.of(ReceptiveField((7, 7), (2, 2), (-3, -3)), 4))
        >>> can_crop(a, b), can_crop(b, a)
        (True, False)
    """
    if below.fields is None or upper.fields is None:
        return False
    ratios = set()
    for _, _, high in upper.fields.ranges:
        for _, _, low in below.fields.ranges:
            for axis in (0, 1):
                if low.stride[axis] <= 0 or high.stride[axis] <= 0 or high.stride[axis] % low.stride[axis]:
                    return False
                ratios.add((axis, high.stride[axis] // low.stride[axis]))
    return len(ratios) == 2


def window(below: LayerInfo, upper: LayerInfo, unit: int, row: int, col: int) -> Window:
    """The crop of ``below``'s map (its ``shape[1:]``) that holds what ``upper``'s ``unit`` at
    ``(row, col)`` depends on (see the module's docstring); only where :func:`can_crop`.

    Example:
        >>> from convscope.network.geometry import UnitFields
        >>> a = LayerInfo("a", "Conv2d", (4, 16, 16), UnitFields.of(ReceptiveField((3, 3), (1, 1), (-1, -1)), 4))
        >>> b = LayerInfo("b", "Conv2d", (4, 8, 8), UnitFields.of(ReceptiveField((5, 5), (2, 2), (-2, -2)), 4))
        >>> window(a, b, 0, 4, 0)  # b's row 4 reads a's rows 7-9
        Window(top=6, bottom=11, left=0, right=5, shift_row=3, shift_col=0)
    """
    assert below.fields is not None and upper.fields is not None  # callers check can_crop first
    high = upper.fields.field(unit)
    lows = [field for _, _, field in below.fields.ranges]
    parts = []
    for axis, position in ((0, row), (1, col)):
        ratio = high.stride[axis] // lows[0].stride[axis]
        first, last = _overlapping(high, lows, axis, position)
        span = _overlapping(high, lows, axis, 0)
        length = below.shape[1 + axis]
        size = span[1] - span[0] + 1 + ratio
        start = max(first, 0) // ratio * ratio
        room = max(length - size, 0) // ratio * ratio  # the last start that leaves `size` positions
        parts.append((start, min(start + size, length)) if start <= room else (room, length))
        parts[-1] = (*parts[-1], parts[-1][0] // ratio)
    (top, bottom, shift_row), (left, right, shift_col) = parts
    return Window(top, bottom, left, right, shift_row, shift_col)


def _overlapping(high: ReceptiveField, lows: list[ReceptiveField], axis: int, position: int) -> tuple[int, int]:
    """The first and last lower positions (unclamped) whose box, for any of ``lows``, lies inside
    the box of ``high`` at ``position`` along ``axis`` (boxes uncut by ``end``): a field is the
    union of the fields of what it depends on, so these hold every position it depends on."""
    begin = high.offset[axis] + position * high.stride[axis]
    end = begin + high.size[axis]
    first = min(math.ceil((begin - low.offset[axis]) / low.stride[axis]) for low in lows)
    last = max(math.floor((end - low.offset[axis] - low.size[axis]) / low.stride[axis]) for low in lows)
    return first, last
