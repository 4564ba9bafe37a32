"""The patch view: the pixels each hit's box covers."""

from __future__ import annotations

import numpy as np

from convscope.network.layers import LayerInfo
from convscope.render.patch import crop
from convscope.scan.gather import Chunk
from convscope.views.base import PICTURE_SIDE, Picture, padding_of


class PatchView:
    """Crops every hit's box out of its model-input-frame image.

    Args:
        fill: ``uint8 (3,)`` colour of pixels past the image border where the network pads
            with zeros (the model's mean: what zero padding shows the network).
    """

    name = ""
    per_hit = True
    in_figure = True

    def __init__(self, fill: np.ndarray) -> None:
        self.fill = fill

    def __call__(self, layer: LayerInfo, chunk: Chunk) -> list[list[Picture]]:
        # Past the border the patch shows what the network saw: the mean colour for zero
        # padding, reflected, repeated or wrapped pixels for the other modes.
        return [
            [Picture(*crop(chunk.pixels[hit.image], hit.box, self.fill, padding_of(layer, unit), max_side=PICTURE_SIDE)) for hit in hits]
            for unit, hits in zip(chunk.units, chunk.hits)
        ]
