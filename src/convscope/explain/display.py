"""An :class:`~convscope.explain.explanation.Explanation` in Jupyter: one self-contained HTML fragment.

The image with the class and the five most probable classes as bars; per layer, one tile per
top unit: its conditional heatmap and its activation map (drawn as the PNG figure draws them,
:mod:`convscope.explain.overlays`), its signed share as a bar, and with the atlas's cards its
top patches and suggested label. A layer's bars are drawn to the scale of its largest share. Images are ``data:`` URIs, styles inline, no scripts
(:mod:`convscope.notebook.html`); every string from data is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping

from convscope.explain.cards import UnitCard
from convscope.explain.overlays import activation_overlay, outline, unit_heat_overlay
from convscope.explain.shown import ShownExplanation, ShownLayer, ShownUnit
from convscope.explain.text import signed_percent
from convscope.notebook.cards import BOX, SMALL, section
from convscope.notebook.html import CONFIDENCE, MUTED, badge, bars, esc, img, number

#: Side of a unit's pictures in a tile, and of the image.
TILE, IMAGE = 112, 224
#: Bar colours of a raising (positive) and a lowering share, as the viewer and the heatmaps draw them.
POSITIVE, NEGATIVE = "#d93b3b", "#3b62d9"


def share_bar(share: float, scale: float = 1.0, width: int = TILE) -> str:
    """A signed share as a bar from the middle, full length at ``|share| = scale``: right and
    red for positive (the unit raises the class), left and blue for negative.

    Example:
        >>> 'left: 50.0px' in share_bar(0.25, 1.0, 100), 'width: 12.5px' in share_bar(0.25, 1.0, 100)
        (True, True)
        >>> 'left: 0.0px; width: 50.0px' in share_bar(-0.1, 0.1, 100)
        True
    """
    half = width / 2
    length = min(abs(share) / scale, 1.0) * half if scale > 0 else 0.0
    left = half if share >= 0 else half - length
    colour = POSITIVE if share >= 0 else NEGATIVE
    return (
        f'<div style="position: relative; width: {width}px; height: 8px; background: #f0f2f4">'
        f'<div style="position: absolute; left: {half - 0.5:.1f}px; width: 1px; height: 8px; background: {MUTED}"></div>'
        f'<div style="position: absolute; left: {left:.1f}px; width: {length:.1f}px; height: 8px; background: {colour}"></div></div>'
    )


def unit_tile(explanation: ShownExplanation, layer: ShownLayer, unit: ShownUnit, card: UnitCard | None, scale: float) -> str:
    """One top unit: caption, share bar (full at ``scale``), heatmap, activation map, and the
    card's patches and label."""
    image = explanation.image
    field = layer.fields.field(unit.unit) if layer.fields is not None else None
    title = f"{layer.layer} unit {unit.unit}: relevance {number(unit.relevance)}, share {signed_percent(unit.share)}"
    parts = [
        f'<div style="width: {TILE}px" title="{esc(title)}">',
        f'<div style="font-size: 12px"><b>{unit.unit}</b> <span style="color: {MUTED}">{signed_percent(unit.share)}</span></div>',
        share_bar(unit.share, scale),
    ]
    if unit.heatmap is not None:
        heat = unit_heat_overlay(image, unit.heatmap)
        parts.append(img(heat, side=TILE, title=f"conditional heatmap of unit {unit.unit}", css="margin-top: 3px"))
    parts.append(img(activation_overlay(image, unit.activation_map, field), side=TILE, title=f"activation map of unit {unit.unit}", css="margin-top: 2px"))
    if card is not None and card.patches is not None:
        parts.append(img(card.patches, side=TILE, title=f"unit {unit.unit}'s top patches in the atlas", css="margin-top: 2px"))
        if card.label is not None:
            parts.append(f'<div style="margin-top: 2px; max-width: {TILE}px; overflow: hidden; white-space: nowrap" title="{esc(card.label.text)}">'
                         f'{badge(card.label.name, CONFIDENCE.get(card.label.confidence, MUTED))}</div>')
    parts.append("</div>")
    return "".join(parts)


def explanation_html(explanation: ShownExplanation, cards: Mapping[tuple[str, int], UnitCard] | None = None) -> str:
    """The explanation as an HTML fragment (see the module docstring)."""
    cards = cards or {}
    image = explanation.image if explanation.region is None else outline(explanation.image, explanation.region)
    name = explanation.class_name or f"class {explanation.target}"
    prob = float(explanation.probabilities[explanation.target])
    head = f'<span style="font-size: 15px; font-weight: 600">{esc(name)}</span> <span style="{SMALL}">class {explanation.target} · p {prob:.3f} · logit {number(explanation.logit)} · {esc(explanation.method)}</span>'
    if explanation.predicted != explanation.target:
        head += f' <span style="{SMALL}">· predicted class {explanation.predicted}</span>'
    rows = [(name, p, c == explanation.target) for c, name, p in explanation.top_classes(5)]
    parts = [f'<div style="{BOX}; display: inline-block; max-width: 1000px">', f"<div>{head}</div>"]
    parts.append(f'<div style="display: flex; gap: 16px; align-items: flex-start; margin-top: 8px">{img(image, side=IMAGE)}'
                 f'{section("probability", bars(rows))}</div>')
    for layer in explanation.layers:
        scale = max((abs(u.share) for u in layer.units), default=0.0)
        tiles = [unit_tile(explanation, layer, u, cards.get((layer.layer, u.unit)), scale) for u in layer.units]
        firing = ", ".join(f"{f.unit} ({number(f.activation)})" for f in layer.firing)
        body = f'<div style="display: flex; flex-wrap: wrap; gap: 8px">{"".join(tiles)}</div>'
        body += f'<div style="{SMALL}; margin-top: 4px">firing most, whatever the class: {esc(firing)}</div>'
        if layer.region is not None:
            under = ", ".join(f"{r.unit} ({number(r.activation)})" for r in layer.region) or "none"
            body += f'<div style="{SMALL}">under the region: {esc(under)}</div>'
        heading = f"{layer.layer}: top units, share of the layer's sum |R| = {number(layer.total_abs)}"
        parts.append(f'<div style="margin-top: 12px">{section(heading, body)}</div>')
    parts.append("</div>")
    return "".join(parts)

