"""Where to crop the input so that one activation is computed exactly as on the full image.

A single activation depends only on the input under its box, so the network can
run on a crop. Two things make a crop differ from the full image:

- *stride alignment*: every layer samples the input on a grid; the crop's first
  row must be a multiple of the layer's total stride, or the crop's grid shifts;
- *zero padding*: inner layers pad the crop's edges with zeros where the full
  image has pixels. Those wrong values stay outside the activation's cone of
  dependence as long as the crop covers the box; where the box reaches past the
  image, the crop must run to the image edge, so that the padding there is the
  padding the network saw.

Along each axis :func:`axis_crop` picks one of three crops, so that hits of one
layer fall into few crop shapes (batched together): an *inner* crop of
``size + (offset mod stride)`` pixels starting on the grid (clamped to 0 at the
top/left edge), a *far-edge* crop shared by every box that reaches past the
bottom/right edge, or the whole axis when a box is as large as the image. The
caller still verifies each crop shape numerically against the full image, with a
hit whose full-image projection is not all zeros (a zero one would agree with any
crop; see :func:`convscope.project.projection._verify_crops`).
"""

from __future__ import annotations

from typing import NamedTuple

from convscope.network.geometry import ReceptiveField


class Crop(NamedTuple):
    """A crop of the input, ``[top, top + height) x [left, left + width)``, and the
    target's position ``(row, col)`` in the layer output computed from the crop."""

    top: int
    left: int
    height: int
    width: int
    row: int
    col: int


def axis_crop(position: int, size: int, stride: int, offset: int, length: int) -> tuple[int, int, int]:
    """``(start, extent, position_in_crop)`` along one axis of ``length`` input pixels.

    Example:
        >>> axis_crop(5, size=11, stride=4, offset=-2, length=224)  # box [18, 29)
        (16, 13, 1)
    """
    if stride <= 0:
        return 0, length, position
    inner = size + offset % stride
    if inner >= length:
        return 0, length, position
    start = max(0, (position + offset // stride) * stride)
    if start + inner > length:
        start = max(0, (length - inner) // stride * stride)
        return start, length - start, position - start // stride
    return start, inner, position - start // stride


def plan_crop(rf: ReceptiveField, row: int, col: int, height: int, width: int) -> Crop:
    """The crop of a ``height x width`` input on which position ``(row, col)`` of the
    layer with receptive field ``rf`` has the same value and gradient.

    Example:
        >>> plan_crop(ReceptiveField((11, 11), (4, 4), (-2, -2)), 0, 54, 224, 224)
        Crop(top=0, left=208, height=13, width=16, row=0, col=2)
    """
    top, h, r = axis_crop(row, rf.size[0], rf.stride[0], rf.offset[0], height)
    left, w, c = axis_crop(col, rf.size[1], rf.stride[1], rf.offset[1], width)
    return Crop(top, left, h, w, r, c)
