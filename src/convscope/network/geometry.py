"""Receptive-field geometry: which input pixels one position of a layer sees.

A :class:`ReceptiveField` is affine along each axis: position ``row`` of a layer
sees input rows ``[offset + row * stride, offset + row * stride + size)``. The
offset is negative when the network pads; a box may then reach past the image
border (the padding that the network saw).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class Box(NamedTuple):
    """A half-open rectangle ``[top, left, bottom, right)`` in model-input pixels."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of every position of one layer, per axis ``(rows, cols)``.

    Attributes:
        size: box height and width in input pixels.
        stride: input pixels between neighbouring positions (0 for a global
            layer, whose every position sees the whole input).
        offset: input row/col of the box of position (0, 0); negative where the
            network pads.

    Example:
        >>> rf = ReceptiveField(size=(11, 11), stride=(4, 4), offset=(-2, -2))
        >>> rf.box(1, 0)
        Box(top=2, left=-2, bottom=13, right=9)
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[int, int]

    def box(self, row: int, col: int) -> Box:
        """The input box seen by position ``(row, col)``; may reach past the image."""
        top = self.offset[0] + row * self.stride[0]
        left = self.offset[1] + col * self.stride[1]
        return Box(top, left, top + self.size[0], left + self.size[1])

    def to_dict(self) -> dict[str, list[int]]:
        return {"size": list(self.size), "stride": list(self.stride), "offset": list(self.offset)}

    @classmethod
    def from_dict(cls, d: dict[str, list[int]]) -> "ReceptiveField":
        return cls(tuple(d["size"]), tuple(d["stride"]), tuple(d["offset"]))  # type: ignore[arg-type]
