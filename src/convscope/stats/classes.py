"""Running per-class mean of every unit: what a unit does, on average, for each class.

Each image brings one value per unit (its strongest activation on the image) and
one label: a class index, or ``-1`` for an unlabelled image, which is left out.
A unit's class mean is over the class's images on which it had a finite value
(an image without one, ``-inf``/NaN/``+-inf``, is left out of that unit's mean).
Sums are float64, added along the fixed tree of :mod:`convscope.stats.tree`; each
partial holds only the classes of its images, so memory is about ``16 * units`` bytes
per class present in the partials held (at most ``log2(batches) + 1``): small for images
in class order, up to ``16 * units * classes`` bytes per level for shuffled labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from convscope.errors import ConvscopeError
from convscope.stats.inputs import ArrayLike, as_labels, as_numpy, as_values, check_positive
from convscope.stats.tree import BlockTree


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


class _Part(NamedTuple):
    """The class sums of some images, for the classes they hold only: ``classes`` ``(m,)``
    sorted class indices, ``sums`` ``(m, units)`` float64, ``counts`` ``(m,)`` labelled images,
    ``nonfinite`` ``(m, units)`` images without a finite value."""

    classes: np.ndarray
    sums: np.ndarray
    counts: np.ndarray
    nonfinite: np.ndarray


class RunningClassMeans:
    """Streaming mean of each of ``units`` units over the images of each of ``classes`` classes.

    Each :meth:`add` is one block of a :class:`~convscope.stats.tree.BlockTree` and holds
    only the classes of its images, so the result is the same to the last bit however the
    blocks were split over processes, and images sorted by class keep the partials small.

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
        self._tree: BlockTree[_Part] = BlockTree(_combine)
        self._next = 0

    def add(self, values: ArrayLike, labels: ArrayLike, block: int | None = None) -> None:
        """Add a batch.

        Args:
            values: ``(N, units)`` one value per image and unit (tensor or array).
            labels: ``(N,)`` class index per image, ``-1`` for unlabelled (ignored).
            block: the batch's number in the whole data set (see
                :meth:`RunningMoments.add <convscope.stats.RunningMoments.add>`); default: the next.
        """
        batch = as_values(values, self.units)
        label = as_labels(labels, len(batch), self.classes)
        labelled = label >= 0
        order = np.argsort(label[labelled], kind="stable")
        label = label[labelled][order]
        x = batch[labelled][order].astype(np.float64)
        classes, starts, counts = np.unique(label, return_index=True, return_counts=True)
        finite = x > -np.inf
        if not finite.all():
            x[~finite] = 0
        if len(classes):
            sums, bad = np.add.reduceat(x, starts, axis=0), np.add.reduceat((~finite).astype(np.int64), starts, axis=0)
        else:
            sums, bad = np.zeros((0, self.units)), np.zeros((0, self.units), np.int64)
        block = self._next if block is None else block
        self._tree.add(block, _Part(classes.astype(np.int64), sums, counts.astype(np.int64), bad))
        self._next = block + 1

    def merge(self, other: RunningClassMeans) -> None:
        """Absorb ``other``, the class means of a disjoint set of blocks (``other`` unchanged)."""
        if not isinstance(other, RunningClassMeans) or (other.units, other.classes) != (self.units, self.classes):
            raise ConvscopeError(
                "cannot merge class means of different shapes",
                hint="merge the statistics of the same layer with the same classes",
            )
        self._tree.merge(other._tree)
        self._next = max(self._next, other._next)

    def result(self) -> ClassMeans:
        """The current :class:`ClassMeans` (copies)."""
        total = self._tree.result()
        sums = np.zeros((self.classes, self.units), np.float64)
        finite = np.zeros((self.classes, self.units), np.int64)
        counts = np.zeros(self.classes, np.int64)
        if total is not None:
            sums[total.classes] = total.sums
            counts[total.classes] = total.counts
            finite[total.classes] = total.counts[:, None] - total.nonfinite
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(finite > 0, sums / finite, np.nan).T.copy()
        means.setflags(write=False)
        counts.setflags(write=False)
        return ClassMeans(means=means, counts=counts)

    def state_dict(self) -> dict:
        """Tensors and ints only: loads with ``torch.load(weights_only=True)``."""
        nodes = [
            {"level": level, "index": index, **{name: torch.from_numpy(getattr(part, name).copy()) for name in _Part._fields}}
            for (level, index), part in self._tree.items()
        ]
        return {"units": self.units, "classes": self.classes, "next": self._next, "nodes": nodes}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` of the same units and classes."""
        if (state["units"], state["classes"]) != (self.units, self.classes):
            raise ConvscopeError(
                f"the state holds class means of {state['units']} units and {state['classes']} classes, "
                f"expected {self.units} units and {self.classes} classes",
                hint="load the state of the same layer, made with the same class list",
            )
        self._tree = BlockTree(_combine)
        for node in state["nodes"]:
            part = _Part(*(as_numpy(node[name]).copy() for name in _Part._fields))
            self._tree.nodes[(int(node["level"]), int(node["index"]))] = part
        self._next = int(state["next"])


def _combine(left: _Part, right: _Part) -> _Part:
    """The class sums of both parts' images: rows of a class in both are added, left + right."""
    classes = np.union1d(left.classes, right.classes)
    units = left.sums.shape[1]
    sums = np.zeros((len(classes), units), np.float64)
    bad = np.zeros((len(classes), units), np.int64)
    counts = np.zeros(len(classes), np.int64)
    for part in (left, right):
        rows = np.searchsorted(classes, part.classes)
        sums[rows] += part.sums
        bad[rows] += part.nonfinite
        counts[rows] += part.counts
    return _Part(classes, sums, counts, bad)
