"""Views: each turns the hits of a chunk of units into pictures (or numbers) and writes nothing.

A view is a small object with a ``name`` and a call ``view(layer, chunk)`` that returns,
for every unit of the chunk, its :class:`~convscope.views.base.Picture` list: one per
hit for a grid view (patches, projections), one per unit otherwise (occlusion, feature
visualisation). The
atlas build lays them out and hands them to its writer; adding a kind of per-unit
picture is one new module here and one entry in :func:`convscope.atlas.build.views_for`.
"""

from convscope.views.base import Picture, UnitView
from convscope.views.featurevis import FeatureVisView
from convscope.views.occlusion import OcclusionView
from convscope.views.patch import PatchView
from convscope.views.projection import ProjectionView

__all__ = ["FeatureVisView", "OcclusionView", "PatchView", "Picture", "ProjectionView", "UnitView"]
