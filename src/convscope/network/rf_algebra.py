"""Receptive-field geometry as algebra: affine fields per axis and how operations combine them.

- :class:`Local`: an affine field per axis (:class:`Axis`), plus where the rows and
  cols live in the tensor (dims 2, 3 for NCHW; 1, 2 after a permute to NHWC; one
  merged ``rows * cols`` dim after a flattening view);
- :class:`Global`: every element sees one box of the image (after a global pool, a
  mean over the map, a norm with batch statistics);
- :data:`UNKNOWN`: no exact answer.

The functions here are pure; :mod:`convscope.network.rf_ops` applies them to the
operators of a forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

@dataclass(frozen=True)
class Axis:
    """Affine field along one axis: position ``i`` sees ``[offset + i*stride, ... + size)``."""

    size: int
    stride: int
    offset: int

    def window(self, kernel: int, stride: int, padding: int, dilation: int) -> "Axis":
        """The axis after a sliding window (convolution or pooling) over this one."""
        return Axis(
            self.size + (kernel - 1) * dilation * self.stride,
            self.stride * stride,
            self.offset - padding * self.stride,
        )

    def extent(self, positions: int, limit: int) -> tuple[int, int]:
        """``[start, end)`` seen by all ``positions``, clipped to ``[0, limit)``."""
        end = self.offset + (positions - 1) * self.stride + self.size
        return max(self.offset, 0), min(end, limit)


@dataclass(frozen=True)
class Local:
    """A map whose positions see affine boxes.

    ``dims`` are the tensor dims of rows and cols; they are equal when both are
    merged into one dim (row-major, index ``row * cols + col``). ``hw`` is the map
    height and width.
    """

    rows: Axis
    cols: Axis
    dims: tuple[int, int]
    hw: tuple[int, int]

    @property
    def merged(self) -> bool:
        return self.dims[0] == self.dims[1]


@dataclass(frozen=True)
class Global:
    """Every element sees the box ``[top, left, bottom, right)`` (clipped to the image)."""

    box: tuple[int, int, int, int]


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
Geometry = Local | Global | _Unknown


def identity(height: int, width: int) -> Local:
    """The geometry of the model input ``(N, C, height, width)``."""
    return Local(Axis(1, 1, 0), Axis(1, 1, 0), (2, 3), (height, width))


# --------------------------------------------------------------------- combining


def to_global(geom: Local | Global, image: tuple[int, int]) -> Global:
    """The box seen by the whole map, clipped to the ``image`` (height, width)."""
    if isinstance(geom, Global):
        return geom
    top, bottom = geom.rows.extent(geom.hw[0], image[0])
    left, right = geom.cols.extent(geom.hw[1], image[1])
    return Global((top, left, bottom, right))


def union(parts: Sequence[Geometry], image: tuple[int, int]) -> Geometry | None:
    """Geometry of an element that depends on all ``parts`` (already in output dims).

    Locals need the same dims, map size and stride; any Global makes the result global.
    ``None`` when there is no part (the result does not depend on the input).
    """
    if not parts:
        return None
    if any(p is UNKNOWN for p in parts):
        return UNKNOWN
    locals_ = [p for p in parts if isinstance(p, Local)]
    if any(isinstance(p, Global) for p in parts):
        boxes = [to_global(p, image).box for p in parts]  # type: ignore[arg-type]
        return Global(
            (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
        )
    first = locals_[0]
    if any(p.dims != first.dims or p.hw != first.hw for p in locals_):
        return UNKNOWN
    axes = []
    for pick in (lambda g: g.rows, lambda g: g.cols):
        items = [pick(p) for p in locals_]
        if len({a.stride for a in items}) != 1:
            return UNKNOWN
        start = min(a.offset for a in items)
        end = max(a.offset + a.size for a in items)
        axes.append(Axis(end - start, items[0].stride, start))
    return replace(first, rows=axes[0], cols=axes[1])


def broadcast(geom: Geometry, in_shape: Sequence[int], out_shape: Sequence[int]) -> Geometry:
    """Map a geometry through numpy-style broadcasting (dims aligned on the right)."""
    if not isinstance(geom, Local):
        return geom
    shift = len(out_shape) - len(in_shape)
    dims = (geom.dims[0] + shift, geom.dims[1] + shift)
    if shift < 0 or any(in_shape[d] != out_shape[d + shift] for d in set(geom.dims)):
        return UNKNOWN  # a spatial dim was stretched from size 1: not affine
    return replace(geom, dims=dims)


# --------------------------------------------------------------------- shape rules


def _row_major(shape: Sequence[int], dim: int) -> int:
    return math.prod(shape[dim + 1 :])


def reshape(geom: Local, in_shape: Sequence[int], out_shape: Sequence[int]) -> Geometry:
    """Follow rows and cols through a view/reshape/flatten/squeeze (row-major order).

    A dim of the output carries the rows if it has the rows' size and the same
    row-major stride: the row index is then the same digit of the flat index.
    """
    height, width = geom.hw
    col_step = _row_major(in_shape, geom.dims[1])
    row_step = col_step * width if geom.merged else _row_major(in_shape, geom.dims[0])
    rows = [j for j, n in enumerate(out_shape) if n == height and _row_major(out_shape, j) == row_step]
    cols = [j for j, n in enumerate(out_shape) if n == width and _row_major(out_shape, j) == col_step]
    for r in rows:
        for c in cols:
            if r != c:
                return replace(geom, dims=(r, c))
    if row_step == col_step * width:
        for j, n in enumerate(out_shape):
            if n == height * width and _row_major(out_shape, j) == col_step:
                return replace(geom, dims=(j, j))
    return UNKNOWN


def move_dims(geom: Local, mapping: Callable[[int], int | None]) -> Geometry:
    """Renumber dims with ``mapping(old) -> new`` (``None``: the dim is gone)."""
    new = (mapping(geom.dims[0]), mapping(geom.dims[1]))
    if new[0] is None or new[1] is None:
        return UNKNOWN
    return replace(geom, dims=(new[0], new[1]))


def shift_axis(geom: Local, dim: int, start: int, step: int, out_size: int) -> Geometry:
    """Rows or cols (whichever lives at ``dim``) after taking ``start::step`` of them."""
    if dim not in geom.dims:
        return geom
    if geom.merged:
        return geom if start == 0 and step == 1 and out_size == geom.hw[0] * geom.hw[1] else UNKNOWN
    which = geom.dims.index(dim)
    axis = (geom.rows, geom.cols)[which]
    axis = Axis(axis.size, axis.stride * step, axis.offset + start * axis.stride)
    hw = list(geom.hw)
    hw[which] = out_size
    if which == 0:
        return replace(geom, rows=axis, hw=(hw[0], hw[1]))
    return replace(geom, cols=axis, hw=(hw[0], hw[1]))


def sliding_window(
    geom: Local,
    ndim: int,
    out_hw: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
) -> Geometry:
    """A 2-d convolution or pooling over the last two dims of an ``ndim`` tensor."""
    if geom.dims != (ndim - 2, ndim - 1):
        return UNKNOWN
    rows = geom.rows.window(kernel[0], stride[0], padding[0], dilation[0])
    cols = geom.cols.window(kernel[1], stride[1], padding[1], dilation[1])
    return Local(rows, cols, geom.dims, (out_hw[0], out_hw[1]))


def pad(geom: Local, pads: Sequence[int], in_shape: Sequence[int], out_shape: Sequence[int]) -> Geometry:
    """``F.pad`` semantics: ``pads`` come in (before, after) pairs from the last dim back.

    Reflect and replicate pads get the same box as zero pads: the box is in the
    coordinates of the padded image the network saw.
    """
    for i in range(len(pads) // 2):
        dim = len(in_shape) - 1 - i
        if dim in geom.dims:
            before = pads[2 * i]
            geom = shift_axis(geom, dim, -before, 1, out_shape[dim])
            if not isinstance(geom, Local):
                return geom
    return geom


# --------------------------------------------------------------------- the mode
