"""Projections of hits (deconvnet, guided backprop) and occlusion maps.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    >>> p = project_hits(model, "2", torch.randn(1, 3, 8, 8), [1], [0], [3], "guided")
    >>> projection_to_image(p[0]).shape
    (8, 8, 3)
"""

from convscope.project.crop import Crop, plan_crop
from convscope.project.display import projection_to_image
from convscope.project.occlusion import ClassTarget, UnitTarget, occlusion_map, render_occlusion, target_values
from convscope.project.projection import project_hits
from convscope.project.rules import ProjectionRuleWarning, Rule, modified_relus

__all__ = [
    "ClassTarget",
    "Crop",
    "ProjectionRuleWarning",
    "Rule",
    "UnitTarget",
    "modified_relus",
    "occlusion_map",
    "plan_crop",
    "project_hits",
    "projection_to_image",
    "render_occlusion",
    "target_values",
]
