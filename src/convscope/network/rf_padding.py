"""Padding modes in the receptive-field algebra: zeros, reflect, replicate, circular.

A box is given in the coordinates of the padded image the network saw; the field's
``padding`` says what fills its pixels past the border (:func:`~convscope.network.rf_algebra.fold`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from convscope.network.rf_algebra import UNKNOWN, Axis, Geometry, Local, Segment, shift_axis, with_padding


def _exact_pad(axis: Axis, n: int, limit: int, before: int, after: int, mode: str) -> bool:
    """Whether 'box in padded coordinates + ``mode``' is exact for this pad of this axis.

    reflect: the boxes are symmetric about image pixel 0 (and ``limit - 1``) where
    padded; replicate: each position is one pixel and the end positions sit at
    (or past) the border; circular: the map tiles the image (``n * stride % limit == 0``).
    """
    last = axis.offset + (n - 1) * axis.stride
    if mode != "zeros" and axis.end is not None:  # some boxes are cut: what the mode shows is not known
        return False
    if mode == "reflect":
        return (not before or 2 * axis.offset + axis.size - 1 == 0) and (
            not after or 2 * last + axis.size - 1 == 2 * (limit - 1)
        )
    if mode == "replicate":
        return axis.size == 1 and (not before or axis.offset <= 0) and (not after or last >= limit - 1)
    if mode == "circular":
        return (n * axis.stride) % limit == 0
    return mode == "zeros"


def _uncut(seg: Segment, which: int) -> Segment:
    axes = [seg[1], seg[2]]
    axes[which] = replace(axes[which], end=None)
    return (seg[0], axes[0], axes[1])


def pad(
    geom: Local, pads: Sequence[int], in_shape: Sequence[int], out_shape: Sequence[int], mode: str, image: tuple[int, int]
) -> Geometry:
    """``F.pad`` semantics: ``pads`` come in (before, after) pairs from the last dim back.

    The box is in the coordinates of the padded image the network saw, and
    ``padding`` records the ``mode`` (``zeros`` for a constant pad) that fills what
    lies past the image. That is exact for a zero pad; for the other modes only
    where each padded position shows what 'box + mode' says (see :func:`_exact_pad`:
    always at the model input, and for stride-1 'same' stacks padded alike);
    otherwise, and when two modes would meet, UNKNOWN. Constant channels added
    along the channel dim see no pixel; they get their neighbours' field.
    """
    for i in range(len(pads) // 2):
        dim = len(in_shape) - 1 - i
        before, after = pads[2 * i], pads[2 * i + 1]
        if not (before or after):
            continue
        if dim == geom.chan:
            if mode != "zeros":
                return UNKNOWN
            segs = list(geom.segments)
            segs[0] = (segs[0][0] + before, *segs[0][1:])
            segs[-1] = (segs[-1][0] + after, *segs[-1][1:])
            geom = replace(geom, segments=tuple(segs))
        elif dim in geom.dims:
            which = geom.dims.index(dim)
            padded = with_padding(geom, mode, image)
            if padded is None or not all(
                _exact_pad(seg[1 + which], geom.hw[which], image[which], before, after, mode) for seg in geom.segments
            ):
                return UNKNOWN
            shifted = shift_axis(padded, dim, -before, 1, out_shape[dim], image)
            if not isinstance(shifted, Local):
                return shifted
            if mode != "zeros":  # the new positions show image pixels: nothing to cut
                shifted = replace(shifted, segments=tuple(_uncut(seg, which) for seg in shifted.segments))
            geom = shifted
    return geom


#: Padding operators and the fill they use (``pad`` names its mode).
PAD_MODES = {
    "constant_pad_nd": "zeros", "reflection_pad1d": "reflect", "reflection_pad2d": "reflect",
    "reflection_pad3d": "reflect", "replication_pad1d": "replicate", "replication_pad2d": "replicate",
    "replication_pad3d": "replicate", "_pad_circular": "circular",
}


def pad_rule(mode: Any, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    """The dispatch rule of the padding operators (``mode``: the GeometryMode)."""
    name = a["__name__"]
    fill = PAD_MODES.get(name) or {"constant": "zeros"}.get(a.get("mode") or "constant", a.get("mode"))
    return pad(g, list(a["pad"] if "pad" in a else a["padding"]), x.shape, outs[0].shape, fill, mode.image)


class CircularPad(TorchFunctionMode):
    """``F.pad(mode='circular')`` decomposes into copies between slices of a new tensor,
    which the dispatch rules cannot follow; its geometry is set here, from the call."""

    def __init__(self, mode: Any) -> None:
        super().__init__()
        self.mode = mode

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func not in (F.pad, torch._C._nn.pad):
            return out
        names = ("input", "pad", "mode")
        a = {**dict(zip(names, args)), **kwargs}
        geom = self.mode.geometry(a["input"])
        if a.get("mode") == "circular" and isinstance(out, torch.Tensor) and geom is not None:
            if isinstance(geom, Local):
                geom = pad(geom, list(a["pad"]), a["input"].shape, out.shape, "circular", self.mode.image)
            self.mode.track(out, geom)
        return out
