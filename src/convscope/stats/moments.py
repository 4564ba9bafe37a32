"""Running per-unit mean, spread and firing: which units are dead, which always on.

Each image brings one value per unit (its strongest activation on the image).
A unit *fires* on an image when that value is ``> 0`` (what a following ReLU would
pass). Its *firing rate* is the share of all images on which it fires, so an image
without a finite value (``-inf``, NaN, ``+-inf``) counts as not firing. A unit is
*dead* when it fired on no image, *always on* when it fired on every image.
Mean and standard deviation are over the finite values only, accumulated in
float64 with Chan et al.'s pairwise update (exact to rounding, order-independent
up to rounding, and mergeable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from convscope.errors import ConvscopeError
from convscope.stats.inputs import ArrayLike, as_numpy, as_values, check_positive


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


class RunningMoments:
    """Streaming mean, standard deviation and firing rate of each of ``units`` units.

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
        self.images = 0
        self._finite = np.zeros(self.units, np.int64)
        self._mean = np.zeros(self.units, np.float64)
        self._m2 = np.zeros(self.units, np.float64)  # sum of squared deviations from the mean
        self._firing = np.zeros(self.units, np.int64)

    def add(self, values: ArrayLike) -> None:
        """Add ``values`` ``(N, units)``: one value per image and unit (tensor or array)."""
        batch = as_values(values, self.units)
        if not len(batch):
            return
        x = batch.astype(np.float64)
        if np.isfinite(x.min(axis=0)).all():
            count = np.full(self.units, len(x), np.int64)
            mean = x.mean(axis=0)
            x -= mean
        else:  # leave the -inf out
            finite = x > -np.inf
            x[~finite] = 0
            count = finite.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = x.sum(axis=0) / count
            x -= np.where(count > 0, mean, 0)
            x[~finite] = 0
        np.square(x, out=x)
        self._combine(count, mean, x.sum(axis=0))
        self._firing += (batch > 0).sum(axis=0)
        self.images += len(batch)

    def merge(self, other: RunningMoments) -> None:
        """Absorb ``other``, the moments of a disjoint set of images (``other`` unchanged)."""
        if not isinstance(other, RunningMoments) or other.units != self.units:
            raise ConvscopeError(
                "cannot merge moments of layers with different numbers of units",
                hint="merge the statistics of the same layer",
            )
        self._combine(other._finite, other._mean, other._m2)
        self._firing += other._firing
        self.images += other.images

    def result(self) -> Moments:
        """The current :class:`Moments` (copies)."""
        seen = self.images > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(self._finite > 0, self._mean, np.nan)
            std = np.sqrt(np.where(self._finite > 0, self._m2, np.nan) / self._finite)
            rate = self._firing / self.images if seen else np.full(self.units, np.nan)
        arrays = {
            "finite": self._finite.copy(),
            "mean": mean,
            "std": std,
            "firing_rate": rate,
            "dead": (self._firing == 0) & seen,
            "always_on": (self._firing == self.images) & seen,
        }
        for array in arrays.values():
            array.setflags(write=False)
        return Moments(images=self.images, **arrays)

    def state_dict(self) -> dict:
        """Tensors and ints only: loads with ``torch.load(weights_only=True)``."""
        return {
            "units": self.units,
            "images": self.images,
            "finite": torch.from_numpy(self._finite.copy()),
            "mean": torch.from_numpy(self._mean.copy()),
            "m2": torch.from_numpy(self._m2.copy()),
            "firing": torch.from_numpy(self._firing.copy()),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` of the same number of units."""
        if state["units"] != self.units:
            raise ConvscopeError(
                f"the state holds moments of {state['units']} units, expected {self.units}",
                hint="load the state of the same layer",
            )
        self.images = int(state["images"])
        self._finite = as_numpy(state["finite"]).astype(np.int64, copy=True)
        self._mean = as_numpy(state["mean"]).astype(np.float64, copy=True)
        self._m2 = as_numpy(state["m2"]).astype(np.float64, copy=True)
        self._firing = as_numpy(state["firing"]).astype(np.int64, copy=True)

    def _combine(self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
        """Chan, Golub and LeVeque's pairwise update with a part of ``count`` values per unit."""
        total = self._finite + count
        some = count > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = mean - self._mean
            new_mean = self._mean + delta * (count / total)
            new_m2 = self._m2 + m2 + delta**2 * (self._finite * (count / total))
        self._mean = np.where(some, new_mean, self._mean)
        self._m2 = np.where(some, new_m2, self._m2)
        self._finite = total
