"""Write a :class:`~convscope.explain.class_relevance.ClassRelevance` as a folder, atomically.

The folder (format ``convscope-classes``, version :data:`VERSION`; documented in
``docs/atlas-format.md``, "Class relevance"):

- ``classes.json``: ``{"format", "version", "model", "method", "layers", "top", "class_by",
  "by_label", "image_count", "failed", "overall", "classes"}``; ``overall`` and each class
  ``{"class", "name", "images", "correct", "layers": [{"layer", "units": [{"unit", "mean_share",
  "mean_relevance", "top_count"}]}]}``.
- ``viewer/class-all.js``, ``viewer/class-<k>.js``, ``viewer/units-<i>.js``: the atlas viewer's
  data scripts (:func:`~convscope.explain.classes_viewer.viewer_scripts`): each class's entry, and
  per layer which classes each unit matters for, loaded only by the page that shows them.
- ``classes.png``: one overview (:func:`classes_figure`): the whole data set and the most
  frequent classes, one row each, with their top units at one layer (each unit's top patches
  where an atlas is given). One picture per class would be a thousand on ImageNet; the viewer
  and the JSON hold every class.

It is built under a temporary name beside ``out`` and swapped into place; ``out`` may be missing,
empty, or a previous class-relevance folder; anything else is refused before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from convscope.atlas.writer import atomic_folder, check_out, write_json, write_png
from convscope.explain.class_relevance import ClassRelevance, ClassUnit
from convscope.explain.classes_viewer import VIEWER_FOLDER, viewer_scripts
from convscope.explain.text import signed_percent
from convscope.render.grid import BACKGROUND, caption, stack

FORMAT = "convscope-classes"
VERSION = 1
RECORD = "classes.json"
FIGURE = "classes.png"

#: Rows of the overview: the whole data set and this many of the most frequent classes.
ROWS = 8
#: Units per row of the overview.
COLUMNS = 6
CELL = 72
GAP = 4


def check_classes_out(out: Path) -> None:
    """Refuse ``out`` unless it is missing, empty or a class-relevance folder.

    Raises:
        AtlasError: ``out`` is a link, a file, or another kind of folder.
    """
    check_out(out, record=RECORD, format=FORMAT, what="a class-relevance folder")


def figure_layer(result: ClassRelevance) -> str:
    """The layer the overview shows: the deepest whose units are not the classes themselves
    (a logits layer's top unit for a class is the class), else the last."""
    classes = len(result.counts)
    names = list(result.layers)
    inner = [name for name in names if result.layers[name].share.shape[1] != classes]
    return (inner or names)[-1]


def classes_figure(result: ClassRelevance, layer: str | None = None, atlas: str | Path | None = None) -> np.ndarray:
    """``uint8 (H, W, 3)``: per row (all images, then the most frequent classes) the top
    :data:`COLUMNS` units of ``layer`` by mean share, captioned ``unit  share%  in-top/images``;
    each cell is the unit's top patches from ``atlas`` (2 x 2), or a bar of its mean share (the
    row's largest full height)."""
    layer = layer or figure_layer(result)
    cards = _atlas_layer(atlas, layer)
    rows = [(None, "all images", int(result.counts.sum()))]
    rows += [(k, result.class_name(k) or f"class {k}", int(result.counts[k])) for k in result.classes[: ROWS - 1]]
    title = caption(np.full((4, 4, 3), BACKGROUND, np.uint8), f"layer {layer}: each class's top units by mean share of its logit's relevance", 14)
    grid = []
    for k, name, count in rows:
        units = result.top_units(layer, k, COLUMNS)
        scale = max((abs(u.mean_share) for u in units), default=1.0) or 1.0
        cells = [_cell(u, count, cards, scale) for u in units] or [caption(np.full((CELL, CELL, 3), BACKGROUND, np.uint8), "no relevant unit", 11)]
        grid.append([caption(np.full((CELL, 4, 3), BACKGROUND, np.uint8), f"{name[:24]} ({count})", 12), *cells])
    width = max(cell.shape[1] for row in grid for cell in row[1:])
    label_width = max(row[0].shape[1] for row in grid)
    pictures = [title] + [stack([_pad(row[0], label_width), *(_pad(cell, width) for cell in row[1:])], GAP) for row in grid]
    return stack(pictures, GAP * 2, vertical=True)


def _pad(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` on a background ``width`` wide (left aligned)."""
    out = np.full((image.shape[0], max(width, image.shape[1]), 3), BACKGROUND, np.uint8)
    out[:, : image.shape[1]] = image
    return out


def _cell(unit: ClassUnit, images: int, cards: Any, scale: float = 1.0) -> np.ndarray:
    body = np.full((CELL, CELL, 3), BACKGROUND, np.uint8)
    patches = _patches(cards, unit.unit) if cards is not None else None
    if patches is not None:
        body = patches
    else:  # a bar of the mean share, the row's largest full height (red raises the logit, blue lowers it)
        height = max(1, round(min(abs(unit.mean_share) / scale, 1.0) * (CELL - 4)))
        body[CELL - height:, CELL // 4: 3 * CELL // 4] = (200, 60, 50) if unit.mean_share > 0 else (50, 90, 200)
    return caption(caption(body, f"{signed_percent(unit.mean_share)}  {unit.top_count}/{images}", 11), f"unit {unit.unit}", 12)


def _atlas_layer(atlas: str | Path | None, layer: str) -> Any:
    if atlas is None:
        return None
    try:
        from convscope.notebook import open_atlas

        opened = open_atlas(atlas)
        return opened[layer] if layer in opened else None
    except Exception:  # an atlas without this layer's records: bars instead
        return None


def _patches(cards: Any, unit: int) -> np.ndarray | None:
    """The unit's first 4 top patches, 2 x 2 in a ``CELL`` square, or ``None``."""
    from convscope.render.grid import fit_cell, tile

    try:
        patches = cards[unit].patches()[:4]
    except Exception:
        return None
    if not patches:
        return None
    half = (CELL - 2) // 2
    cells = [fit_cell(np.asarray(p.convert("RGB")), half) for p in patches]
    picture = tile(cells, (2, 2), 2)
    out = np.full((CELL, CELL, 3), BACKGROUND, np.uint8)
    out[: picture.shape[0], : picture.shape[1]] = picture
    return out


def classes_record(result: ClassRelevance, model: dict[str, Any] | None, failed: list[list[Any]] | None = None) -> dict[str, Any]:
    """The ``classes.json`` object (see the module's docstring)."""
    body = result.to_dict()
    return {
        "format": FORMAT, "version": VERSION, "model": model, "method": result.method, "layers": list(result.layers),
        **body, "failed": failed if failed is not None else [[i, reason] for i, reason in result.failed],
    }


def write_classes(
    out: str | Path, result: ClassRelevance, model: dict[str, Any] | None = None, *, atlas: str | Path | None = None,
    failed: list[list[Any]] | None = None,
) -> Path:
    """Write ``result`` to the folder ``out`` (``classes.json``, ``classes.png``, the viewer's
    data scripts ``viewer/``); returns it, absolute.

    Args:
        model: the ``model`` section (``Network.describe()``, and ``atlas`` where one was used).
        atlas: draw each unit's top patches from this atlas in the figure.
        failed: ``[path, reason]`` of the images that could not be read (default: their indices).
    """
    out = Path(out).absolute()
    record = classes_record(result, model, failed)
    with atomic_folder(out, check_classes_out) as tmp:
        write_png(tmp / FIGURE, classes_figure(result, atlas=atlas))
        write_json(tmp / RECORD, record)
        (tmp / VIEWER_FOLDER).mkdir()
        for name, text in viewer_scripts(record).items():
            (tmp / name).write_text(text, encoding="ascii")
    return out
