"""Neural style transfer (Gatys et al.) on convscope's networks and hooks.

The one call is :func:`stylise`; the pieces (:func:`gram` and the losses, the default
layers) can be used alone.
"""

from convscope.style.colour import preserve_colour
from convscope.style.layers import default_style_layers, vgg_names
from convscope.style.losses import blend_grams, content_loss, gram, style_loss, tv_loss
from convscope.style.transfer import Losses, StyleResult, stylise

__all__ = [
    "Losses",
    "StyleResult",
    "blend_grams",
    "content_loss",
    "default_style_layers",
    "gram",
    "preserve_colour",
    "style_loss",
    "stylise",
    "tv_loss",
    "vgg_names",
]
