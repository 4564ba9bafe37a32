"""A class's most relevant units over many images: running sums per class, and the result.

For each image ``i`` of class ``k`` (its label, or its predicted class) and each layer, unit
``c``'s relevance ``R_ic`` to the logit of ``k`` is gradient x activation summed over positions
(signed, :func:`~convscope.explain.relevance.batch_gradients`) and its share
``S_ic = R_ic / sum_c |R_ic|`` (0 where the layer's relevance is all 0). Per class and layer,
:class:`ClassState` keeps float64 sums of ``S`` and ``R`` and, per unit, how many of the
class's images had it among their own ``top`` units (highest relevance first, lower unit on
ties, relevance 0 left out: :func:`convscope.explain.explain`'s ranking). Nothing per image is
kept. Sums add, so shards of images merge exactly (up to float64 rounding in the order of the
additions); a resumed pass adds in the same order as an uninterrupted one.

A class's *concept atlas* is then its units by mean share ``sum S / images``: those that carry
most of its logit on average over its images (:meth:`ClassRelevance.top_units`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from convscope.errors import ConvscopeError


@dataclass(frozen=True)
class ClassUnit:
    """One unit of a class's concept atlas at one layer.

    Attributes:
        unit: the channel.
        mean_share: its share of the class logit's relevance, averaged over the class's images.
        mean_relevance: its relevance (gradient x activation), averaged likewise.
        top_count: how many of the class's images had it among their own top units.
    """

    unit: int
    mean_share: float
    mean_relevance: float
    top_count: int

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "mean_share": self.mean_share, "mean_relevance": self.mean_relevance, "top_count": self.top_count}


@dataclass(frozen=True)
class LayerSums:
    """One layer's sums over images, per class: ``share``, ``relevance`` ``(classes, units)``
    float64 and ``top`` ``(classes, units)`` int64 (images that had the unit in their top)."""

    share: torch.Tensor
    relevance: torch.Tensor
    top: torch.Tensor


@dataclass(frozen=True)
class ClassRelevance:
    """The units most relevant on average to each class, over a data set (returned by
    :func:`~convscope.explain.classes.explain_classes`; it writes nothing).

    Attributes:
        layers: per layer name, its :class:`LayerSums`, in the order asked.
        counts: ``(classes,)`` int64, images per class.
        correct: ``(classes,)`` int64, those of them the model predicted as that class.
        class_names: the model's class names, or ``None``.
        top: the units per image counted in ``top_count`` (and listed per class by default).
        class_by: how each image's class was chosen: ``"label"`` or ``"predicted"``.
        by_label: images whose class was their label (the others: their predicted class).
        image_count: images read; ``failed``: ``(image index, reason)`` of those that were not.
        method: how relevance was computed (``"gradient x activation"`` or ``"LRP epsilon-plus-flat"``).

    Example:
        >>> result = explain_classes(net, "photos/", layers=["features.12"])  # doctest: +SKIP
        >>> [u.unit for u in result.top_units("features.12", 207, 3)]  # doctest: +SKIP
        [97, 402, 12]
    """

    layers: dict[str, LayerSums]
    counts: torch.Tensor
    correct: torch.Tensor
    class_names: tuple[str, ...] | None
    top: int
    class_by: str
    by_label: int
    image_count: int
    failed: tuple[tuple[int, str], ...]
    method: str = "gradient x activation"

    @property
    def classes(self) -> list[int]:
        """The classes that have images, most images first (lower index on ties)."""
        counts = self.counts.tolist()
        return sorted((k for k, n in enumerate(counts) if n), key=lambda k: (-counts[k], k))

    def class_name(self, index: int) -> str | None:
        names = self.class_names
        return names[index] if names is not None and 0 <= index < len(names) else None

    def mean_share(self, layer: str, class_index: int | None = None) -> torch.Tensor:
        """``(units,)`` float64: every unit's mean share over the class's images (``None``: over all
        images); zeros for a class without images."""
        sums, count = self._sums(layer, class_index)
        return sums[0] / max(count, 1)

    def mean_relevance(self, layer: str, class_index: int | None = None) -> torch.Tensor:
        """``(units,)`` float64: every unit's mean relevance, as :meth:`mean_share`."""
        sums, count = self._sums(layer, class_index)
        return sums[1] / max(count, 1)

    def top_units(self, layer: str, class_index: int | None = None, n: int | None = None) -> list[ClassUnit]:
        """The ``n`` (default :attr:`top`) units of highest mean share for the class (``None``: all
        images), lower unit first on ties; units whose mean share is 0 are left out."""
        (share, relevance, top), count = self._sums(layer, class_index)
        mean = share / max(count, 1)
        order = [u for u in torch.sort(-mean, stable=True).indices.tolist() if float(mean[u]) != 0][: n or self.top]
        return [ClassUnit(u, float(mean[u]), float(relevance[u]) / max(count, 1), int(top[u])) for u in order]

    def _sums(self, layer: str, class_index: int | None) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], int]:
        if layer not in self.layers:
            raise ConvscopeError(f"no layer {layer!r} in this result", hint=f"pick among {', '.join(self.layers)}")
        sums = self.layers[layer]
        if class_index is None:
            return (sums.share.sum(0), sums.relevance.sum(0), sums.top.sum(0)), int(self.counts.sum())
        if not 0 <= class_index < len(self.counts):
            raise ConvscopeError(f"class {class_index} is not in 0..{len(self.counts) - 1}", hint="give a class index of the model")
        return (sums.share[class_index], sums.relevance[class_index], sums.top[class_index]), int(self.counts[class_index])

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        """Per class with images (index order), and overall: the image count and per layer the top units."""

        def entry(class_index: int | None) -> dict[str, Any]:
            return {"layers": [{"layer": name, "units": [u.to_dict() for u in self.top_units(name, class_index, top)]} for name in self.layers]}

        classes = [
            {"class": k, "name": self.class_name(k), "images": int(self.counts[k]), "correct": int(self.correct[k]), **entry(k)}
            for k in sorted(self.classes)
        ]
        overall = {"images": int(self.counts.sum()), "correct": int(self.correct.sum()), **entry(None)}
        return {
            "class_by": self.class_by, "by_label": self.by_label, "top": top or self.top, "image_count": self.image_count,
            "overall": overall, "classes": classes,
        }


class ClassState:
    """The running sums of a class-relevance pass over a data set (a
    :class:`~convscope.scan.progress.Resumable`): ``seen`` images consumed in image order.

    Example:
        >>> state = ClassState([("conv", 3)], classes=2, top=1)
        >>> state.add("conv", torch.tensor([[1.0, -3.0, 0.0], [2.0, 2.0, 0.0]]), torch.tensor([1, 1]))
        >>> state.layers["conv"].share[1].tolist(), state.layers["conv"].top[1].tolist()
        ([0.75, -0.25, 0.0], [2, 0, 0])
    """

    def __init__(self, layers: Sequence[tuple[str, int]], classes: int, top: int) -> None:
        if top < 1:
            raise ConvscopeError(f"top must be at least 1, got {top}", hint="e.g. top=10")
        self.classes, self.top = classes, top
        self.units = dict(layers)
        self.layers = {
            name: LayerSums(
                torch.zeros(classes, units, dtype=torch.float64),
                torch.zeros(classes, units, dtype=torch.float64),
                torch.zeros(classes, units, dtype=torch.int64),
            )
            for name, units in layers
        }
        self.counts = torch.zeros(classes, dtype=torch.int64)
        self.correct = torch.zeros(classes, dtype=torch.int64)
        self.seen = 0
        self.count = 0
        self.by_label = 0
        self.failed: list[tuple[int, str]] = []

    def add(self, layer: str, relevance: torch.Tensor, classes: torch.Tensor) -> None:
        """Add the images' ``relevance`` ``(N, units)`` at ``layer``, image ``i`` to class ``classes[i]``."""
        r = relevance.detach().double().cpu()
        classes = classes.cpu()
        if r.shape != (len(classes), self.units[layer]):
            raise ConvscopeError(f"layer {layer!r} gave relevances {tuple(r.shape)}, expected ({len(classes)}, {self.units[layer]})",
                                 hint="the model's output shape depends on its input; use a fixed --input-size")
        total = r.abs().sum(dim=1, keepdim=True)
        shares = torch.where(total > 0, r / total.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(r))
        sums = self.layers[layer]
        sums.share.index_add_(0, classes, shares)
        sums.relevance.index_add_(0, classes, r)
        key = (-r).masked_fill(r == 0, float("inf"))  # highest first, relevance 0 last (left out)
        order = torch.sort(key, dim=1, stable=True).indices[:, : self.top]  # lower unit first on ties
        kept = torch.gather(r, 1, order) != 0
        rows = classes[:, None].expand_as(order)
        sums.top.index_put_((rows[kept], order[kept]), torch.ones(int(kept.sum()), dtype=torch.int64), accumulate=True)

    def add_images(self, classes: torch.Tensor, predicted: torch.Tensor, labelled: int) -> None:
        """Count the images of one batch: their classes ``(N,)``, predicted classes ``(N,)`` and how many went by their label."""
        classes, predicted = classes.cpu(), predicted.cpu()
        self.counts += torch.bincount(classes, minlength=self.classes)
        self.correct += torch.bincount(classes[classes == predicted], minlength=self.classes)
        self.count += len(classes)
        self.by_label += labelled

    def merge(self, other: ClassState) -> None:
        """Absorb ``other``: the same pass over another shard of images (sums add)."""
        if other.units != self.units or other.classes != self.classes or other.top != self.top:
            raise ValueError("cannot merge the class relevance of other layers, classes or top")
        for name, sums in self.layers.items():
            theirs = other.layers[name]
            sums.share.add_(theirs.share)
            sums.relevance.add_(theirs.relevance)
            sums.top.add_(theirs.top)
        self.counts += other.counts
        self.correct += other.correct
        self.seen = max(self.seen, other.seen)
        self.count += other.count
        self.by_label += other.by_label
        self.failed += other.failed

    def result(self, class_names: Sequence[str] | None, class_by: str, method: str = "gradient x activation") -> ClassRelevance:
        return ClassRelevance(
            layers={name: LayerSums(s.share.clone(), s.relevance.clone(), s.top.clone()) for name, s in self.layers.items()},
            counts=self.counts.clone(), correct=self.correct.clone(), class_names=tuple(class_names) if class_names else None,
            top=self.top, class_by=class_by, by_label=self.by_label, image_count=self.count, failed=tuple(sorted(self.failed)),
            method=method,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "seen": self.seen, "count": self.count, "by_label": self.by_label, "classes": self.classes, "top": self.top,
            "failed": [[i, reason] for i, reason in self.failed], "counts": self.counts, "correct": self.correct,
            "layers": {name: {"share": s.share, "relevance": s.relevance, "top": s.top} for name, s in self.layers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["classes"] != self.classes or state["top"] != self.top or sorted(state["layers"]) != sorted(self.layers):
            raise ValueError("the state holds another pass (layers, classes or top differ)")
        for name, saved in state["layers"].items():
            if saved["share"].shape != self.layers[name].share.shape:
                raise ValueError(f"the state's layer {name!r} has another number of units")
            self.layers[name] = LayerSums(saved["share"].double(), saved["relevance"].double(), saved["top"].long())
        self.seen, self.count, self.by_label = int(state["seen"]), int(state["count"]), int(state["by_label"])
        self.counts, self.correct = state["counts"].long(), state["correct"].long()
        self.failed = [(int(i), str(reason)) for i, reason in state["failed"]]
