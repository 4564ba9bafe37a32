"""The occlusion view: how a unit's top activation drops as a grey square slides over its box."""

from __future__ import annotations

import numpy as np
import torch

from convscope.network.layers import NCHW, LayerInfo
from convscope.network.load import Network
from convscope.project import UnitTarget, occlusion_map, render_occlusion
from convscope.render.patch import crop
from convscope.scan.gather import Chunk, Hit
from convscope.views.base import Picture, padding_of


class OcclusionView:
    """One picture per unit: the occlusion map of its top hit, drawn over the patch.

    Squares have a quarter of the box's side and move an eighth of it (about 50
    forward passes per unit). Units without hits get no picture.

    Args:
        network: the model and its preprocessing.
        fill: ``uint8 (3,)`` colour of pixels past the image border in the patch.
    """

    name = "occlusion"
    per_hit = False
    in_figure = False

    def __init__(self, network: Network, fill: np.ndarray) -> None:
        self.network = network
        self.fill = fill

    def __call__(self, layer: LayerInfo, chunk: Chunk) -> list[list[Picture]]:
        return [[self._picture(layer, hits[0], chunk.pixels[hits[0].image])] if hits else [] for hits in chunk.hits]

    def _picture(self, layer: LayerInfo, hit: Hit, pixels: np.ndarray) -> Picture:
        """``pixels`` ``uint8 (H, W, 3)``: the hit's model-input-frame image."""
        box = hit.box
        size = max(1, min(box.height, box.width) // 4)
        stride = max(1, size // 2)
        model = self.network.model
        x = self.network.model_input(torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None])
        target = UnitTarget(layer.name, hit.unit, (hit.row, hit.col), layer.dims or NCHW)
        heat = occlusion_map(model, x, target=target, size=size, stride=stride, region=box)
        patch, inside = crop(pixels, box, self.fill, padding_of(layer, hit.unit))  # full size: the squares are drawn on it
        return Picture(render_occlusion(patch, heat, size, stride, baseline=hit.activation), inside)
