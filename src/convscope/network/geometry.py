"""Receptive-field geometry: which input pixels one position of one unit sees.

A :class:`ReceptiveField` is affine along each axis: position ``row`` of a layer
sees input rows ``[offset + row * stride, offset + row * stride + size)``, cut at
``end`` where the layer never reads the last rows (windows below it that do not tile
their input: SqueezeNet's unpadded conv1 at 96 px never reads row 95). The offset is
negative when the network pads; a box may then reach past the image border (the
padding that the network saw, filled as its ``padding`` says).
A layer's units may see different fields (the branches of a Fire or Inception
module, concatenated): :class:`UnitFields` holds one field per run of units.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

import torch
from torch import nn

from convscope.network.modes import dry_run
from convscope.network.rf_algebra import PADDING_MODES, Geometry, Global, Local, bounded, fold, identity
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
    """Receptive field of every position of one unit (or layer), per axis ``(rows, cols)``.

    Attributes:
        size: box height and width in input pixels (a box cut by ``end`` is shorter).
        stride: input pixels between neighbouring positions (0 for a global
            layer, whose every position sees the whole input).
        offset: input row/col of the box of position (0, 0); negative where the
            network pads.
        padding: what fills box pixels past the image border: ``"zeros"`` (a
            constant), ``"reflect"`` (torch's reflect: numpy's 'reflect'),
            ``"replicate"`` (the edge pixel) or ``"circular"`` (wrapped);
            :meth:`support` gives the image pixels a box shows.
        end: per axis, the first input row / col that no position of the layer reads
            (``None``: none is cut). Boxes stop there: past it lie image rows
            never seen (their padding the network saw is not drawn). Set only where
            it cuts a box inside the image (or, with another padding than zeros,
            inside what the padding shows).

    Example:
        >>> rf = ReceptiveField(size=(11, 11), stride=(4, 4), offset=(-2, -2))
        >>> rf.box(1, 0)
        Box(top=2, left=-2, bottom=13, right=9)
        >>> ReceptiveField((19, 19), (4, 4), (-4, -4), end=(95, None)).box(21, 21)
        Box(top=80, left=80, bottom=95, right=99)
    """

    size: tuple[int, int]
    stride: tuple[int, int]
    offset: tuple[int, int]
    padding: str = "zeros"
    end: tuple[int | None, int | None] = (None, None)

    def box(self, row: int, col: int) -> Box:
        """The input box seen by position ``(row, col)``: ``size`` pixels, or fewer where
        ``end`` cuts it; may reach past the image."""
        top = self.offset[0] + row * self.stride[0]
        left = self.offset[1] + col * self.stride[1]
        bottom, right = top + self.size[0], left + self.size[1]
        if self.end[0] is not None:
            bottom = max(top, min(bottom, self.end[0]))
        if self.end[1] is not None:
            right = max(left, min(right, self.end[1]))
        return Box(top, left, bottom, right)

    def support(self, row: int, col: int, image: tuple[int, int]) -> tuple[list[int], list[int]]:
        """The image rows and cols (sorted) whose pixels position ``(row, col)`` sees.

        Example:
            >>> ReceptiveField((3, 3), (1, 1), (-1, -1), padding="circular").support(0, 1, (5, 5))
            ([0, 1, 4], [0, 1, 2])
        """
        box = self.box(row, col)
        found = []
        for start, end, length in ((box.top, box.bottom, image[0]), (box.left, box.right, image[1])):
            seen = np.unique(fold(np.arange(start, end), length, self.padding))
            found.append([int(v) for v in seen if v >= 0])
        return found[0], found[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly; ``padding`` only when it is not ``"zeros"``, ``end`` (``[rows, cols]``,
        ``null`` where not cut) only when it cuts (older atlases lack both)."""
        d: dict[str, Any] = {"size": list(self.size), "stride": list(self.stride), "offset": list(self.offset)}
        if self.padding != "zeros":
            d["padding"] = self.padding
        if self.end != (None, None):
            d["end"] = list(self.end)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ReceptiveField":
        padding = d.get("padding") or "zeros"
        if padding not in PADDING_MODES:
            raise ValueError(f"unknown padding {padding!r}; one of {PADDING_MODES}")
        end = tuple(None if v is None else int(v) for v in d.get("end") or (None, None))
        if len(end) != 2:
            raise ValueError(f"end must be [rows, cols], got {d.get('end')!r}")
        return cls(tuple(d["size"]), tuple(d["stride"]), tuple(d["offset"]), padding, end)  # type: ignore[arg-type]

    def text(self) -> str:
        """Short display: ``11 s4 o-2`` (``HxW`` where rows and cols differ), ``global``;
        ``end95x-`` where ``end`` cuts the rows at 95 and not the cols."""
        if self.stride == (0, 0):
            return "global"
        pair = lambda v: str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"  # noqa: E731
        mode = "" if self.padding == "zeros" else f" {self.padding}"
        end = "" if self.end == (None, None) else " end" + pair(["-" if v is None else v for v in self.end])
        return f"{pair(self.size)} s{pair(self.stride)} o{pair(self.offset)}{mode}{end}"


@dataclass(frozen=True)
class UnitFields:
    """The receptive field of every unit of one layer, as runs of units sharing one field.

    Attributes:
        ranges: ``(start, stop, field)``: units ``start <= u < stop`` see ``field``;
            in order, covering ``0 .. units`` without gaps.

    Example:
        >>> a, b = ReceptiveField((5, 5), (2, 2), (-2, -2)), ReceptiveField((9, 9), (2, 2), (-4, -4))
        >>> fields = UnitFields(((0, 64, a), (64, 128, b)))
        >>> fields.field(70) == b, fields.uniform, fields.units
        (True, None, 128)
        >>> UnitFields.from_list(fields.to_list()) == fields
        True
    """

    ranges: tuple[tuple[int, int, ReceptiveField], ...]

    def __post_init__(self) -> None:
        expected = 0
        for start, stop, _ in self.ranges:
            if start != expected or stop <= start:
                raise ValueError(f"unit ranges must cover 0.. in order without gaps: {self.ranges}")
            expected = stop
        if not self.ranges:
            raise ValueError("a layer needs at least one unit range")

    @classmethod
    def of(cls, field: ReceptiveField, units: int) -> "UnitFields":
        """One field for all ``units``."""
        return cls(((0, units, field),))

    @property
    def units(self) -> int:
        return self.ranges[-1][1]

    @property
    def uniform(self) -> ReceptiveField | None:
        """The one field when every unit shares it, else ``None``."""
        return self.ranges[0][2] if len(self.ranges) == 1 else None

    def field(self, unit: int) -> ReceptiveField:
        """The field of ``unit`` (IndexError past the last unit)."""
        for start, stop, field in self.ranges:
            if start <= unit < stop:
                return field
        raise IndexError(f"unit {unit} is not in 0..{self.units - 1}")

    def to_list(self) -> list[dict[str, Any]]:
        """JSON: ``[{"units": [start, stop], "size": [h, w], "stride": [..], "offset": [..]}, ...]``."""
        return [{"units": [start, stop], **field.to_dict()} for start, stop, field in self.ranges]

    @classmethod
    def from_list(cls, items: Sequence[dict[str, Any]]) -> "UnitFields":
        return cls(tuple((int(d["units"][0]), int(d["units"][1]), ReceptiveField.from_dict(d)) for d in items))

    def text(self, limit: int = 4) -> str:
        """Short display: the one field; ``units 0-63: 11 s4 o0; 64-127: 19 s4 o-4``; past
        ``limit`` ranges only the distinct fields: ``48 unit ranges: 15 s8 o-7 | 31 s8 o-15``."""
        if self.uniform is not None:
            return self.uniform.text()
        if len(self.ranges) > limit:
            distinct = list(dict.fromkeys(field.text() for _, _, field in self.ranges))
            return f"{len(self.ranges)} unit ranges: " + " | ".join(distinct)
        span = lambda a, b: str(a) if b == a + 1 else f"{a}-{b - 1}"  # noqa: E731
        return "units " + "; ".join(f"{span(start, stop)}: {field.text()}" for start, stop, field in self.ranges)


def receptive_fields(
    model: nn.Module, layers: Sequence[str], input_size: tuple[int, int]
) -> dict[str, UnitFields | None]:
    """The exact receptive field of every unit of every named layer, for an input ``(1, 3, H, W)``.

    One forward pass of a zero image runs on the model's device, in eval mode and
    without gradients, while :class:`~convscope.network.rf_ops.GeometryMode` follows
    the geometry of every tensor through convolutions, pools, pads, slices,
    concatenations, permutes, views and element- or channel-wise operators. A layer
    gets ``None`` where no exact answer exists: after an upsampling, a sum of maps
    with different strides, any operator without a rule, or an output whose units,
    rows and cols are not three of its dims. A layer whose every position sees the
    whole map gets stride ``(0, 0)`` and the box of the image it sees (the whole
    image for the usual global pool), the same for all units.

    Args:
        model: any ``nn.Module`` taking ``(N, 3, H, W)``; its train/eval mode is restored.
        layers: dotted module names, each run once per forward pass.
        input_size: ``(H, W)`` of the model input.

    Raises:
        LayerError: a name is unknown, runs twice, or does not return a tensor.
        GeometryError: the model cannot run on an input this small.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1))
        >>> receptive_fields(model, ["2"], (32, 32))["2"].uniform
        ReceptiveField(size=(8, 8), stride=(2, 2), offset=(-3, -3), padding='zeros', end=(None, None))
    """
    return {name: fields for name, (fields, _) in unit_geometry(model, layers, input_size).items()}


def unit_geometry(
    model: nn.Module, layers: Sequence[str], input_size: tuple[int, int]
) -> dict[str, tuple[UnitFields | None, tuple[int, int, int] | None]]:
    """Per layer, the fields of its units and the tensor dims of its ``(units, rows, cols)``.

    The dims count the batch as dim 0: ``(1, 2, 3)`` for NCHW, ``(3, 1, 2)`` for
    NHWC; ``None`` where the engine lost track of them (an unknown geometry, a flat
    ``(N, units)`` output, a global 4-d output after an operator that moves dims: its
    one field is then given for ``output.shape[1]`` units). See :func:`receptive_fields`.
    """
    if not layers:
        return {}
    height, width = input_size
    found: dict[str, tuple[UnitFields | None, tuple[int, int, int] | None]] = {}
    mode = GeometryMode(input_size)

    def record(name: str, output: torch.Tensor) -> None:
        found[name] = _unit_fields(mode.geometry(output), output, input_size)

    parameter = next(itertools.chain(model.parameters(), model.buffers()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    image = torch.zeros(1, 3, height, width, device=device, dtype=dtype)
    mode.track(image, identity(height, width))
    with dry_run(model, (height, width)), capture(model, layers, record, stop_after_last=True), mode:
        run_until_captured(model, image)
    return {name: found.get(name, (None, None)) for name in layers}


def _unit_fields(
    geom: Geometry | None, output: torch.Tensor, image: tuple[int, int]
) -> tuple[UnitFields | None, tuple[int, int, int] | None]:
    """The fields and ``(units, rows, cols)`` dims of an output (4-d, or a flat global ``(N, C)``)."""
    if isinstance(geom, Global):
        top, left, bottom, right = geom.box
        field = ReceptiveField(size=(bottom - top, right - left), stride=(0, 0), offset=(top, left))
        if output.dim() == 2:
            return UnitFields.of(field, output.shape[1]), None
        dims = _unit_dims(geom.dims, output.dim())
        if dims is None:  # the same box for all units; their count assumes NCHW
            return (UnitFields.of(field, output.shape[1]) if output.dim() == 4 else None), None
        return UnitFields.of(field, output.shape[dims[0]]), dims
    if not isinstance(geom, Local) or output.dim() != 4 or geom.merged or geom.inner is not None:
        return None, None
    dims = _unit_dims(geom.dims, 4)
    if dims is None or geom.chan not in (None, dims[0]):
        return None, None
    ranges, start = [], 0
    units = output.shape[dims[0]]
    for count, rows, cols in geom.segments:
        stop = units if geom.uniform else start + count
        rows, cols = (bounded(a, a.end, n, limit, geom.padding) for a, n, limit in zip((rows, cols), geom.hw, image))
        field = ReceptiveField(
            size=(rows.size, cols.size), stride=(rows.stride, cols.stride), offset=(rows.offset, cols.offset),
            padding=geom.padding, end=(rows.end, cols.end),
        )
        ranges.append((start, stop, field))
        start = stop
    if start != units:  # the channel runs do not cover the units: know nothing rather than guess
        return None, None
    return UnitFields(tuple(ranges)), dims


def _unit_dims(spatial: tuple[int, int] | None, ndim: int) -> tuple[int, int, int] | None:
    if spatial is None or ndim != 4 or 0 in spatial or spatial[0] == spatial[1]:
        return None
    (units,) = {1, 2, 3} - set(spatial)
    return units, spatial[0], spatial[1]
