"""Per-channel receptive fields: the rules along a :class:`Local`'s channel dim.

A field differs per channel after a concatenation of branches (SqueezeNet's Fire,
Inception, DenseNet). These pure functions keep the compact runs of channels
(segments) exact through slicing, concatenation, grouped convolution, channel
shuffles and whatever mixes all channels (a dense conv, a linear layer, a norm or
reduction over channels).
"""

from __future__ import annotations

from collections.abc import Sequence

from convscope.network.rf_algebra import (
    UNKNOWN,
    Axis,
    Geometry,
    Global,
    Local,
    Segment,
    common_padding,
    make,
    move_dims,
    unite_axes,
    union,
)

Pair = tuple[Axis, Axis]


def per_unit(g: Local, units: int) -> list[Pair]:
    """The (rows, cols) axes of each of the ``units`` channels of ``g``'s channel dim."""
    if g.uniform:
        return [g.segments[0][1:]] * units  # type: ignore[list-item]
    out: list[Pair] = []
    for n, rows, cols in g.segments:
        out.extend([(rows, cols)] * n)
    if len(out) != units:
        raise ValueError(f"the field has {len(out)} channels, the tensor {units}")
    return out


def from_units(g: Local, pairs: Sequence[Pair], chan: int | None) -> Local:
    """``g`` with one (rows, cols) per channel along ``chan`` (compacted into segments)."""
    return make([(1, r, c) for r, c in pairs], g.dims, g.hw, chan, g.padding)


def unite(g: Local) -> Geometry:
    """Every channel depends on every channel: one field, the union of all segments."""
    if g.uniform:
        return g
    rows = unite_axes([s[1] for s in g.segments], g.hw[0])
    cols = unite_axes([s[2] for s in g.segments], g.hw[1])
    if rows is None or cols is None:
        return UNKNOWN
    return make([(0, rows, cols)], g.dims, g.hw, None, g.padding)


def take(g: Local, dim: int, units: int, start: int, step: int, count: int) -> Local:
    """Channels ``start, start + step, ...`` (``count`` of them) of dim ``dim`` of ``units``."""
    if g.chan != dim:
        return g
    pairs = per_unit(g, units)[start : start + step * count : step]
    return from_units(g, pairs, dim)


def pick(g: Local, dim: int, units: int, index: int) -> Geometry:
    """``select(dim, index)``: one channel (a uniform field), the dim gone."""
    if g.chan == dim:
        rows, cols = per_unit(g, units)[index]
        g = make([(0, rows, cols)], g.dims, g.hw, None, g.padding)
    return move_dims(g, lambda d: None if d == dim else d - (d > dim))


def concat(parts: Sequence[tuple[Geometry | None, int]], dim: int, image: tuple[int, int]) -> Geometry:
    """``cat`` along ``dim`` of ``(geometry, size along dim)``: the segments, one after another.

    Parts that do not depend on the input (``None``) see no pixel; they get a
    neighbour's field. Any global part makes the whole result global (one box).
    """
    tracked = [g for g, _ in parts if g is not None]
    if any(g is UNKNOWN for g in tracked):
        return UNKNOWN
    if any(isinstance(g, Global) for g in tracked):
        return union(tracked, image)  # type: ignore[return-value]
    locals_: list[Local] = tracked  # type: ignore[assignment]
    first = locals_[0]
    if any(g.dims != first.dims or g.hw != first.hw or g.chan not in (None, dim) for g in locals_):
        return UNKNOWN
    if dim in first.dims:
        return UNKNOWN  # a concatenation along rows or cols
    mode = common_padding(locals_, image)  # the padding modes must agree where they matter
    if mode is None:
        return UNKNOWN
    pairs: list[Pair | None] = []
    for g, units in parts:
        pairs.extend(per_unit(g, units) if isinstance(g, Local) else [None] * units)  # type: ignore[list-item]
    filled = _fill_gaps(pairs)
    return make([(1, r, c) for r, c in filled], first.dims, first.hw, dim, mode)


def _fill_gaps(pairs: list[Pair | None]) -> list[Pair]:
    last = next(p for p in pairs if p is not None)
    out = []
    for p in pairs:
        last = p if p is not None else last
        out.append(last)
    return out


def mix(g: Local, dim: int, units: int, groups: int, out_units: int) -> Geometry:
    """A (grouped) convolution along channel dim ``dim``: output group ``k`` sees input group ``k``.

    With one group every output channel unites all input channels; a depthwise
    conv keeps each channel's field.
    """
    if g.chan is None:
        return g
    if g.chan != dim or units % groups or out_units % groups:
        return UNKNOWN
    pairs = per_unit(g, units)
    size, out_size = units // groups, out_units // groups
    segments: list[Segment] = []
    for k in range(groups):
        chunk = pairs[k * size : (k + 1) * size]
        rows = unite_axes(sorted({p[0] for p in chunk}, key=repr), g.hw[0])
        cols = unite_axes(sorted({p[1] for p in chunk}, key=repr), g.hw[1])
        if rows is None or cols is None:
            return UNKNOWN
        segments.append((out_size, rows, cols))
    return make(segments, g.dims, g.hw, dim, g.padding)


def shuffle(g: Local, dim: int, units: int, groups: int) -> Geometry:
    """``channel_shuffle``: output channel ``i`` is input ``(i % groups) * (units // groups) + i // groups``."""
    if g.chan != dim:
        return g
    if units % groups:
        return UNKNOWN
    pairs = per_unit(g, units)
    size = units // groups
    return from_units(g, [pairs[(i % groups) * size + i // groups] for i in range(units)], dim)


def reduce_channels(g: Local) -> Geometry:
    """A reduction, softmax or norm over the channel dim: each element sees all channels."""
    return unite(g)


__all__ = ["concat", "mix", "per_unit", "pick", "reduce_channels", "shuffle", "take", "unite"]
