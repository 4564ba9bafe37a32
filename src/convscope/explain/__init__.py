"""Explain one image through its units: per-unit relevance to a class (gradient x activation or LRP),
conditional heatmaps, the units under a region. :func:`explain` is the one call; the pieces
(:func:`class_gradients`, :func:`conditional_heatmaps`, :func:`region_units`) can be called alone.
:func:`explain_classes` averages the relevances over a data set, per class."""

from convscope.explain.api import explain, resolve_class
from convscope.explain.class_relevance import ClassRelevance, ClassUnit
from convscope.explain.classes import explain_classes
from convscope.explain.atlas_source import AtlasSource, atlas_source
from convscope.explain.explanation import Explanation, FiringUnit, LayerExplanation, UnitRelevance
from convscope.explain.heatmaps import conditional_heatmaps
from convscope.explain.lrp import LrpRuleError, lrp_rules
from convscope.explain.region import RegionUnit, region_units
from convscope.explain.relevance import METHODS, BatchGradients, ClassGradients, LayerGradient, batch_gradients, class_gradients

__all__ = [
    "AtlasSource",
    "BatchGradients",
    "ClassGradients",
    "ClassRelevance",
    "ClassUnit",
    "Explanation",
    "FiringUnit",
    "LayerExplanation",
    "LayerGradient",
    "LrpRuleError",
    "METHODS",
    "RegionUnit",
    "UnitRelevance",
    "atlas_source",
    "batch_gradients",
    "class_gradients",
    "conditional_heatmaps",
    "explain",
    "explain_classes",
    "lrp_rules",
    "region_units",
    "resolve_class",
]
