"""Receptive-field geometry through views: where rows, cols and channels go in a reshape."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from convscope.network.rf_algebra import UNKNOWN, Geometry, Local, make, segment_at


def _row_major(shape: Sequence[int], dim: int) -> int:
    return math.prod(shape[dim + 1 :])


def reshape(geom: Local, in_shape: Sequence[int], out_shape: Sequence[int]) -> Geometry:
    """Follow rows, cols and the channel dim through a view/reshape/flatten/squeeze (row-major).

    A dim of the output carries the rows if it has the rows' size and the same
    row-major stride: the row index is then the same digit of the flat index. A
    per-channel field needs its channel dim kept the same way (else UNKNOWN).
    """
    spatial = _reshape_spatial(geom, in_shape, out_shape)
    if not isinstance(spatial, Local) or geom.chan is None:
        return spatial
    free = [j for j in range(len(out_shape)) if j not in spatial.dims]
    same = lambda d: [j for j in free if out_shape[j] == in_shape[d] and _row_major(out_shape, j) == _row_major(in_shape, d)]  # noqa: E731
    if geom.inner is None:
        if same(geom.chan):
            return replace(spatial, chan=same(geom.chan)[0])
        size, step = in_shape[geom.chan], _row_major(in_shape, geom.chan)
        for j in free:  # split in two: (outer, inner) with the same row-major order
            if j + 1 in free and out_shape[j] * out_shape[j + 1] == size and _row_major(out_shape, j + 1) == step:
                if out_shape[j] > 1 and out_shape[j + 1] > 1:
                    return replace(spatial, chan=j, inner=j + 1)
        return UNKNOWN
    outer, inner = geom.chan, geom.inner
    if same(outer) and same(inner) and same(outer)[0] != same(inner)[0]:
        return replace(spatial, chan=same(outer)[0], inner=same(inner)[0])
    n_outer, n_inner = in_shape[outer], in_shape[inner]
    first, second = min(outer, inner), max(outer, inner)
    if second != first + 1:
        return UNKNOWN
    for k in free:
        if out_shape[k] == n_outer * n_inner and _row_major(out_shape, k) == _row_major(in_shape, second):
            units = [segment_at(geom, u)[1:] for u in range(n_outer * n_inner)] if not geom.uniform else None
            if units is None:
                return replace(spatial, chan=None, inner=None)
            if outer > inner:  # merged in tensor order (inner, outer): a transpose of the two
                units = [units[(j % n_outer) * n_inner + j // n_outer] for j in range(n_outer * n_inner)]
            return make([(1, r, c) for r, c in units], spatial.dims, spatial.hw, k, spatial.padding)
    return UNKNOWN


def _reshape_spatial(geom: Local, in_shape: Sequence[int], out_shape: Sequence[int]) -> Geometry:
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
