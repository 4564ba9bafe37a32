"""What every view returns, and the protocol views follow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from convscope.network.layers import LayerInfo
from convscope.scan.gather import Chunk


@dataclass(frozen=True)
class Picture:
    """One picture of a unit, at the model-input scale.

    Attributes:
        pixels: ``uint8 (h, w, 3)``.
        inside: ``bool (h, w)``, False where the picture shows what lies past the image
            border (drawn striped); ``None`` when the whole picture is image content.
    """

    pixels: np.ndarray
    inside: np.ndarray | None = None


class UnitView(Protocol):
    """A kind of per-unit picture.

    Attributes:
        name: the file suffix of its PNGs (``""`` for the patches) and its key in the manifest.
        per_hit: True for one picture per hit, laid out as a grid beside the patches;
            False for one picture per unit.
    """

    name: str
    per_hit: bool

    def __call__(self, layer: LayerInfo, chunk: Chunk) -> list[list[Picture]]:
        """For every unit of ``chunk`` (in ``chunk.units`` order), its pictures, strongest hit first."""
        ...
