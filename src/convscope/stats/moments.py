"""Running per-unit mean, spread and firing: which units are dead, which always on.

Each image brings one value per unit (its strongest activation on the image).
A unit *fires* on an image when that value is ``> 0`` (what a following ReLU would
pass). Its *firing rate* is the share of all images on which it fires, so an image
without a finite value (``-inf``, NaN, ``+-inf``) counts as not firing. A unit is
*dead* when it fired on no image, *always on* when it fired on every image.
Mean and standard deviation are over the finite values only, accumulated in
float64 with Chan et al.'s pairwise update, along the fixed tree of
:mod:`convscope.stats.tree` (mergeable, and the same to the last bit however the
images were sharded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from convscope.errors import ConvscopeError
from convscope.stats.inputs import ArrayLike, as_numpy, as_values, check_positive
from convscope.stats.tree import BlockTree


@dataclass(frozen=True, eq=False)
class Moments:
    """Summary numbers of every unit of one layer (read-only arrays).

    Attributes:
        images: number of images seen.
        finite: ``(units,)`` int64, images with a finite value.
        mean: ``(units,)`` float64 mean of the finite values; NaN without one.
        std: ``(units,)`` float64 population standard deviation of the finite values.
        firing_rate: ``(units,)`` float64, share of images with a value ``> 0``; NaN
            before any image.
        dead: ``(units,)`` bool, no value ``> 0`` on any image (False before any image).
        always_on: ``(units,)`` bool, a value ``> 0`` on every image (False before any image).
    """

    images: int
    finite: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    firing_rate: np.ndarray
    dead: np.ndarray
    always_on: np.ndarray


class _Part(NamedTuple):
    """The moments of some images: per unit finite count, mean and sum of squared deviations
    of the finite values, and how many images fired; ``images`` in all."""

    finite: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    firing: np.ndarray
    images: int


class RunningMoments:
    """Streaming mean, standard deviation and firing rate of each of ``units`` units.

    Each :meth:`add` is one block of a :class:`~convscope.stats.tree.BlockTree`, so the
    result is the same to the last bit however the blocks were split over processes and
    merged (see :mod:`convscope.stats.tree`).

    Example:
        >>> moments = RunningMoments(units=3)
        >>> moments.add(np.array([[0.0, 1.0, -1.0], [0.0, 3.0, 2.0]]))
        >>> result = moments.result()
        >>> result.mean.tolist(), result.firing_rate.tolist()
        ([0.0, 2.0, 0.5], [0.0, 1.0, 0.5])
        >>> result.dead.tolist(), result.always_on.tolist()
        ([True, False, False], [False, True, False])
    """

    def __init__(self, units: int) -> None:
        self.units = check_positive("units", units)
        self._tree: BlockTree[_Part] = BlockTree(_combine)
        self._next = 0

    @property
    def images(self) -> int:
        """Images added so far."""
        return sum(part.images for part in self._tree.nodes.values())

    def add(self, values: ArrayLike, block: int | None = None) -> None:
        """Add ``values`` ``(N, units)``: one value per image and unit (tensor or array).

        Args:
            block: the batch's number in the whole data set (batches of the same size,
                each in one shard), for results that do not depend on sharding; default:
                one more than the last block added. ``N`` may be 0 (a batch whose images
                all failed).
        """
        batch = as_values(values, self.units)
        block = self._next if block is None else block
        self._tree.add(block, _part(batch, self.units))
        self._next = block + 1

    def merge(self, other: RunningMoments) -> None:
        """Absorb ``other``, the moments of a disjoint set of blocks (``other`` unchanged)."""
        if not isinstance(other, RunningMoments) or other.units != self.units:
            raise ConvscopeError(
                "cannot merge moments of layers with different numbers of units",
                hint="merge the statistics of the same layer",
            )
        self._tree.merge(other._tree)
        self._next = max(self._next, other._next)

    def result(self) -> Moments:
        """The current :class:`Moments` (copies)."""
        total = self._tree.result() or _part(np.zeros((0, self.units), np.float32), self.units)
        seen = total.images > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(total.finite > 0, total.mean, np.nan)
            std = np.sqrt(np.where(total.finite > 0, total.m2, np.nan) / total.finite)
            rate = total.firing / total.images if seen else np.full(self.units, np.nan)
        arrays = {
            "finite": total.finite.copy(),
            "mean": mean,
            "std": std,
            "firing_rate": rate,
            "dead": (total.firing == 0) & seen,
            "always_on": (total.firing == total.images) & seen,
        }
        for array in arrays.values():
            array.setflags(write=False)
        return Moments(images=total.images, **arrays)

    def state_dict(self) -> dict:
        """Tensors and ints only: loads with ``torch.load(weights_only=True)``."""
        nodes = [
            {"level": level, "index": index, "images": part.images, **{name: torch.from_numpy(getattr(part, name).copy()) for name in _ARRAYS}}
            for (level, index), part in self._tree.items()
        ]
        return {"units": self.units, "next": self._next, "nodes": nodes}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` of the same number of units."""
        if state["units"] != self.units:
            raise ConvscopeError(
                f"the state holds moments of {state['units']} units, expected {self.units}",
                hint="load the state of the same layer",
            )
        self._tree = BlockTree(_combine)
        for node in state["nodes"]:
            arrays = {name: as_numpy(node[name]).astype(dtype, copy=True) for name, dtype in _ARRAYS.items()}
            self._tree.nodes[(int(node["level"]), int(node["index"]))] = _Part(images=int(node["images"]), **arrays)
        self._next = int(state["next"])


_ARRAYS = {"finite": np.int64, "mean": np.float64, "m2": np.float64, "firing": np.int64}


def _part(batch: np.ndarray, units: int) -> _Part:
    """The moments of a float32 ``(N, units)`` batch whose non-finite values are ``-inf``."""
    x = batch.astype(np.float64)
    if not len(x):
        zero = np.zeros(units, np.float64)
        return _Part(np.zeros(units, np.int64), zero, zero.copy(), np.zeros(units, np.int64), 0)
    if np.isfinite(x.min(axis=0)).all():
        count = np.full(units, len(x), np.int64)
        mean = x.mean(axis=0)
        x -= mean
    else:  # leave the -inf out
        finite = x > -np.inf
        x[~finite] = 0
        count = finite.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(count > 0, x.sum(axis=0) / count, 0.0)
        x -= mean
        x[~finite] = 0
    np.square(x, out=x)
    return _Part(count, mean, x.sum(axis=0), (batch > 0).sum(axis=0).astype(np.int64), len(batch))


def _combine(left: _Part, right: _Part) -> _Part:
    """Chan, Golub and LeVeque's pairwise update: the moments of both parts' images."""
    total = left.finite + right.finite
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, right.finite / total, 0.0)
        delta = right.mean - left.mean
        mean = np.where(right.finite > 0, left.mean + delta * share, left.mean)
        m2 = np.where(right.finite > 0, left.m2 + right.m2 + delta**2 * (left.finite * share), left.m2)
    return _Part(total, mean, m2, left.firing + right.firing, left.images + right.images)
