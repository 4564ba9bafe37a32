"""The feature-visualisation view: each unit's optimised image, beside its dataset patches."""

from __future__ import annotations

import torch

from convscope.featurevis import visualise
from convscope.network.layers import LayerInfo
from convscope.network.load import Network
from convscope.scan.gather import Chunk
from convscope.views.base import Picture


class FeatureVisView:
    """One picture per unit: the image optimised for its activation at the centre position
    (:func:`convscope.featurevis.visualise`, the chunk's units in one batch). Each picture's
    ``value`` is the unit's spatial max on it, the statistic its dataset hits are ranked by.

    Args:
        network: the model and its preprocessing.
        colour: ``(3, 3)`` colour matrix (of the data set's images), or ``None`` for ImageNet's.
        steps: optimisation steps.
        seed: seeds the images and transforms.
    """

    name = "featurevis"
    per_hit = False
    in_figure = True

    def __init__(self, network: Network, colour: torch.Tensor | None = None, steps: int = 128, seed: int = 0) -> None:
        self.network = network
        self.colour = colour
        self.steps = steps
        self.seed = seed

    def __call__(self, layer: LayerInfo, chunk: Chunk) -> list[list[Picture]]:
        if not chunk.units:
            return []
        vis = visualise(
            self.network, layer.name, chunk.units, steps=self.steps, seed=self.seed + chunk.units[0], colour=self.colour, info=layer
        )
        return [[Picture(image, None, float(value))] for image, value in zip(vis.images, vis.reached)]
