"""The statistics of a layer's units as atlas records: numbers per unit and a summary per layer.

Everything here is computed from what pass 1 kept (:class:`~convscope.scan.scan.LayerScan`)
and the images' labels; nothing reads an image. The records are what a layer's ``hits.js``
holds under each unit's ``"stats"`` and the manifest under each layer's ``"summary"``
(see docs/atlas-format.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convscope.scan.scan import LayerScan
from convscope.stats import class_selectivity, hit_purity, suggest_labels, top_class

#: Classes listed per unit (strongest class means first).
TOP_CLASSES = 5


@dataclass(frozen=True)
class LayerStatistics:
    """Per unit a JSON-ready record, and the layer's summary.

    Attributes:
        units: one dict per unit, in unit order (see :func:`layer_statistics`).
        summary: shares of dead and always-on units, mean firing rate, and with labels
            the mean selectivity, top-class purity and label agreement over the units.
        levels: the quantile levels of every unit's ``quantiles``.
        exact: whether the quantiles and histograms are exact (else a sketch's, within 0.1% rank).
    """

    units: list[dict[str, Any]]
    summary: dict[str, Any]
    levels: list[float]
    exact: bool


def layer_statistics(scan: LayerScan, labels: Sequence[int] | None, class_names: Sequence[str] | None) -> LayerStatistics:
    """The records of every unit of ``scan``.

    Args:
        scan: a layer's pass-1 result with its statistics (``moments``, ``distribution``).
        labels: per image index its class (``-1`` unlabelled), or ``None``.
        class_names: the classes' names (``labels`` index into them), or ``None``.

    Each unit's record: ``mean``, ``std``, ``min``, ``max`` and ``quantiles`` of each
    image's strongest activation, ``histogram`` (counts over ``bins`` equal bins from
    ``min`` to ``max``), ``firing_rate``, ``dead``, ``always_on``; with labels also
    ``classes`` (up to :data:`TOP_CLASSES` ``[class, mean]`` pairs, strongest first),
    ``selectivity`` (Morcos et al. 2018), ``top_class``, ``purity`` (share of the top
    hits whose label is ``top_class``) and ``label`` (the suggested name, see
    :func:`convscope.stats.suggest_labels`). Non-finite numbers become ``None``. A unit whose
    strongest activation is the same on every image (a dead unit at 0) gets no ``label`` and
    no ``purity``: its hits are ties, ranked by image order alone.
    """
    moments, dist = scan.moments, scan.distribution
    assert moments is not None and dist is not None, "the scan kept no statistics"
    units = len(moments.mean)
    records: list[dict[str, Any]] = [
        {
            "mean": _number(moments.mean[u]),
            "std": _number(moments.std[u]),
            "min": _number(dist.minimum[u]),
            "max": _number(dist.maximum[u]),
            "quantiles": [_number(v) for v in dist.quantiles[u]],
            "histogram": dist.counts[u].tolist(),
            "firing_rate": _number(moments.firing_rate[u]),
            "dead": bool(moments.dead[u]),
            "always_on": bool(moments.always_on[u]),
        }
        for u in range(units)
    ]
    summary: dict[str, Any] = {
        "dead": _share(moments.dead),
        "always_on": _share(moments.always_on),
        "firing_rate": _mean(moments.firing_rate),
    }
    if scan.class_means is not None and labels is not None and class_names:
        # A unit whose strongest activation is the same on every image (a dead unit at 0) has hits
        # that are ties in image order: their labels say nothing, so it gets no label or purity.
        constant = ~(dist.maximum > dist.minimum)
        _add_classes(records, summary, scan, np.asarray(labels, dtype=np.int64), list(class_names), constant)
    return LayerStatistics(records, summary, [float(q) for q in dist.qs], bool(dist.exact))


def _add_classes(
    records: list[dict[str, Any]], summary: dict[str, Any], scan: LayerScan, labels: np.ndarray, names: list[str], constant: np.ndarray
) -> None:
    means = np.asarray(scan.class_means.means, dtype=np.float64)  # (units, classes)
    selectivity = class_selectivity(means)
    top = top_class(means)
    images = scan.topk.images.numpy()
    hit_labels = np.where(images >= 0, labels[np.clip(images, 0, None)], -1)  # (units, k)
    hit_labels[constant] = -1
    purity = hit_purity(hit_labels, top)
    counts = np.bincount(labels[labels >= 0], minlength=len(names))
    suggested = suggest_labels(hit_labels, counts, names, selectivity)
    ranked = np.argsort(-np.nan_to_num(means, nan=-np.inf), axis=1, kind="stable")[:, :TOP_CLASSES]
    for u, record in enumerate(records):
        record["classes"] = [[int(c), _number(means[u, c])] for c in ranked[u] if not math.isnan(means[u, c])]
        record["selectivity"] = _number(selectivity[u])
        record["top_class"] = int(top[u]) if top[u] >= 0 else None
        record["purity"] = _number(purity[u])
        label = suggested[u]
        record["label"] = None if label.name is None else {
            "name": label.name, "class": label.label, "agreeing": label.agreeing, "hits": label.hits,
            "purity": _number(label.purity), "chance": _number(label.chance), "confidence": label.confidence,
            "text": label.text,
        }
    agreement = np.array([s.purity for s in suggested], dtype=np.float64)  # NaN without labelled hits
    summary |= {
        "selectivity": _mean(selectivity),
        "purity": _mean(purity),
        "label_agreement": _mean(agreement),
        "confident_labels": sum(s.confidence in ("high", "medium") for s in suggested),
    }


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _share(flags: np.ndarray) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


def _mean(values: np.ndarray) -> float | None:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if len(finite) else None
