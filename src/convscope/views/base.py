"""What every view returns, and the protocol views follow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from convscope.network.layers import LayerInfo
from convscope.scan.gather import Chunk


#: The longest side of a picture, in pixels: a longer box (a deep layer's can be thousands of
#: pixels, almost all padding) is sampled every few pixels; the atlas draws pictures in
#: 64-pixel cells (128 for occlusion), so nothing visible is lost.
PICTURE_SIDE = 512


@dataclass(frozen=True)
class Picture:
    """One picture of a unit, at the model-input scale (sampled down to :data:`PICTURE_SIDE`).

    Attributes:
        pixels: ``uint8 (h, w, 3)``.
        inside: ``bool (h, w)``, False where the picture shows what lies past the image
            border (drawn striped); ``None`` when the whole picture is image content.
        value: a number the view measured with the picture (a feature visualisation: the
            activation its image reached), or ``None``.
    """

    pixels: np.ndarray
    inside: np.ndarray | None = None
    value: float | None = None

    def on_image(self) -> "Picture":
        """The part of the picture that shows image content (a box reaching past the border
        cut back to the image; the inside of a box is a rectangle)."""
        if self.inside is None or self.inside.all() or not self.inside.any():
            return self
        rows, cols = np.flatnonzero(self.inside.any(1)), np.flatnonzero(self.inside.any(0))
        window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        return Picture(self.pixels[window], None)


def padding_of(layer: LayerInfo, unit: int) -> str:
    """How the network filled pixels past the image border for ``unit`` (``"zeros"`` where unknown)."""
    return layer.fields.field(unit).padding if layer.fields is not None else "zeros"


class UnitView(Protocol):
    """A kind of per-unit picture.

    Attributes:
        name: the file suffix of its PNGs (``""`` for the patches) and its key in the manifest.
        per_hit: True for one picture per hit, laid out as a grid beside the patches;
            False for one picture per unit.
        in_figure: True where the unit's figure (its grids, the overview) shows it: every
            per-hit view, and a per-unit picture drawn as tall as the grids left of them
            (a feature visualisation, as OpenAI Microscope shows it beside the dataset examples).
    """

    name: str
    per_hit: bool
    in_figure: bool

    def __call__(self, layer: LayerInfo, chunk: Chunk) -> list[list[Picture]]:
        """For every unit of ``chunk`` (in ``chunk.units`` order), its pictures, strongest hit first."""
        ...
