"""The atlas's card of each unit an explanation names: its top patches and suggested label.

An explanation made from an atlas (:attr:`~convscope.explain.explanation.Explanation.atlas`)
ranks units of the atlas's layers; their cards say what each unit responds to over the whole
data set. The patches are cut from the atlas's stored images exactly as the viewer and the
notebook cut them (:mod:`convscope.notebook.patches`), so the figure, the notebook and the
viewer show the same pictures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.explain.shown import ShownExplanation
from convscope.notebook.atlas import open_atlas
from convscope.notebook.patches import cut, padding_fill, padding_mode, thumbnail
from convscope.notebook.records import Label


@dataclass(frozen=True)
class UnitCard:
    """What the atlas knows of one unit.

    Attributes:
        layer: dotted name; unit: the channel.
        patches: its top hits' patches as one near-square grid ``uint8 (H, W, 3)`` (rank 0 top
            left, ``cell``-pixel squares, striped past the image border), or ``None`` when the
            unit has no hits.
        label: its suggested label (``None`` without statistics or labelled hits).
        top_activation: its strongest activation over the atlas's images (``None`` without hits).
    """

    layer: str
    unit: int
    patches: np.ndarray | None
    label: Label | None
    top_activation: float | None

    @property
    def label_text(self) -> str:
        """The label's name and confidence (``"beagle, high"``), or ``""``."""
        return f"{self.label.name}, {self.label.confidence}" if self.label is not None else ""


def unit_cards(atlas: str | Path, wanted: Iterable[tuple[str, int]], cell: int = 32) -> dict[tuple[str, int], UnitCard]:
    """The cards of the ``(layer, unit)`` pairs in ``wanted``, keyed by that pair.

    Each layer's records are read once, each unit's stored images once.

    Args:
        atlas: the atlas folder.
        wanted: ``(layer, unit)`` pairs of the atlas's layers.
        cell: side of a patch's square in the grid, in pixels.

    Raises:
        AtlasError: the atlas, a layer's records or an image cannot be read.
        KeyError: a layer the atlas does not have; IndexError: a unit past its layer's units.

    Example:
        >>> cards = unit_cards("atlas/", [("features.12", 97)])  # doctest: +SKIP
        >>> cards["features.12", 97].label_text, cards["features.12", 97].patches.shape  # doctest: +SKIP
        ('beagle, medium', (98, 98, 3))
    """
    book = open_atlas(atlas)
    fill = padding_fill(book.manifest)
    cards: dict[tuple[str, int], UnitCard] = {}
    for name, index in dict.fromkeys((str(layer), int(unit)) for layer, unit in wanted):
        layer = book[name]
        unit = layer[index]
        hits = unit.hits
        pieces = cut(book.path, hits, fill, padding_mode(layer.entry, index)) if hits else []
        cards[name, index] = UnitCard(
            layer=name,
            unit=index,
            patches=thumbnail(pieces, layer.k, cell) if pieces else None,
            label=unit.label if unit.has_stats else None,
            top_activation=float(hits[0].activation) if hits else None,
        )
    return cards


def atlas_cards(explanation: ShownExplanation, cell: int = 32) -> dict[tuple[str, int], UnitCard]:
    """The cards of the units ``explanation`` ranks, from its atlas (``{}`` without one)."""
    if explanation.atlas is None:
        return {}
    return unit_cards(explanation.atlas, [(layer.layer, u.unit) for layer in explanation.layers for u in layer.units], cell)
