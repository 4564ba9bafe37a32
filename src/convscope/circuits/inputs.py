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
backward for a batch of hits, every hit its own batch element, so the elements stay independent.
The images with hits are run once, capturing the lower layers' maps, and the hits are fed to the
rest of the network (:mod:`~convscope.circuits.substitute`) in one of three ways:

- ``"crop"``: each element is the part of the lower map that the hit can depend on (its window,
  :mod:`~convscope.circuits.windows`), so only the layers between the two run, on a few
  positions (SqueezeNet's ``features.3`` from ``features.0``: 15 x 15 of 109 x 109). On a network of
  local operations (convolutions, pools, pointwise functions, concatenations, residual sums) the
  value and its gradient are the same as on the whole map.
- ``"expand"``: the whole lower map, repeated per hit: for a global layer (the logits) or a block
  with global pooling or attention inside.
- ``"full"``: the whole image, repeated per hit: exact for any network, also where something
  after the lower layer reads a tensor from before it (a skip over it).

``method="auto"`` computes a pair's first hits the full way and keeps the first of ``"crop"``,
``"expand"`` that gives the same contributions and values (to 1e-4 of the largest), else
``"full"``: a network the cheaper ways would change is never fed that way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import torch
from torch import nn

from convscope.atlas.circuits_data import shares_of, top_inputs
from convscope.circuits.substitute import agrees, substituted
from convscope.circuits.windows import can_crop, window
from convscope.errors import ConvscopeError
from convscope.hooks import capture, run_until_captured
from convscope.network.layers import NCHW, LayerInfo, to_nchw
from convscope.network.modes import eval_mode, frozen

Method = Literal["auto", "crop", "expand", "full"]
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
        return shares_of(self.contributions)

    def top(self, unit: int, n: int = 8, sign: int = 1) -> list[tuple[int, float, float]]:
        """Unit ``unit``'s strongest ``n`` inputs of one sign (``1``: excitatory, ``-1``: inhibitory)
        as ``(below_unit, share, contribution)``, strongest first, lower unit first on ties;
        inputs of the other sign or zero are left out (:func:`~convscope.atlas.circuits_data.top_inputs`,
        which the stored record's readers use too).

        Example:
            >>> found = LayerInputs("b", "a", np.array([[2.0, -3.0, 0.0]]), np.array([-1.0]), np.array([1]), "full")
            >>> found.top(0, sign=1), found.top(0, sign=-1)
            ([(0, 0.4, 2.0)], [(1, -0.6, -3.0)])
        """
        return top_inputs(self.contributions, unit, n, sign)


def circuit_inputs(
    model: nn.Module,
    pairs: Sequence[tuple[LayerInfo, LayerInfo]],
    hits: Mapping[str, HitTable],
    load: LoadFn,
    *,
    batch_size: int = 16,
    hit_batch: int = 256,
    method: Method = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> list[LayerInputs]:
    """The inputs of every unit of each pair's upper layer from its lower layer, averaged over the
    upper layer's ``hits`` (see the module's docstring).

    The images with hits are run once each, ``batch_size`` at a time, capturing every lower layer;
    each pair's hits in them are then fed as crops of (or whole) lower maps, ``hit_batch`` at a time.

    Args:
        model: the network (its train/eval flags and ``requires_grad`` are given back after).
        pairs: ``(below, upper)`` layer pairs; ``below.fields`` and ``upper.fields`` give the crops.
        hits: per upper layer's name, its units' hits.
        load: the normalised model inputs ``(n, 3, H, W)`` of image indices, on the model's device.
        method: ``"auto"`` (per pair the first of crop, expand, full that agrees with full on
            its first hits), or one of them for every pair.
        progress: called as ``progress(images_done, images_total)``.

    Raises:
        NoPathError: an upper layer does not depend on its lower layer.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU(), nn.Conv2d(2, 1, 1, bias=False))
        >>> lower, upper = LayerInfo("1", "ReLU", (2, 4, 4), None), LayerInfo("2", "Conv2d", (1, 4, 4), None)
        >>> table = HitTable(*(np.zeros(1, dtype=np.int64) for _ in range(4)))
        >>> [found] = circuit_inputs(model, [(lower, upper)], {"2": table}, lambda i: torch.rand(len(i), 3, 4, 4))
        >>> found.contributions.shape, found.method
        ((1, 2), 'expand')
    """
    if method not in METHODS:
        raise ConvscopeError(f"unknown method {method!r}", hint=f"use one of {', '.join(METHODS)}")
    runs = [_PairRun(below, upper, hits[upper.name], method) for below, upper in pairs]
    wanted = np.unique(np.concatenate([run.hits.images for run in runs])) if runs else np.zeros(0, np.int64)
    lowers = list(dict.fromkeys(below.name for below, _ in pairs))
    with eval_mode(model), frozen(model):
        for start in range(0, len(wanted), batch_size):
            images = wanted[start : start + batch_size]
            x = load(images.tolist())
            maps = _capture(model, lowers, x)
            for run in runs:
                run.add(model, images, x, maps, hit_batch)
            if progress is not None:
                progress(min(start + batch_size, len(wanted)), len(wanted))
        for run in runs:
            run.flush(model)
    return [run.result() for run in runs]


#: The ways to feed a pair's hits, cheapest first: crops of the lower maps, whole lower maps
#: (the layers below run once per image), whole images repeated per hit (exact for any network).
METHODS = ("auto", "crop", "expand", "full")


class _PairRun:
    """One pair's running sums, its chosen way, and its pending crops (a batch waits for ``hit_batch``)."""

    def __init__(self, below: LayerInfo, upper: LayerInfo, hits: HitTable, method: str) -> None:
        self.below, self.upper, self.hits = below, upper, hits
        self.sums = np.zeros((upper.units, below.units), dtype=np.float64)
        self.values = np.zeros(upper.units, dtype=np.float64)
        self.cropped = can_crop(below, upper) and (below.dims or NCHW) == NCHW
        if method == "crop" and not self.cropped:
            raise ConvscopeError(
                f"the hits of layer {upper.name!r} cannot be cropped from layer {below.name!r}'s maps (no local fields in step)",
                hint="use method 'expand' or 'full'",
            )
        self.method = method if method != "auto" else None
        self.pending: dict[tuple[int, int], list[tuple[torch.Tensor, int, int, int]]] = {}
        self.dummy: torch.Tensor | None = None

    def add(self, model: nn.Module, images: np.ndarray, x: torch.Tensor, maps: dict[str, torch.Tensor], hit_batch: int) -> None:
        """Take this image batch's hits: decide the way on the first, then compute or queue them."""
        chosen = np.isin(self.hits.images, images)
        if not chosen.any():
            return
        batch = self.hits.take(chosen)
        slot = np.searchsorted(images, batch.images)  # each hit's image in `x` and the maps
        lower = maps[self.below.name]
        self.dummy = x[:1]
        if self.method is None:
            self.method = self._choose(model, batch, slot, x, lower)
        if self.method == "crop":
            for i in range(len(batch)):
                unit, row, col = int(batch.units[i]), int(batch.rows[i]), int(batch.cols[i])
                crop = window(self.below, self.upper, unit, row, col)
                piece = lower[slot[i], :, crop.top : crop.bottom, crop.left : crop.right]
                queue = self.pending.setdefault(crop.shape, [])
                queue.append((piece, unit, row - crop.shift_row, col - crop.shift_col))
                if len(queue) >= hit_batch:
                    self._run_crops(model, crop.shape)
            return
        for part in range(0, len(batch), hit_batch):
            rows = np.arange(part, min(part + hit_batch, len(batch)))
            sub = batch.take(rows)
            if self.method == "expand":
                found, value = _backward(model, self.below, self.upper, x[:1], lower[slot[rows]], sub.units, sub.rows, sub.cols)
            else:
                found, value = _backward(model, self.below, self.upper, x[slot[rows]], None, sub.units, sub.rows, sub.cols)
            self._add(sub.units, found, value)

    def flush(self, model: nn.Module) -> None:
        """Compute the crops still queued."""
        for shape in list(self.pending):
            self._run_crops(model, shape)

    def result(self) -> LayerInputs:
        counts = np.bincount(self.hits.units, minlength=self.upper.units).astype(np.int64)
        scale = np.maximum(counts, 1)
        return LayerInputs(self.upper.name, self.below.name, self.sums / scale[:, None], self.values / scale, counts, self.method or "crop")

    def _add(self, units: np.ndarray, found: torch.Tensor, value: torch.Tensor) -> None:
        np.add.at(self.sums, units, found.numpy())
        np.add.at(self.values, units, value.numpy())

    def _run_crops(self, model: nn.Module, shape: tuple[int, int]) -> None:
        queue = self.pending.pop(shape, [])
        if not queue:
            return
        assert self.dummy is not None
        crops = torch.stack([piece for piece, _, _, _ in queue])
        units, rows, cols = (np.array([item[i] for item in queue], dtype=np.int64) for i in (1, 2, 3))
        found, value = _backward(model, self.below, self.upper, self.dummy, crops, units, rows, cols)
        self._add(units, found, value)

    def _choose(self, model: nn.Module, batch: HitTable, slot: np.ndarray, x: torch.Tensor, lower: torch.Tensor) -> str:
        """The cheapest way that gives the same contributions and values as ``"full"`` on the
        first :data:`PROBE` hits (``"full"`` itself where none does)."""
        probe = np.arange(min(PROBE, len(batch)))
        sub = batch.take(probe)
        plain = _backward(model, self.below, self.upper, x[slot[probe]], None, sub.units, sub.rows, sub.cols)
        ways = (["crop"] if self.cropped else []) + ["expand"]
        for way in ways:
            try:
                if way == "crop":
                    crops = [window(self.below, self.upper, int(u), int(r), int(c)) for u, r, c in zip(sub.units, sub.rows, sub.cols)]
                    got = [
                        _backward(model, self.below, self.upper, x[:1], lower[slot[i] : slot[i] + 1, :, w.top : w.bottom, w.left : w.right],
                                  sub.units[i : i + 1], sub.rows[i : i + 1] - w.shift_row, sub.cols[i : i + 1] - w.shift_col)
                        for i, w in enumerate(crops)
                    ]
                    fast = (torch.cat([g[0] for g in got]), torch.cat([g[1] for g in got]))
                else:
                    fast = _backward(model, self.below, self.upper, x[:1], lower[slot[probe]], sub.units, sub.rows, sub.cols)
            except (RuntimeError, ValueError, IndexError):
                continue
            if agrees(fast[0], plain[0]) and agrees(fast[1], plain[1]):
                return way
        return "full"


def _capture(model: nn.Module, layers: Sequence[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every layer's output on ``x``, as its hook sees it (cloned, before any in-place change)."""
    maps: dict[str, torch.Tensor] = {}
    with torch.no_grad(), capture(model, layers, lambda name, out: maps.__setitem__(name, out.detach().clone()), stop_after_last=True):
        run_until_captured(model, x)
    return maps


def _backward(
    model: nn.Module,
    below: LayerInfo,
    upper: LayerInfo,
    x: torch.Tensor,
    lower: torch.Tensor | None,
    units: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward to ``upper`` (cut there) and one backward of ``sum_i A_upper[i, units[i], rows[i], cols[i]]``
    with respect to ``below``'s output, each hit its own batch element.

    ``lower`` ``(n, ...)``: what ``below`` passes on instead of its output (lower maps or crops
    of them; the layers before it run on ``x`` only to reach it); ``None``: its own output on ``x``
    ``(n, 3, H, W)``. Returns per element its contributions ``(n, below_units)`` and value ``(n,)``
    (float64, CPU)."""
    seen: dict[str, torch.Tensor] = {}

    def leaf(output: torch.Tensor) -> torch.Tensor:
        seen["below"] = (output if lower is None else lower).detach().requires_grad_(True)
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
        out = _as_map(seen["upper"], upper)
        device = out.device
        index = [torch.arange(len(units), device=device)] + [torch.as_tensor(v, device=device) for v in (units, rows, cols)]
        value = out[tuple(index)]
        gradient = torch.autograd.grad(value.sum(), seen["below"], allow_unused=True)[0] if value.requires_grad else None
    if gradient is None:
        raise NoPathError(
            f"layer {upper.name!r} does not depend on layer {below.name!r}: there is no path between them",
            hint="pair each layer with one its units are computed from",
        )
    # the products in the maps' precision, each unit's sum over positions in float64
    contributions = (_as_map(seen["below"].detach(), below) * _as_map(gradient, below)).sum(dim=(2, 3), dtype=torch.float64)
    return contributions.cpu(), value.detach().double().cpu()


def _as_map(output: torch.Tensor, info: LayerInfo) -> torch.Tensor:
    """A layer output as ``(N, C, H, W)`` (a flat ``(N, C)`` as ``(N, C, 1, 1)``)."""
    return to_nchw(output[:, :, None, None], NCHW) if output.dim() == 2 else to_nchw(output, info.dims or NCHW)
