"""Running per-class mean of every unit: what a unit does, on average, for each class.

Each image brings one value per unit (its strongest activation on the image) and
one label: a class index, or ``-1`` for an unlabelled image, which is left out.
A unit's class mean is over the class's images on which it had a finite value
(an image without one, ``-inf``/NaN/``+-inf``, is left out of that unit's mean).
Sums are float64; memory is ``8 * units * classes`` bytes (120 MB for 15,000 units
and 1,000 classes), twice that once a non-finite value has been seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from convscope.errors import ConvscopeError
from convscope.stats.inputs import ArrayLike, as_labels, as_numpy, as_values, check_positive


@dataclass(frozen=True, eq=False)
class ClassMeans:
    """Per-class means of every unit of one layer (read-only arrays).

    Attributes:
        means: ``(units, classes)`` float64; NaN for a class without an image (or
            without a finite value of that unit).
        counts: ``(classes,)`` int64, labelled images seen per class.
    """

    means: np.ndarray
    counts: np.ndarray


class RunningClassMeans:
    """Streaming mean of each of ``units`` units over the images of each of ``classes`` classes.

    Example:
        >>> class_means = RunningClassMeans(units=2, classes=3)
        >>> class_means.add(np.array([[1.0, 0.0], [3.0, 1.0], [5.0, 2.0], [9.0, 9.0]]),
        ...                 labels=np.array([0, 0, 2, -1]))
        >>> result = class_means.result()
        >>> result.means.tolist()
        [[2.0, nan, 5.0], [0.5, nan, 2.0]]
        >>> result.counts.tolist()
        [2, 0, 1]
    """

    def __init__(self, units: int, classes: int) -> None:
        self.units = check_positive("units", units)
        self.classes = check_positive("classes", classes)
        self._sums = np.zeros((self.classes, self.units), np.float64)  # class-major: rows update fast
        self._counts = np.zeros(self.classes, np.int64)
        self._nonfinite: np.ndarray | None = None  # (classes, units) int64 once a non-finite value came

    def add(self, values: ArrayLike, labels: ArrayLike) -> None:
        """Add a batch.

        Args:
            values: ``(N, units)`` one value per image and unit (tensor or array).
            labels: ``(N,)`` class index per image, ``-1`` for unlabelled (ignored).
        """
        batch = as_values(values, self.units)
        label = as_labels(labels, len(batch), self.classes)
        labelled = label >= 0
        if not labelled.any():
            return
        order = np.argsort(label[labelled], kind="stable")
        label = label[labelled][order]
        batch = batch[labelled][order]
        classes, starts, counts = np.unique(label, return_index=True, return_counts=True)
        x = batch.astype(np.float64)
        finite = x > -np.inf
        if not finite.all():
            x[~finite] = 0
        self._sums[classes] += np.add.reduceat(x, starts, axis=0)
        self._counts[classes] += counts
        if not finite.all():
            if self._nonfinite is None:
                self._nonfinite = np.zeros((self.classes, self.units), np.int64)
            self._nonfinite[classes] += np.add.reduceat((~finite).astype(np.int64), starts, axis=0)

    def merge(self, other: RunningClassMeans) -> None:
        """Absorb ``other``, the class means of a disjoint set of images (``other`` unchanged)."""
        if not isinstance(other, RunningClassMeans) or (other.units, other.classes) != (self.units, self.classes):
            raise ConvscopeError(
                "cannot merge class means of different shapes",
                hint="merge the statistics of the same layer with the same classes",
            )
        self._sums += other._sums
        self._counts += other._counts
        if other._nonfinite is not None:
            if self._nonfinite is None:
                self._nonfinite = np.zeros((self.classes, self.units), np.int64)
            self._nonfinite += other._nonfinite

    def result(self) -> ClassMeans:
        """The current :class:`ClassMeans` (copies)."""
        finite = np.broadcast_to(self._counts[:, None], self._sums.shape)
        if self._nonfinite is not None:
            finite = finite - self._nonfinite
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(finite > 0, self._sums / finite, np.nan).T.copy()
        counts = self._counts.copy()
        means.setflags(write=False)
        counts.setflags(write=False)
        return ClassMeans(means=means, counts=counts)

    def state_dict(self) -> dict:
        """Tensors and ints only: loads with ``torch.load(weights_only=True)``."""
        nonfinite = np.zeros((0, self.units), np.int64) if self._nonfinite is None else self._nonfinite
        return {
            "units": self.units,
            "classes": self.classes,
            "sums": torch.from_numpy(self._sums.copy()),
            "counts": torch.from_numpy(self._counts.copy()),
            "nonfinite": torch.from_numpy(nonfinite.copy()),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` of the same units and classes."""
        if (state["units"], state["classes"]) != (self.units, self.classes):
            raise ConvscopeError(
                f"the state holds class means of {state['units']} units and {state['classes']} classes, "
                f"expected {self.units} units and {self.classes} classes",
                hint="load the state of the same layer, made with the same class list",
            )
        self._sums = as_numpy(state["sums"]).astype(np.float64, copy=True)
        self._counts = as_numpy(state["counts"]).astype(np.int64, copy=True)
        nonfinite = as_numpy(state["nonfinite"]).astype(np.int64, copy=True)
        self._nonfinite = nonfinite if len(nonfinite) else None
