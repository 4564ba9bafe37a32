"""Feature visualisation by optimisation (Olah, Mordvintsev & Schubert, Distill 2017), whole layers at once.

The one call is :func:`visualise`; the pieces (the Fourier image, the colour matrix, the
random transforms, the objectives) can be used alone.
"""

from convscope.featurevis.objectives import diversity, spatial_max, unit_values
from convscope.featurevis.param import IMAGENET_COLOUR_SQRT, FourierImage, colour_matrix
from convscope.featurevis.sheet import featurevis_sheet
from convscope.featurevis.transforms import Robustness
from convscope.featurevis.optimise import FeatureVis, image_size, visualise

__all__ = [
    "IMAGENET_COLOUR_SQRT",
    "FeatureVis",
    "FourierImage",
    "Robustness",
    "colour_matrix",
    "diversity",
    "featurevis_sheet",
    "image_size",
    "spatial_max",
    "unit_values",
    "visualise",
]
