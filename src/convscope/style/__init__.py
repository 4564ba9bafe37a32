"""Neural style transfer (Gatys et al.) on convscope's networks and hooks.

The one call is :func:`stylise`; the pieces (:func:`gram` and the losses, the default
layers) can be used alone.
"""

from convscope.style.colour import preserve_colour
from convscope.style.explain import Explanation, Reconstruction, explain, explain_layers
from convscope.style.figure import explain_figure
from convscope.style.layers import default_style_layers, vgg_names
from convscope.style.losses import blend_grams, content_loss, gram, style_loss, tv_loss
from convscope.style.quality import Quality, quality
from convscope.style.transfer import Losses, StyleResult, stylise

__all__ = [
    "Explanation",
    "Losses",
    "Quality",
    "Reconstruction",
    "StyleResult",
    "blend_grams",
    "content_loss",
    "default_style_layers",
    "explain",
    "explain_figure",
    "explain_layers",
    "gram",
    "preserve_colour",
    "quality",
    "style_loss",
    "stylise",
    "tv_loss",
    "vgg_names",
]
