"""What an atlas, a layer and a unit show in Jupyter: self-contained HTML built from :mod:`.html`.

A unit card holds its top patches (a grid, rank 0 top left, each with its activation and
image label), the stored projection grid, its bottom patches, the histogram of each image's
strongest activation with its quantiles, its firing rate, its class means as bars and its
suggested label. A layer shows its summary and a grid of units; an atlas its layer table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from convscope.notebook.html import (
    CONFIDENCE,
    FONT,
    INK,
    MUTED,
    PAPER,
    RULE,
    badge,
    bars,
    esc,
    histogram_svg,
    img,
    number,
    percent,
    png_uri,
    table_html,
)
from convscope.notebook.patches import cut, padding_fill, padding_mode, thumbnail
from convscope.notebook.records import Hit
from convscope.render.grid import grid_shape
from convscope.render.patch import mark_padding

if TYPE_CHECKING:
    from convscope.notebook.atlas import Atlas
    from convscope.notebook.layer import Layer
    from convscope.notebook.unit import Unit

#: Side of a patch cell in a unit card, and of a bottom patch; cell of a layer grid thumbnail.
PATCH_SIDE, BOTTOM_SIDE, THUMB_CELL = 84, 72, 30

BOX = f"{FONT}; color: {INK}; background: {PAPER}; border: 1px solid {RULE}; border-radius: 6px; padding: 12px 14px"
HEADING = f"color: {MUTED}; font-size: 11px; text-transform: uppercase; letter-spacing: 0.04em; margin: 0 0 4px 0"
SMALL = f"color: {MUTED}; font-size: 11px"


def unit_card(unit: "Unit") -> str:
    """The HTML card of ``unit`` (see the module docstring)."""
    layer, atlas = unit.layer, unit.layer.atlas
    label = unit.label if unit.has_stats else None
    title = f"{layer.name} · unit {unit.index}"
    head = [f'<span style="font-size: 15px; font-weight: 600">{esc(title)}</span>']
    head.append(f'<span style="{SMALL}">{esc(layer.type)} · field {esc(layer.receptive_field or "?")}</span>')
    if unit.class_name is not None:
        head.append(f'<span style="{SMALL}">output for class <b>{esc(unit.class_name)}</b></span>')
    if label is not None:
        head.append(badge(f"{label.name} · {label.confidence}", CONFIDENCE.get(label.confidence, MUTED)))
    parts = [f'<div style="{BOX}; display: inline-block; max-width: 920px">']
    parts.append(f'<div style="display: flex; align-items: center; gap: 10px; flex-wrap: wrap">{"".join(head)}</div>')
    if label is not None:
        parts.append(f'<div style="color: {MUTED}; margin-top: 2px">suggested label: {esc(label.text)}</div>')
    pictures = []
    optimised = unit.featurevis()
    if optimised is not None:
        reached = unit.record.get("featurevis") or {}
        ratio = reached.get("ratio")
        note = "" if ratio is None else f" · {ratio:.2f}x the top hit" + (" (below it)" if reached.get("below_top") else "")
        pictures.append(_section(f"optimised image{note}", img(optimised, side=_grid_width(layer.k, PATCH_SIDE), title=f"{title}: feature visualisation")))
    pictures.append(_section(f"top {len(unit.hits)} hits", _patch_grid(_pieces(unit, unit.hits), unit.hits, layer.k, PATCH_SIDE)))
    projection = unit.projections()
    if projection is not None:
        kind = atlas.manifest.get("projection")
        pictures.append(_section(f"{kind} projections", img(projection, side=_grid_width(layer.k, PATCH_SIDE), title=f"{title}: {kind} projections of the top hits")))
    if unit.has_stats and unit.bottom:
        which = "most negative" if unit.bottom_kind == "min" else "lowest maximum"
        pictures.append(_section(f"bottom hits ({which})", _patch_grid(_pieces(unit, unit.bottom), unit.bottom, layer.k, BOTTOM_SIDE)))
    parts.append(_row(pictures, gap=22))
    if unit.has_stats:
        parts.append(_row(_statistics(unit), gap=28))
    else:
        parts.append(f'<div style="{SMALL}; margin-top: 10px">atlas format version {atlas.version} keeps no statistics or bottom hits; rebuild with this convscope for them</div>')
    parts.append("</div>")
    return "".join(parts)


def layer_html(layer: "Layer", units: Sequence[int], limit: int) -> str:
    """The layer's summary and the first ``limit`` of ``units`` as small patch grids with labels."""
    shape = "×".join(map(str, layer.shape)) if layer.shape else "?"
    parts = [f'<div style="{BOX}">']
    parts.append(
        f'<div><span style="font-size: 15px; font-weight: 600">{esc(layer.name)}</span> '
        f'<span style="{SMALL}">{esc(layer.type)} · {layer.units} units · output {esc(shape)} · field {esc(layer.receptive_field or "?")}</span></div>'
    )
    if layer.has_stats:
        summary = layer.summary
        facts = [("dead", percent(summary.get("dead"))), ("always on", percent(summary.get("always_on"))), ("firing rate", percent(summary.get("firing_rate")))]
        if summary.get("selectivity") is not None or summary.get("purity") is not None:
            facts += [("selectivity", number(summary.get("selectivity"))), ("purity", percent(summary.get("purity"))), ("label agreement", percent(summary.get("label_agreement")))]
        if summary.get("confident_labels") is not None:
            facts.append(("confident labels", f"{summary['confident_labels']} of {layer.units}"))
        parts.append('<div style="margin: 4px 0 10px 0">' + " · ".join(f'<span style="color: {MUTED}">{esc(n)}</span> {esc(v)}' for n, v in facts) + "</div>")
    shown = list(units)[: max(limit, 0)]
    fill = padding_fill(layer.atlas.manifest)
    tiles = [_unit_tile(layer[u], fill) for u in shown]
    parts.append(f'<div style="display: flex; flex-wrap: wrap; gap: 10px">{"".join(tiles)}</div>')
    hidden = len(units) - len(shown)
    if hidden > 0:
        parts.append(
            f'<div style="{SMALL}; margin-top: 8px">{len(shown)} of {len(units)} units shown, {hidden} hidden: '
            f"<code>layer.to_html(units=..., limit=...)</code> shows others, <code>layer[i]</code> one unit's card</div>"
        )
    parts.append("</div>")
    return "".join(parts)


def atlas_html(atlas: "Atlas") -> str:
    """The atlas's facts and its per-layer summary table (from the manifest alone)."""
    dataset = atlas.manifest.get("dataset") or {}
    classes = f" · {len(atlas.class_names)} classes" if atlas.class_names else ""
    facts = (
        f"{atlas.image_count if atlas.image_count is not None else '?'} images from {dataset.get('root', '?')}{classes} · "
        f"k {atlas.manifest.get('k', '?')} · projection {atlas.manifest.get('projection') or 'none'} · format version {atlas.version}"
    )
    return (
        f'<div style="{BOX}"><div><span style="font-size: 15px; font-weight: 600">{esc(atlas.model)}</span></div>'
        f'<div style="{SMALL}; margin-bottom: 6px">{esc(facts)}</div>'
        f"{table_html(atlas.summary())}"
        f'<div style="{SMALL}; margin-top: 6px"><code>atlas[name]</code> shows a layer, <code>atlas[name][i]</code> a unit</div></div>'
    )


def _statistics(unit: "Unit") -> list[str]:
    """The histogram with quantiles, the numbers, and the class means of ``unit``."""
    stats, layer = unit.stats, unit.layer
    counts, edges = unit.histogram()
    levels = layer.quantile_levels
    quantiles = stats.get("quantiles") or []
    median = next((q for level, q in zip(levels, quantiles) if level == 0.5), None)
    images = layer.atlas.image_count
    heading = f"strongest activation per image{f' ({images} images)' if images else ''}"
    histogram = histogram_svg(counts, float(edges[0]), float(edges[-1]), [("median", median)] if median is not None else [], title=f"{layer.name} unit {unit.index}: {heading}")
    cell = "padding: 1px 5px; text-align: right; font-variant-numeric: tabular-nums"
    table = (
        f'<table style="border-collapse: collapse; margin-top: 6px; font-size: 11px"><tr>'
        + "".join(f'<td style="{cell}; color: {MUTED}">{esc(f"{100 * level:g}%")}</td>' for level in levels)
        + "</tr><tr>"
        + "".join(f'<td style="{cell}">{esc(number(q))}</td>' for q in quantiles)
        + "</tr></table>"
    )
    exact = "" if layer.exact else f'<div style="{SMALL}">quantiles and histogram from a sketch (within 0.1% rank)</div>'
    sections = [_section(heading, histogram + table + exact)]
    numbers = [
        ("mean ± std", f"{number(stats.get('mean'))} ± {number(stats.get('std'))}"),
        ("min · max", f"{number(stats.get('min'))} · {number(stats.get('max'))}"),
        ("firing rate", f"{percent(stats.get('firing_rate'))} of images"),
    ]
    flags = [name for name, on in (("dead: never above zero", stats.get("dead")), ("always on", stats.get("always_on"))) if on]
    if flags:
        numbers.append(("note", ", ".join(flags)))
    names = layer.atlas.class_names
    if stats.get("top_class") is not None:
        top = _class_name(names, stats["top_class"])
        numbers += [("selectivity", number(stats.get("selectivity"))), ("top class", top), ("purity", percent(stats.get("purity")))]
    label = unit.label
    if label is not None:
        numbers += [("label", f"{label.name}: {label.agreeing} of {label.hits} hits"), ("chance", number(label.chance, 2))]
    rows = "".join(f'<tr><td style="padding: 1px 10px 1px 0; color: {MUTED}">{esc(n)}</td><td style="padding: 1px 0">{esc(v)}</td></tr>' for n, v in numbers)
    sections.append(_section("unit", f'<table style="border-collapse: collapse">{rows}</table>'))
    classes = stats.get("classes") or []
    if classes:
        marked = label.index if label is not None else stats.get("top_class")
        rows_ = [(_class_name(names, c), float(m) if m is not None else float("nan"), c == marked) for c, m in classes]
        sections.append(_section(f"mean by class (top {len(classes)})", bars(rows_)))
    return sections


def _pieces(unit: "Unit", hits: Sequence[Hit]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The unmarked patches of ``hits`` of ``unit`` and where they are image content."""
    layer = unit.layer
    return cut(layer.atlas.path, hits, padding_fill(layer.atlas.manifest), padding_mode(layer.entry, unit.index))


def display_patch(patch: np.ndarray, inside: np.ndarray, side: int) -> np.ndarray:
    """``patch`` ``(h, w, 3)`` as a unit card shows it in a ``side``-pixel cell, striped past the
    border at the shown scale (as the atlas's grid cells are), so the padding of a small patch
    stays visible: enlarged by the largest whole factor that fits (nearest neighbour), kept as it
    is up to ``2 * side`` (the browser scales it), reduced to ``2 * side`` (box filter) beyond.

    Example:
        >>> cell = display_patch(np.zeros((3, 3, 3), np.uint8), np.eye(3, dtype=bool), 12)
        >>> cell.shape, cell[0, 4].tolist()
        ((12, 12, 3), [96, 96, 96])
        >>> display_patch(np.zeros((512, 256, 3), np.uint8), np.ones((512, 256), bool), 84).shape
        (168, 84, 3)
    """
    longest = max(patch.shape[:2])
    factor = side // longest
    if factor > 1:
        patch = patch.repeat(factor, axis=0).repeat(factor, axis=1)
        inside = inside.repeat(factor, axis=0).repeat(factor, axis=1)
    elif longest > 2 * side:
        scale = 2 * side / longest
        size = (max(1, round(patch.shape[1] * scale)), max(1, round(patch.shape[0] * scale)))
        patch = np.asarray(Image.fromarray(patch).resize(size, Image.Resampling.BOX))
        inside = np.asarray(Image.fromarray(inside).resize(size, Image.Resampling.NEAREST))
    return mark_padding(patch, inside)


def _patch_grid(pieces: Sequence[tuple[np.ndarray, np.ndarray]], hits: Sequence[Hit], k: int, side: int) -> str:
    """Patches on a near-square grid of ``side``-pixel cells, each with its activation and label."""
    cols = grid_shape(max(k, 1))[1]
    cells = []
    for (pixels, inside), hit in zip(pieces, hits):
        patch = display_patch(pixels, inside, side)
        where = f"row {hit.row}, col {hit.col}, box [{', '.join(map(str, hit.box))})"
        title = f"rank {hit.rank} · {number(hit.activation)} · {hit.image}{f' ({hit.label})' if hit.label else ''} · {where}"
        caption = number(hit.activation) + (f" · {hit.label}" if hit.label else "")
        cells.append(
            f'<div style="width: {side}px">'
            f'<div style="width: {side}px; height: {side}px; display: flex; align-items: center; justify-content: center; background: #f6f8fa">'
            f"{img(patch, side=side, title=title)}</div>"
            f'<div style="{SMALL}; white-space: nowrap; overflow: hidden; text-overflow: ellipsis" title="{esc(title)}">{esc(caption)}</div></div>'
        )
    return f'<div style="display: grid; grid-template-columns: repeat({cols}, {side}px); gap: 4px">{"".join(cells)}</div>'


def _unit_tile(unit: "Unit", fill: Any) -> str:
    """A unit in a layer grid: its top patches as one small grid, its number and label."""
    layer = unit.layer
    picture = thumbnail(cut(layer.atlas.path, unit.hits, fill, padding_mode(layer.entry, unit.index)), layer.k, THUMB_CELL)
    label = unit.label if unit.has_stats else None
    dead = unit.has_stats and unit.stats.get("dead")
    if dead:
        line = '<span style="color: #cf222e">dead</span>'
    elif label is not None:
        dot = f'<span style="color: {CONFIDENCE.get(label.confidence, MUTED)}">●</span>'
        line = f'{dot} <span title="{esc(label.text)}">{esc(label.name)}</span>'
    else:
        line = f'<span style="color: {MUTED}">{esc(unit.class_name or "")}</span>'
    width = picture.shape[1]
    return (
        f'<div style="width: {width}px">'
        f'<img src="{png_uri(picture)}" width="{width}" height="{picture.shape[0]}" alt="unit {unit.index}" style="display: block">'
        f'<div style="font-size: 11px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis"><b>{unit.index}</b> {line}</div></div>'
    )


def _section(heading: str, body: str) -> str:
    return f'<div><div style="{HEADING}">{esc(heading)}</div>{body}</div>'


def _row(items: Sequence[str], gap: int) -> str:
    return f'<div style="display: flex; flex-wrap: wrap; align-items: flex-start; gap: {gap}px; margin-top: 12px">{"".join(items)}</div>'


def _grid_width(k: int, side: int) -> int:
    cols = grid_shape(max(k, 1))[1]
    return cols * side + (cols - 1) * 4


def _class_name(names: Sequence[str] | None, index: Any) -> str:
    if names is not None and isinstance(index, int) and 0 <= index < len(names):
        return str(names[index])
    return f"class {index}"
