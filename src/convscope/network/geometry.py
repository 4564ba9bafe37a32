"""Receptive-field geometry: which input pixels one position of a layer sees.

A :class:`ReceptiveField` is affine along each axis: position ``row`` of a layer
sees input rows ``[offset + row * stride, offset + row * stride + size)``. The
offset is negative when the network pads; a box may then reach past the image
border (the padding that the network saw).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from convscope.network.modes import dry_run
from convscope.network.rf_algebra import Geometry, Global, Local, identity
from convscope.network.rf_ops import GeometryMode
from convscope.hooks import capture, run_until_captured


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


def receptive_fields(
    model: nn.Module, layers: Sequence[str], input_size: tuple[int, int]
) -> dict[str, ReceptiveField | None]:
    """The exact receptive field of every named layer, for an input ``(1, 3, H, W)``.

    One forward pass of a zero image runs on the model's device, in eval mode and
    without gradients, while :class:`~convscope.network.rf_ops.GeometryMode` follows
    the geometry of every tensor through convolutions, pools, pads, slices,
    permutes, views and element- or channel-wise operators. A layer gets ``None``
    where no exact answer exists: after an upsampling, a sum of maps with different
    strides, any operator without a rule, or an output whose rows and cols are not
    its dims 2 and 3. A layer whose every position sees the whole map gets stride
    ``(0, 0)`` and the box of the image it sees (the whole image for the usual
    global pool): ``ReceptiveField(size=(H, W), stride=(0, 0), offset=(0, 0))``.

    Args:
        model: any ``nn.Module`` taking ``(N, 3, H, W)``; its train/eval mode is restored.
        layers: dotted module names, each run once per forward pass.
        input_size: ``(H, W)`` of the model input.

    Raises:
        LayerError: a name is unknown, runs twice, or does not return a tensor.
        GeometryError: the model cannot run on an input this small.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1))
        >>> receptive_fields(model, ["2"], (32, 32))["2"]
        ReceptiveField(size=(8, 8), stride=(2, 2), offset=(-3, -3))
    """
    if not layers:
        return {}
    height, width = input_size
    found: dict[str, ReceptiveField | None] = {}
    mode = GeometryMode(input_size)

    def record(name: str, output: torch.Tensor) -> None:
        found[name] = _field(mode.geometry(output), output)

    parameter = next(itertools.chain(model.parameters(), model.buffers()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    image = torch.zeros(1, 3, height, width, device=device, dtype=dtype)
    mode.track(image, identity(height, width))
    with dry_run(model, (height, width)), capture(model, layers, record, stop_after_last=True), mode:
        run_until_captured(model, image)
    return {name: found.get(name) for name in layers}


def _field(geom: Geometry | None, output: torch.Tensor) -> ReceptiveField | None:
    """The ReceptiveField of an ``(N, C, H, W)`` output (or a flat global one)."""
    if isinstance(geom, Global):
        top, left, bottom, right = geom.box
        return ReceptiveField(size=(bottom - top, right - left), stride=(0, 0), offset=(top, left))
    if isinstance(geom, Local) and output.dim() == 4 and geom.dims == (2, 3):
        return ReceptiveField(
            size=(geom.rows.size, geom.cols.size),
            stride=(geom.rows.stride, geom.cols.stride),
            offset=(geom.rows.offset, geom.cols.offset),
        )
    return None
