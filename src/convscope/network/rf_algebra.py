"""Receptive-field geometry as algebra: affine fields per axis and how operations combine them.

- :class:`Local`: affine fields per axis (:class:`Axis`), plus where the rows and
  cols live in the tensor (dims 2, 3 for NCHW; 1, 2 after a permute to NHWC; one
  merged ``rows * cols`` dim after a flattening view). Along one tensor dim, the
  *channel dim* ``chan``, the field may differ: ``segments`` are compact runs of
  channels that share one field, ``(units, rows, cols)`` each (a Fire module's
  output: the 1x1 half, then the 3x3 half). A uniform field is one segment with
  ``chan=None``. ``padding`` says how box pixels outside the image are filled;
- :class:`Global`: every element sees one box of the image (after a global pool, a
  mean over the map, a norm with batch statistics);
- :data:`UNKNOWN`: no exact answer.

The functions here are pure; :mod:`convscope.network.rf_channels` has the channel-dim
rules, :mod:`convscope.network.rf_views` the reshapes, :mod:`convscope.network.rf_padding`
the pads; :mod:`convscope.network.rf_ops` applies them to the operators of a forward pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

#: How pixels outside the image are filled: what a box past the border means.
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


@dataclass(frozen=True)
class Axis:
    """Affine field along one axis: position ``i`` sees ``[offset + i*stride, ... + size)``,
    cut at ``end``.

    ``end`` is the first coordinate that no position reads (``None``: no cut; past the
    image border the padding fills the box). It is set where windows below did not tile
    their input (an unpadded strided conv, a ceil-mode pool): a padded layer above then
    has boxes that reach into rows nothing below ever read.
    """

    size: int
    stride: int
    offset: int
    end: int | None = None

    def window(self, kernel: int, stride: int, padding: int, dilation: int) -> "Axis":
        """The axis after a sliding window (convolution or pooling) over this one (``end``
        kept: set it with :func:`bounded` from the :meth:`reach` of the map under the window)."""
        return Axis(
            self.size + (kernel - 1) * dilation * self.stride,
            self.stride * stride,
            self.offset - padding * self.stride,
            self.end,
        )

    def extent(self, positions: int, limit: int) -> tuple[int, int]:
        """``[start, end)`` read by all ``positions``, clipped to ``[0, limit)``."""
        return max(self.offset, 0), min(self.reach(positions), limit)

    def span(self, positions: int) -> tuple[int, int]:
        """``[start, end)`` of the boxes of all ``positions``, not clipped."""
        return self.offset, self.offset + (positions - 1) * self.stride + self.size

    def reach(self, positions: int) -> int:
        """The first coordinate that none of ``positions`` reads: the end of their boxes, or ``end``."""
        last = self.span(positions)[1]
        return last if self.end is None else min(last, self.end)


def bounded(axis: Axis, end: int | None, positions: int, image: int | None = None, padding: str = "zeros") -> Axis:
    """``axis`` cut at ``end``, kept only where it cuts a box: ``None`` when no box of
    ``positions`` reaches it, or (zero padding) when it lies past the ``image`` border,
    where the padding fills the box anyway.

    Example:
        >>> bounded(Axis(7, 2, -2), 15, 7, 16), bounded(Axis(7, 2, -2), 17, 7, 16).end
        (Axis(size=7, stride=2, offset=-2, end=15), None)
    """
    if end is not None and (end >= axis.span(positions)[1] or (padding == "zeros" and image is not None and end >= image)):
        end = None
    return replace(axis, end=end)


#: ``(units, rows, cols)``: a run of ``units`` channels sharing one field.
Segment = tuple[int, Axis, Axis]


@dataclass(frozen=True)
class Local:
    """A map whose positions see affine boxes, per run of channels.

    ``dims`` are the tensor dims of rows and cols; they are equal when both are
    merged into one dim (row-major, index ``row * cols + col``). ``hw`` is the map
    height and width. ``segments`` cover the ``chan`` dim in order; with one
    segment ``chan`` is ``None`` and its ``units`` is 0 (build through :func:`make`).
    While a view splits the channel dim in two (a channel shuffle written as
    view-transpose-view), ``inner`` is the dim of the inner index; only views,
    permutes and single-input elementwise operators accept such a field.
    """

    segments: tuple[Segment, ...]
    dims: tuple[int, int]
    hw: tuple[int, int]
    chan: int | None = None
    padding: str = "zeros"
    inner: int | None = None  # the channel index split over two dims: chan * size(inner) + inner

    @property
    def merged(self) -> bool:
        return self.dims[0] == self.dims[1]

    @property
    def uniform(self) -> bool:
        return len(self.segments) == 1

    @property
    def rows(self) -> Axis:
        """The rows axis of a uniform field (ValueError when per channel)."""
        if not self.uniform:
            raise ValueError("the field differs per channel")
        return self.segments[0][1]

    @property
    def cols(self) -> Axis:
        """The cols axis of a uniform field (ValueError when per channel)."""
        if not self.uniform:
            raise ValueError("the field differs per channel")
        return self.segments[0][2]


def make(
    segments: Sequence[Segment], dims: tuple[int, int], hw: tuple[int, int], chan: int | None, padding: str = "zeros"
) -> Local:
    """A :class:`Local` with neighbouring equal segments merged (one left: ``chan=None``)."""
    merged: list[Segment] = []
    for units, rows, cols in segments:
        if units == 0 and len(segments) > 1:
            continue
        if merged and merged[-1][1:] == (rows, cols):
            merged[-1] = (merged[-1][0] + units, rows, cols)
        else:
            merged.append((units, rows, cols))
    if len(merged) <= 1:
        if not merged:
            raise ValueError("a field needs at least one segment")
        return Local(((0, merged[0][1], merged[0][2]),), dims, hw, None, padding)
    return Local(tuple(merged), dims, hw, chan, padding)


def uniform(rows: Axis, cols: Axis, dims: tuple[int, int], hw: tuple[int, int], padding: str = "zeros") -> Local:
    """A field shared by every channel."""
    return Local(((0, rows, cols),), dims, hw, None, padding)


@dataclass(frozen=True)
class Global:
    """Every element sees the box ``[top, left, bottom, right)`` (clipped to the image).

    ``dims``: where rows and cols still live in the tensor (``None``: not known).
    """

    box: tuple[int, int, int, int]
    dims: tuple[int, int] | None = None


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN = _Unknown()
Geometry = Local | Global | _Unknown


def identity(height: int, width: int) -> Local:
    """The geometry of the model input ``(N, C, height, width)``."""
    return uniform(Axis(1, 1, 0), Axis(1, 1, 0), (2, 3), (height, width))


# --------------------------------------------------------------------- padding modes


def fold(coords: np.ndarray, length: int, mode: str) -> np.ndarray:
    """Image coordinates that padded coordinates ``coords`` show (``-1`` for zeros outside).

    ``reflect`` folds at pixels 0 and ``length - 1`` as often as needed (torch's
    reflect, numpy's 'reflect'); ``replicate`` clamps; ``circular`` wraps.

    Example:
        >>> fold(np.arange(-2, 3), 3, "reflect").tolist(), fold(np.arange(-2, 3), 3, "circular").tolist()
        ([2, 1, 0, 1, 2], [1, 2, 0, 1, 2])
    """
    coords = np.asarray(coords)
    if mode == "zeros":
        return np.where((coords >= 0) & (coords < length), coords, -1)
    if mode == "replicate":
        return np.clip(coords, 0, length - 1)
    if mode == "circular":
        return np.mod(coords, length)
    if mode == "reflect":
        if length == 1:
            return np.zeros_like(coords)
        period = 2 * (length - 1)
        m = np.mod(coords, period)
        return np.where(m < length, m, period - m)
    raise ValueError(f"unknown padding mode {mode!r}; one of {PADDING_MODES}")


def _inside(g: Local, image: tuple[int, int]) -> bool:
    """True when every box lies inside the image: the padding mode does not matter."""
    for _, rows, cols in g.segments:
        for axis, n, limit in ((rows, g.hw[0], image[0]), (cols, g.hw[1], image[1])):
            if axis.offset < 0 or axis.reach(n) > limit:
                return False
    return True


def common_padding(parts: Sequence[Local], image: tuple[int, int]) -> str | None:
    """The padding mode of fields seen together; ``None`` when two differ where it matters."""
    modes = {p.padding for p in parts if not _inside(p, image)}
    if len(modes) > 1:
        return None
    return modes.pop() if modes else parts[0].padding


def with_padding(g: Local, mode: str, image: tuple[int, int]) -> Local | None:
    """``g`` read with padding ``mode``; ``None`` when its own mode differs and matters."""
    if g.padding == mode:
        return g
    return replace(g, padding=mode) if _inside(g, image) else None


# --------------------------------------------------------------------- combining


def segment_at(g: Local, unit: int) -> Segment:
    """The segment holding channel ``unit`` of the ``chan`` dim."""
    if g.uniform:
        return g.segments[0]
    start = 0
    for seg in g.segments:
        if unit < start + seg[0]:
            return seg
        start += seg[0]
    raise IndexError(f"unit {unit} is past the {start} channels of the field")


def boundaries(g: Local) -> list[int]:
    """Cumulative channel counts at the ends of the segments (empty when uniform)."""
    if g.uniform:
        return []
    return list(itertools.accumulate(int(s[0]) for s in g.segments))  # plain ints: they reach the manifest


def unite_axes(axes: Sequence[Axis], positions: int) -> Axis | None:
    """The smallest axis covering all ``axes`` of a map of ``positions`` (``None``: different
    strides); it reads as far as the one that reads furthest."""
    if len({a.stride for a in axes}) != 1:
        return None
    start = min(a.offset for a in axes)
    end = max(a.offset + a.size for a in axes)
    united = Axis(end - start, axes[0].stride, start)
    return bounded(united, max(a.reach(positions) for a in axes), positions)


def to_global(geom: Local | Global, image: tuple[int, int]) -> Global | _Unknown:
    """The box seen by the whole map (every segment), within the ``image`` (height, width).

    With a padding mode other than zeros the box is where the folded pixels lie;
    :data:`UNKNOWN` when they do not fill it (a wrap that leaves a gap).
    """
    if isinstance(geom, Global):
        return geom
    box = []
    for which, (n, limit) in enumerate(zip(geom.hw, image)):
        spans = [(seg[1 + which].offset, seg[1 + which].reach(n)) for seg in geom.segments]
        start, end = min(s[0] for s in spans), max(s[1] for s in spans)
        if geom.padding == "zeros":
            box.append((max(start, 0), min(end, limit)))
            continue
        seen = np.unique(fold(np.arange(start, end), limit, geom.padding))
        if len(seen) != seen[-1] - seen[0] + 1:
            return UNKNOWN
        box.append((int(seen[0]), int(seen[-1]) + 1))
    return Global((box[0][0], box[1][0], box[0][1], box[1][1]), None if geom.merged else geom.dims)


def union(parts: Sequence[Geometry], image: tuple[int, int]) -> Geometry | None:
    """Geometry of an element that depends on all ``parts`` (already in output dims).

    Locals need the same dims and map size, the same stride per channel, and one
    channel dim (or none); per channel the boxes are united (segments split at the
    union of their boundaries). Any Global makes the result global. ``None`` when
    there is no part (the result does not depend on the input).
    """
    if not parts:
        return None
    if any(p is UNKNOWN for p in parts):
        return UNKNOWN
    if any(isinstance(p, Global) for p in parts):
        boxes = [to_global(p, image) for p in parts]  # type: ignore[arg-type]
        if any(not isinstance(b, Global) for b in boxes):
            return UNKNOWN
        b = [x.box for x in boxes]  # type: ignore[union-attr]
        known = {x.dims for x in boxes if x.dims is not None}  # type: ignore[union-attr]
        dims = known.pop() if len(known) == 1 else None
        return Global((min(x[0] for x in b), min(x[1] for x in b), max(x[2] for x in b), max(x[3] for x in b)), dims)
    locals_: list[Local] = list(parts)  # type: ignore[arg-type]
    if len(locals_) == 1:
        return locals_[0]
    first = locals_[0]
    chans = {p.chan for p in locals_ if p.chan is not None}
    if len(chans) > 1 or any(p.dims != first.dims or p.hw != first.hw for p in locals_):
        return UNKNOWN
    mode = common_padding(locals_, image)
    if mode is None:
        return UNKNOWN
    ends = [boundaries(p) for p in locals_ if not p.uniform]
    if ends and any(e[-1] != ends[0][-1] for e in ends):
        return UNKNOWN
    cuts = sorted({0, *(c for e in ends for c in e)}) if ends else [0, 0]
    segments: list[Segment] = []
    for lo, hi in zip(cuts, cuts[1:]):
        pieces = [segment_at(p, lo) for p in locals_]
        rows = unite_axes([s[1] for s in pieces], first.hw[0])
        cols = unite_axes([s[2] for s in pieces], first.hw[1])
        if rows is None or cols is None:
            return UNKNOWN
        segments.append((hi - lo, rows, cols))
    return make(segments, first.dims, first.hw, chans.pop() if chans else None, mode)


def broadcast(geom: Geometry, in_shape: Sequence[int], out_shape: Sequence[int]) -> Geometry:
    """Map a geometry through numpy-style broadcasting (dims aligned on the right)."""
    shift = len(out_shape) - len(in_shape)
    if isinstance(geom, Global) and geom.dims is not None:
        return replace(geom, dims=(geom.dims[0] + shift, geom.dims[1] + shift))
    if not isinstance(geom, Local):
        return geom
    dims = (geom.dims[0] + shift, geom.dims[1] + shift)
    kept = set(geom.dims) | ({geom.chan} if geom.chan is not None else set())
    if shift < 0 or any(in_shape[d] != out_shape[d + shift] for d in kept):
        return UNKNOWN  # a spatial dim was stretched from size 1: not affine
    chan = geom.chan + shift if geom.chan is not None else None
    inner = geom.inner + shift if geom.inner is not None else None
    if inner is not None and in_shape[geom.inner] != out_shape[inner]:  # type: ignore[index]
        return UNKNOWN
    return replace(geom, dims=dims, chan=chan, inner=inner)


# --------------------------------------------------------------------- shape rules


def move_dims(geom: Local, mapping: Callable[[int], int | None]) -> Geometry:
    """Renumber dims with ``mapping(old) -> new`` (``None``: the dim is gone)."""
    new = (mapping(geom.dims[0]), mapping(geom.dims[1]))
    chan = mapping(geom.chan) if geom.chan is not None else None
    inner = mapping(geom.inner) if geom.inner is not None else None
    if new[0] is None or new[1] is None or (geom.chan is not None and chan is None):
        return UNKNOWN
    if geom.inner is not None and inner is None:
        return UNKNOWN
    return replace(geom, dims=(new[0], new[1]), chan=chan, inner=inner)


def shift_axis(
    geom: Local, dim: int, start: int, step: int, out_size: int, image: tuple[int, int] | None = None
) -> Geometry:
    """Rows or cols (whichever lives at ``dim``) after taking ``start::step`` of them.

    ``start`` may be negative and ``out_size`` past the map (a pad): the new positions
    read nothing, so the axis is cut at what the old ones read (see :func:`bounded`;
    ``image``: the model input's height and width).
    """
    if dim not in geom.dims:
        return geom
    if geom.merged:
        return geom if start == 0 and step == 1 and out_size == geom.hw[0] * geom.hw[1] else UNKNOWN
    which = geom.dims.index(dim)
    segments = []
    for units, *axes in geom.segments:
        a = axes[which]
        moved = Axis(a.size, a.stride * step, a.offset + start * a.stride)
        limit = image[which] if image is not None else None
        axes[which] = bounded(moved, a.reach(geom.hw[which]), out_size, limit, geom.padding)
        segments.append((units, axes[0], axes[1]))
    hw = list(geom.hw)
    hw[which] = out_size
    return replace(geom, segments=tuple(segments), hw=(hw[0], hw[1]))


def sliding_window(
    geom: Local,
    ndim: int,
    out_hw: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    image: tuple[int, int],
) -> Geometry:
    """A 2-d convolution or pooling over the last two dims of an ``ndim`` tensor (per segment).

    Its padding is zeros (or ``-inf`` for a max-pool, which never wins): past a
    reflect/replicate/circular pad that left boxes outside the image, UNKNOWN. The
    result reads no further than the map under it (:meth:`Axis.reach`): windows past
    it (padding, a ceil-mode pool's last one) see no pixel there.
    """
    if geom.dims != (ndim - 2, ndim - 1):
        return UNKNOWN
    if any(padding):
        padded = with_padding(geom, "zeros", image)
        if padded is None:
            return UNKNOWN
        geom = padded
    segments = []
    for units, *axes in geom.segments:
        for i in (0, 1):
            windowed = axes[i].window(kernel[i], stride[i], padding[i], dilation[i])
            axes[i] = bounded(windowed, axes[i].reach(geom.hw[i]), out_hw[i], image[i], geom.padding)
        segments.append((units, axes[0], axes[1]))
    return make(segments, geom.dims, (out_hw[0], out_hw[1]), geom.chan, geom.padding)
