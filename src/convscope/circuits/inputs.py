"""A unit's inputs: how much each unit of the layer below contributes to its activation at its top hits.

For a unit ``u`` of layer ``upper`` at a hit ``(image, row, col)`` with value ``a = A_upper[u, row, col]``
and the map ``B`` ``(C_below, H, W)`` of layer ``below`` on the same image, the contribution of
lower unit ``c`` is gradient x activation::

    contribution[c] = sum_{h, w} B[c, h, w] * (d a / d B)[c, h, w]

and a unit's contributions are the mean over its hits. This holds for any architecture between
the two layers (residual blocks, concatenations, pools); on a piecewise-linear path without
biases ``sum_c contribution[c] = a`` (the rest is the biases' share). A unit's share of ``c`` is
``contribution[c] / sum_c |contribution[c]|``.

Each hit needs its own backward pass (its own gradient). They are batched: one forward and one
backward for a batch of hits, every hit its own batch element (its image, repeated per hit), so
the elements stay independent. Two ways to feed them:

- ``"crop"``: each element is only the part of its image that the hit's receptive field covers
  (its box from the atlas, clamped to the image and started on a multiple of the layer's stride
  so the layers' grids stay aligned; the network's own padding where the box reaches past the
  image). A unit's value depends on nothing outside its box, so on a network of local operations
  (convolutions, pools, pointwise functions, concatenations, residual sums) the value and its
  gradient are the same as on the whole image, at a fraction of the cost (a 59-pixel box of a
  224-pixel image: about 1/14 of the pixels).
- ``"full"``: the whole image; exact for any network (global pooling or attention inside, an
  input of fixed size).

``method="auto"`` computes the first hits both ways and keeps ``"crop"`` only where it gives the
same contributions (to 1e-4 of the largest): a network the crop would change is never cropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import torch
from torch import nn

from convscope.circuits.substitute import agrees, substituted
from convscope.errors import ConvscopeError
from convscope.hooks import capture, run_until_captured
from convscope.network.layers import NCHW, LayerInfo, to_nchw
from convscope.network.modes import eval_mode, frozen

Method = Literal["auto", "crop", "full"]
#: ``load(image_indices) -> (n, 3, H, W)`` float: the normalised model inputs, on the model's device.
LoadFn = Callable[[Sequence[int]], torch.Tensor]
#: Hits computed both ways to choose ``"crop"`` (``method="auto"``).
PROBE = 4


class NoPathError(ConvscopeError):
    """The upper layer's units do not depend on the lower layer (no path between them in the network)."""


@dataclass(frozen=True)
class HitTable:
    """Hits of a layer's units, one per row (all ``(M,)`` int64).

    Attributes:
        units: the unit of each hit.
        images: its image (an index the caller's ``load`` understands).
        rows, cols: its position in the layer's output.
    """

    units: np.ndarray
    images: np.ndarray
    rows: np.ndarray
    cols: np.ndarray

    def __len__(self) -> int:
        return len(self.units)

    def take(self, order: np.ndarray) -> "HitTable":
        """The rows ``order`` (indices or a mask)."""
        return HitTable(self.units[order], self.images[order], self.rows[order], self.cols[order])


@dataclass(frozen=True)
class LayerInputs:
    """Every unit's inputs from the layer below (see the module's docstring).

    Attributes:
        layer: the upper layer (dotted name).
        below: the lower layer.
        contributions: ``(units, below_units)`` float64: each unit's mean contribution of every
            lower unit over its hits (zeros for a unit without hits).
        activations: ``(units,)`` float64: each unit's mean value at those hits.
        hits: ``(units,)`` int64: the hits averaged per unit.
        method: ``"crop"`` or ``"full"``: how the hits were fed.
    """

    layer: str
    below: str
    contributions: np.ndarray
    activations: np.ndarray
    hits: np.ndarray
    method: str

    @cached_property
    def shares(self) -> np.ndarray:
        """``(units, below_units)``: each row over the sum of its absolute values (zeros where that is 0)."""
        total = np.abs(self.contributions).sum(axis=1, keepdims=True)
        return np.divide(self.contributions, total, out=np.zeros_like(self.contributions), where=total > 0)

    def top(self, unit: int, n: int = 8, sign: int = 1) -> list[tuple[int, float, float]]:
        """Unit ``unit``'s strongest ``n`` inputs of one sign (``1``: excitatory, ``-1``: inhibitory)
        as ``(below_unit, share, contribution)``, strongest first, lower unit first on ties;
        inputs of the other sign or zero are left out.

        Example:
            >>> found = LayerInputs("b", "a", np.array([[2.0, -3.0, 0.0]]), np.array([-1.0]), np.array([1]), "full")
            >>> found.top(0, sign=1), found.top(0, sign=-1)
            ([(0, 0.4, 2.0)], [(1, -0.6, -3.0)])
        """
        row = self.contributions[unit] * sign
        order = np.lexsort((np.arange(len(row)), -row))
        return [(int(c), float(self.shares[unit, c]), float(self.contributions[unit, c])) for c in order[:n] if row[c] > 0]


def layer_inputs(
    model: nn.Module,
    below: LayerInfo,
    upper: LayerInfo,
    hits: HitTable,
    load: LoadFn,
    *,
    batch_size: int = 64,
    method: Method = "auto",
    progress: Callable[[int], None] | None = None,
) -> LayerInputs:
    """The inputs from ``below`` of every unit of ``upper``, averaged over ``hits``.

    Args:
        model: the network (its train/eval flags and ``requires_grad`` are given back after).
        below, upper: the two layers; ``upper.fields`` gives each hit's box for ``"crop"``.
        hits: the hits of ``upper``'s units.
        load: the normalised model inputs of image indices.
        batch_size: hits per forward and backward.
        method: ``"auto"`` (crop where it agrees with the whole image), ``"crop"`` or ``"full"``.
        progress: called with the number of hits done after each batch.

    Raises:
        NoPathError: ``upper`` does not depend on ``below``.

    Example:
        >>> from convscope.network.layers import LayerInfo
        >>> model = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU(), nn.Conv2d(2, 1, 1, bias=False))
        >>> lower, upper = LayerInfo("1", "ReLU", (2, 4, 4), None), LayerInfo("2", "Conv2d", (1, 4, 4), None)
        >>> table = HitTable(*(np.zeros(1, dtype=np.int64) for _ in range(4)))
        >>> found = layer_inputs(model, lower, upper, table, lambda i: torch.rand(len(i), 3, 4, 4), method="full")
        >>> found.contributions.shape, found.method
        ((1, 2), 'full')
    """
    if method not in ("auto", "crop", "full"):
        raise ConvscopeError(f"unknown method {method!r}", hint="use auto, crop or full")
    units = upper.units
    total = np.zeros((units, below.units), dtype=np.float64)
    values = np.zeros(units, dtype=np.float64)
    counts = np.bincount(hits.units, minlength=units).astype(np.int64)
    hits = hits.take(np.argsort(hits.images, kind="stable"))  # a batch's images are few and loaded once
    can_crop = upper.fields is not None and all(min(field.stride) > 0 for _, _, field in upper.fields.ranges)
    chosen = method if method != "auto" else ("crop" if can_crop else "full")
    if chosen == "crop" and not can_crop:
        raise ConvscopeError(f"layer {upper.name!r} has no local receptive field to crop to", hint="use method 'full'")
    done = 0
    with eval_mode(model), frozen(model):
        for start in range(0, len(hits), batch_size):
            batch = hits.take(np.arange(start, min(start + batch_size, len(hits))))
            x = load(batch.images.tolist())
            if method == "auto" and chosen == "crop" and start == 0:
                probe = batch.take(np.arange(min(PROBE, len(batch))))
                crop = _try(model, below, upper, probe, x[: len(probe)], True)
                plain = _hit_inputs(model, below, upper, probe, x[: len(probe)], False)
                if crop is None or not (agrees(crop[0], plain[0]) and agrees(crop[1], plain[1])):
                    chosen = "full"
            contributions, value = _hit_inputs(model, below, upper, batch, x, chosen == "crop")
            np.add.at(total, batch.units, contributions.numpy())
            np.add.at(values, batch.units, value.numpy())
            done += len(batch)
            if progress is not None:
                progress(done)
    scale = np.maximum(counts, 1)
    return LayerInputs(upper.name, below.name, total / scale[:, None], values / scale, counts, chosen)


def _try(model: nn.Module, below: LayerInfo, upper: LayerInfo, hits: HitTable, x: torch.Tensor, crop: bool):
    """:func:`_hit_inputs`, or ``None`` where the network cannot run on the crops."""
    try:
        return _hit_inputs(model, below, upper, hits, x, crop)
    except (RuntimeError, ValueError, IndexError):
        return None


def _hit_inputs(
    model: nn.Module, below: LayerInfo, upper: LayerInfo, hits: HitTable, x: torch.Tensor, crop: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per hit its contributions ``(n, below_units)`` and its value ``(n,)`` (float64, CPU): one
    forward to ``upper`` (cut there) and one backward, each hit its own batch element."""
    if not crop:
        return _backward(model, below, upper, hits.units, hits.rows, hits.cols, x)
    contributions = torch.zeros(len(hits), below.units, dtype=torch.float64)
    values = torch.zeros(len(hits), dtype=torch.float64)
    windows = [_window(upper, int(u), int(r), int(c), tuple(x.shape[2:])) for u, r, c in zip(hits.units, hits.rows, hits.cols)]
    for shape in sorted({(w[1] - w[0], w[3] - w[2]) for w in windows}):  # one pass per crop size
        picked = [i for i, w in enumerate(windows) if (w[1] - w[0], w[3] - w[2]) == shape]
        crops = torch.stack([x[i, :, windows[i][0]:windows[i][1], windows[i][2]:windows[i][3]] for i in picked])
        rows = np.array([hits.rows[i] - windows[i][4] for i in picked])
        cols = np.array([hits.cols[i] - windows[i][5] for i in picked])
        try:
            found, value = _backward(model, below, upper, hits.units[picked], rows, cols, crops)
        except (RuntimeError, ValueError, IndexError):  # crops too small for the network: whole images
            found, value = _backward(model, below, upper, hits.units[picked], hits.rows[picked], hits.cols[picked], x[picked])
        contributions[picked], values[picked] = found, value
    return contributions, values


def _window(upper: LayerInfo, unit: int, row: int, col: int, image: tuple[int, int]) -> tuple[int, int, int, int, int, int]:
    """The input rows ``[top, bottom)`` and cols ``[left, right)`` of the hit's crop, and the
    position's shift in rows and cols (``top / stride``, ``left / stride``).

    The crop holds the hit's box on the image and starts on a multiple of the unit's stride, so
    the crop's grid of positions is the image's, shifted. It is ``size + stride`` long per axis
    (whatever the box's remainder to the stride), or reaches to the image's end from the last
    multiple of the stride that leaves that much room: so a layer's crops come in few sizes."""
    if upper.fields is None:
        raise ConvscopeError(f"layer {upper.name!r} has no receptive field to crop to", hint="use method 'full'")
    field = upper.fields.field(unit)
    box = field.box(row, col)
    starts = []
    for begin, size, stride, length in ((box.top, field.size[0], field.stride[0], image[0]), (box.left, field.size[1], field.stride[1], image[1])):
        span = size + stride
        last = max(length - span, 0) // stride * stride  # the last start that leaves `span` on the image
        start = max(begin, 0) // stride * stride
        starts.append((start, min(start + span, length)) if start <= last else (last, length))
    (top, bottom), (left, right) = starts
    return top, bottom, left, right, top // field.stride[0], left // field.stride[1]


def _backward(
    model: nn.Module, below: LayerInfo, upper: LayerInfo, units: np.ndarray, rows: np.ndarray, cols: np.ndarray, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward of ``x`` ``(n, 3, h, w)`` to ``upper`` with ``below``'s output a leaf, and one
    backward of ``sum_i A_upper[i, units[i], rows[i], cols[i]]``: per element its contributions
    ``(n, below_units)`` and value ``(n,)`` (float64, CPU)."""
    seen: dict[str, torch.Tensor] = {}

    def leaf(output: torch.Tensor) -> torch.Tensor:
        seen["below"] = output.detach().requires_grad_(True)
        return seen["below"].clone()  # a clone, so that a later in-place ReLU does not change the leaf

    def record(name: str, output: torch.Tensor) -> None:
        seen["upper"] = output

    with torch.enable_grad(), substituted(model, below.name, leaf), capture(model, [upper.name], record, stop_after_last=True):
        run_until_captured(model, x)
        if "below" not in seen or "upper" not in seen:
            raise NoPathError(
                f"layer {upper.name!r} runs before layer {below.name!r}, so it cannot be built from it",
                hint="pair each layer with one that runs before it (an earlier layer of the atlas)",
            )
        out = to_nchw(seen["upper"][:, :, None, None] if seen["upper"].dim() == 2 else seen["upper"], upper.dims or NCHW)
        n = len(units)
        index = torch.arange(n, device=out.device)
        value = out[index, torch.as_tensor(units, device=out.device), torch.as_tensor(rows, device=out.device), torch.as_tensor(cols, device=out.device)]
        (gradient,) = torch.autograd.grad(value.sum(), seen["below"], allow_unused=True)
    if gradient is None:
        raise NoPathError(
            f"layer {upper.name!r} does not depend on layer {below.name!r}: there is no path between them",
            hint="pair each layer with one its units are computed from",
        )
    lower = seen["below"].detach()
    lower_map = to_nchw(lower[:, :, None, None] if lower.dim() == 2 else lower, below.dims or NCHW)
    grad_map = to_nchw(gradient[:, :, None, None] if gradient.dim() == 2 else gradient, below.dims or NCHW)
    contributions = (lower_map.double() * grad_map.double()).sum(dim=(2, 3))
    return contributions.cpu(), value.detach().double().cpu()
