"""convscope.stats: streaming statistics of every unit, and labels suggested from them.

Each statistic takes, per batch, every image's strongest activation of every unit
(``values`` ``(N, units)``, a tensor or an array) and has ``add`` / ``merge`` /
``result`` / ``state_dict`` / ``load_state_dict``: :class:`RunningQuantiles`
(quantiles and histograms, exact up to a budget of images, then a sketch),
:class:`RunningMoments` (mean, spread, firing rate, dead and always-on units),
:class:`RunningClassMeans` (mean per class). The functions of
:mod:`convscope.stats.selectivity` turn class means and the labels of a unit's hits
into a class selectivity and a suggested label.
"""

from convscope.stats.classes import ClassMeans, RunningClassMeans
from convscope.stats.moments import Moments, RunningMoments
from convscope.stats.quantiles import DEFAULT_BUDGET, DEFAULT_QS, Distribution, RunningQuantiles
from convscope.stats.selectivity import (
    CONFIDENCE,
    UnitLabel,
    chance,
    class_selectivity,
    confidence,
    hit_mode,
    hit_purity,
    suggest_labels,
    top_class,
)

__all__ = [
    "CONFIDENCE",
    "DEFAULT_BUDGET",
    "DEFAULT_QS",
    "ClassMeans",
    "Distribution",
    "Moments",
    "RunningClassMeans",
    "RunningMoments",
    "RunningQuantiles",
    "UnitLabel",
    "chance",
    "class_selectivity",
    "confidence",
    "hit_mode",
    "hit_purity",
    "suggest_labels",
    "top_class",
]
