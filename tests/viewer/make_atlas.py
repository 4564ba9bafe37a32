"""Write a small synthetic atlas in the documented format (docs/atlas-format.md), for viewer tests.

Grid PNGs are made so a test can tell cells apart: cell ``rank`` of a unit's
patch grid is filled with ``rank_colour(rank)``, the projection grid with
``rank_colour(rank, projection=True)``, and gaps are magenta. With
``hostile=True`` the atlas carries a layer name, image path, label, model
source and skipped file that are HTML/script injections, and a U+2028 label.

Example:
    >>> atlas = make_atlas(tmp_path / "atlas", [("features.0", 4, 6, 6)])  # doctest: +SKIP
    >>> write_viewer(atlas)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

GAP_COLOUR = (255, 0, 255)
HOSTILE_LAYER = "evil<img src=x onerror=window.__pwned=1>"
HOSTILE_IMAGE = "cat/<script>window.__pwned=1</script>.jpg"
HOSTILE_LABEL = '<img src=x onerror="window.__pwned=1">'
HOSTILE_SOURCE = "</script><script>window.__pwned=1</script>"
HOSTILE_SKIPPED = "<b>bold</b>.jpg"
SEPARATOR_LABEL = "line\u2028separator"

#: (layer name, units, rows, cols)
LayerSpec = tuple[str, int, int, int]
#: grid_png(layer_index, unit, projection) -> PNG bytes
GridPng = Callable[[int, int, bool], bytes]

#: The second layer's units come from two branches with different fields (a channel concatenation).
PER_UNIT_FIELDS = [
    {"units": [0, 2], "size": [3, 3], "stride": [2, 2], "offset": [-1, -1]},
    {"units": [2, 5], "size": [7, 7], "stride": [2, 2], "offset": [-3, -3]},
]


def rank_colour(rank: int, projection: bool = False) -> tuple[int, int, int]:
    """A colour that differs for every rank below 16 and between patch and projection grids."""
    base = (40 + 13 * rank, 200 - 11 * rank, 60 + 9 * (rank % 5))
    return tuple(255 - c for c in base) if projection else base  # type: ignore[return-value]


@lru_cache(maxsize=8)
def rank_grid_png(rows: int, cols: int, cell: int, gap: int, projection: bool) -> bytes:
    """A grid PNG with cell (r, c) in ``rank_colour(r * cols + c)`` and magenta gaps."""
    image = Image.new("RGB", (cols * cell + (cols - 1) * gap, rows * cell + (rows - 1) * gap), GAP_COLOUR)
    draw = ImageDraw.Draw(image)
    for rank in range(rows * cols):
        top, left = (rank // cols) * (cell + gap), (rank % cols) * (cell + gap)
        draw.rectangle([left, top, left + cell - 1, top + cell - 1], fill=rank_colour(rank, projection))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(size: tuple[int, int], seed: int) -> bytes:
    """A gradient JPEG of ``size`` = (rows, cols), tinted by ``seed``."""
    rows, cols = size
    image = Image.linear_gradient("L").resize((cols, rows)).convert("RGB")
    tint = Image.new("RGB", (cols, rows), ((seed * 47) % 256, (seed * 91) % 256, 120))
    buffer = io.BytesIO()
    Image.blend(image, tint, 0.5).save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def make_atlas(
    root: Path,
    layers: Sequence[LayerSpec] = (("features.0", 6, 8, 8), ("features.3", 5, 4, 4)),
    *,
    k: int = 9,
    cell: int = 16,
    gap: int = 2,
    input_size: tuple[int, int] = (48, 48),
    labels: Sequence[str] | None = ("cat", "dog", "bird"),
    projection: str | None = "deconvnet",
    hostile: bool = False,
    image_count: int = 12,
    grid_png: GridPng | None = None,
) -> Path:
    """Write the atlas (manifest, hits, grids, images) under ``root``; return ``root``.

    Unit ``u`` of layer ``i`` has ``k`` hits with activations
    ``(u * 7 + i) % 11 + 1 - 0.1 * rank`` (so sorting by activation differs from
    index order) and, with labels, its first ``u % k + 1`` hits labelled
    ``labels[0]`` and the rest cycling through the other labels. Hit 1 of every
    unit has a box reaching past the top-left image border.
    """
    root = Path(root)
    rows_cols = _grid_shape(k)
    label_pool = list(labels) if labels else None
    if hostile and label_pool is not None:
        label_pool += [HOSTILE_LABEL, SEPARATOR_LABEL]
    if hostile:
        layers = [*layers, (HOSTILE_LAYER, 3, 4, 4)]
    (root / "images").mkdir(parents=True, exist_ok=True)
    for number in range(image_count):
        (root / "images" / f"{number:06d}.jpg").write_bytes(_jpeg(input_size, number))

    manifest_layers = []
    for index, (name, units, rows, cols) in enumerate(layers):
        layer_dir = root / "layers" / name
        (layer_dir / "units").mkdir(parents=True, exist_ok=True)
        unit_entries = []
        for unit in range(units):
            hits = [_hit(index, unit, rank, k, label_pool, input_size, rows, cols, image_count, hostile) for rank in range(k)]
            unit_entries.append({"unit": unit, "mean": round(0.5 + 0.01 * unit, 4), "hits": hits})
            for is_projection in (False, True) if projection else (False,):
                data = grid_png(index, unit, is_projection) if grid_png else rank_grid_png(*rows_cols, cell, gap, is_projection)
                suffix = "-projection" if is_projection else ""
                (layer_dir / "units" / f"{unit:04d}{suffix}.png").write_bytes(data)
        hits_path = f"layers/{name}/hits.json"
        (root / hits_path).write_text(json.dumps({"layer": name, "k": k, "units": unit_entries}), encoding="utf-8")
        manifest_layers.append({
            "name": name,
            "type": "Conv2d",
            "shape": [units, rows, cols],
            "receptive_field": {"size": [11, 11], "stride": [4, 4], "offset": [-2, -2]} if index % 2 == 0 else None,
            "receptive_fields": PER_UNIT_FIELDS if index == 1 else None,
            "units": units,
            "overview_units": list(range(min(units, 3))),
            "hits": hits_path,
        })

    manifest = {
        "format": "convscope-atlas",
        "version": 1,
        "convscope_version": "0.1.0",
        "created": "2026-11-25T09:00:00+00:00",
        "model": {
            "source": HOSTILE_SOURCE if hostile else "torchvision:alexnet",
            "weights": "alexnet.pth",
            "weights_sha256": None,
            "class_names": None,
        },
        "preprocess": {
            "input_size": list(input_size), "resize": input_size[0], "crop": "center",
            "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "interpolation": "bilinear",
        },
        "dataset": {
            "root": "/data/images",
            "image_count": image_count,
            "labels": label_pool,
            "skipped": [{"path": HOSTILE_SKIPPED if hostile else "broken.jpg", "reason": "cannot identify image file"}],
        },
        "k": k,
        "projection": projection,
        "padding": "outside-image pixels are drawn in the mean colour and covered by diagonal grey stripes",
        "render": {"cell": cell, "gap": gap, "grid": list(rows_cols)},
        "layers": manifest_layers,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return root


def _grid_shape(k: int) -> tuple[int, int]:
    """The near-square (rows, cols) grid for k cells: 9 -> (3, 3), 5 -> (2, 3)."""
    cols = 1
    while cols * cols < k:
        cols += 1
    return (-(-k // cols), cols)


def _hit(layer: int, unit: int, rank: int, k: int, labels: list[str] | None, input_size: tuple[int, int],
         rows: int, cols: int, image_count: int, hostile: bool) -> dict:
    """One hit of the synthetic atlas (see ``make_atlas`` for the pattern)."""
    number = (unit * k + rank + layer) % image_count
    label = None
    if labels is not None:
        label = labels[0] if rank <= unit % k or len(labels) == 1 else labels[1 + (rank + unit) % (len(labels) - 1)]
    image = f"{label or 'img'}/{number:04d}.jpg"
    if hostile and rank == 0:
        image = HOSTILE_IMAGE
    size = 11
    top, left = (-3, -4) if rank == 1 else (2 * rank, 3 * rank)
    return {
        "rank": rank,
        "activation": round((unit * 7 + layer) % 11 + 1 - 0.1 * rank, 4),
        "image": image,
        "label": label,
        "image_file": f"images/{number:06d}.jpg",
        "row": rank % rows,
        "col": (rank * 2) % cols,
        "box": [top, left, min(top + size, input_size[0] + 5), min(left + size, input_size[1] + 5)],
    }
