"""The picture of an :class:`~convscope.explain.explanation.Explanation` (numpy + PIL; computing never shows).

Layout: the image (with the region outlined, if any) and the class; then one row per layer, one
column per top unit: the unit's conditional heatmap over the greyed image (red where the pixels
raise the class logit through the unit, blue where they lower it; smoothed over a few pixels and
scaled to its 99.5th percentile of |value| for display, :func:`~convscope.explain.overlays.unit_heat_overlay`), captioned with the unit and its
share, and below it the unit's activation map drawn through its receptive fields (each pixel
shows the position whose box centre is nearest; warmer is stronger); with the atlas's unit
cards, below them the unit's top patches over the atlas's images, headed by its suggested label
where that is of high or medium confidence.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from convscope.explain.cards import UnitCard
from convscope.explain.explanation import Explanation, UnitRelevance
from convscope.explain.overlays import activation_overlay, fit, outline, unit_heat_overlay
from convscope.explain.text import signed_percent
from convscope.network.geometry import ReceptiveField
from convscope.render.grid import caption, stack

GAP = 4


def _short(text: str, length: int) -> str:
    """``text`` cut to ``length`` characters, ending in ``~`` where cut."""
    return text if len(text) <= length else text[: length - 1] + "~"


def _unit_cell(explanation: Explanation, unit: UnitRelevance, field: ReceptiveField | None, side: int, card: UnitCard | None) -> np.ndarray:
    image = explanation.image
    parts = []
    if unit.heatmap is not None:
        parts.append(fit(unit_heat_overlay(image, unit.heatmap), side))
    parts.append(fit(activation_overlay(image, unit.activation_map, field), side))
    if card is not None and card.patches is not None:
        confident = card.label is not None and card.label.confidence in ("high", "medium")
        parts.append(caption(fit(card.patches, side), _short(card.label.name if confident else "", side // 6), size=11))
    return caption(stack(parts, 2, vertical=True), f"u{unit.unit} {signed_percent(unit.share)}", size=12)


def explanation_figure(explanation: Explanation, side: int = 96, cards: Mapping[tuple[str, int], UnitCard] | None = None) -> np.ndarray:
    """The figure of ``explanation``: ``uint8 (H, W, 3)`` (see the module docstring).

    ``cards`` (:func:`~convscope.explain.cards.unit_cards` of the explanation's atlas) add under
    each unit its top patches over the atlas's images and its suggested label.

    Example:
        >>> figure = explanation_figure(explain(net, "dog.jpg"))  # doctest: +SKIP
    """
    cards = cards or {}
    image = explanation.image
    if explanation.region is not None:
        image = outline(image, explanation.region)
    name = explanation.class_name or f"class {explanation.target}"
    prob = float(explanation.probabilities[explanation.target])
    title = f"{name} ({explanation.target}): p={prob:.3f}, logit {explanation.logit:.3g}"
    if explanation.predicted != explanation.target:
        title += f"; predicted {explanation.predicted}"
    rows = [caption(fit(image, 2 * side), title)]
    for layer in explanation.layers:
        cells = [
            _unit_cell(explanation, u, layer.fields.field(u.unit) if layer.fields else None, side, cards.get((layer.layer, u.unit)))
            for u in layer.units
        ]
        if not cells:
            continue
        label = f"{layer.layer}: top units by {explanation.method} (share of sum |R|); heatmap, activation map"
        label += ", the unit's top patches in the atlas and its label" if cards else ""
        rows.append(caption(stack(cells, GAP), label))
    return stack(rows, 2 * GAP, vertical=True)
