"""Write an :class:`~convscope.analysis.evolve.Evolution` as a folder, atomically.

The folder (format ``convscope-evolution``, version :data:`VERSION`):

- ``evolution.png``: the Figure 4 layout of every layer (:func:`evolution_figure`);
- ``evolution-<layer>.png``: each layer's block alone;
- ``settle.png``: the settle curve of every layer (:func:`settle_figure`);
- ``images/000012.jpg``: each image that is some cell's strongest hit, once, in the model-input
  frame (after resize and crop, before normalisation), JPEG, as an atlas stores its images
  (version 2; the viewer cuts the cells' patches out of them);
- ``projections/<layer>/0007-2.png``: with a projection, each cell's projection (unit 7 at the
  third checkpoint), fitted to a :data:`PROJECTION_CELL` square, striped where the box leaves
  the image, as an atlas draws its projections (version 3; the viewer shows them under the patches);
- ``evolution.json``: ``{"format", "version", "model", "checkpoints": [{"name", "file", "sha256"}], "k",
  "projection", "input_size": [H, W], "fill": [R, G, B], "images": {"root", "count", "read"},
  "layers": [{"layer", "units": [{"unit", "padding", "checkpoints": [{"image", "image_file",
  "activation", "row", "col", "box", "changed", "projection_file"?} | null]}], "settle": [{"from", "to", "topk_overlap",
  "top1_same", "units"}], "to_final": [{"checkpoint", "topk_overlap", "top1_same", "units"}]}]}``
  (``settle``: each checkpoint against the one before; ``to_final``: against the last); ``image`` is
  a path relative to the image root, ``image_file`` the stored image relative to this folder,
  ``box`` is ``[top, left, bottom, right)`` in model-input pixels, ``padding`` what the network
  padded the unit's input with (``"zeros"``: ``fill``, the mean colour), as in an atlas.
  Version 1 had no ``images/``, ``image_file``, ``padding``, ``input_size`` or ``fill``;
  version 2 no ``projections/`` or ``projection_file`` (present only with a projection).

It is built under a temporary name beside ``out`` and renamed into place, so a crash leaves
the previous folder or none. ``out`` may be missing, empty, or a previous evolution folder
(its ``evolution.json`` says ``"format": "convscope-evolution"``); anything else is refused
before anything is written (like :func:`convscope.atlas.writer.check_out` for atlases).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from convscope.analysis.evolve import Evolution
from convscope.analysis.evolve_figure import evolution_figure, layer_block
from convscope.analysis.settle import settle_figure
from convscope.atlas.format import image_file
from convscope.atlas.writer import atomic_folder, check_out, write_jpeg, write_json, write_png, write_png_atomic
from convscope.network.weights import file_sha256
from convscope.render.grid import fit_cell

FORMAT = "convscope-evolution"
VERSION = 3

#: Side in pixels of each cell's stored projection (an atlas's grid cell).
PROJECTION_CELL = 64


def check_evolution_out(out: Path) -> None:
    """Refuse ``out`` unless writing there can only replace an evolution folder (missing, empty,
    or one whose ``evolution.json`` says ``"format": "convscope-evolution"``): the atlas's own check,
    :func:`convscope.atlas.writer.check_out`, with this folder's record.

    Raises:
        AtlasError: ``out`` is a link, a file, or a folder that is not an evolution folder.
    """
    check_out(out, record="evolution.json", format=FORMAT, what="an evolution folder")


def evolution_record(evolution: Evolution, model: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON record of ``evolution`` (see the module docstring)."""
    frames = evolution.frames
    layers = []
    for layer in evolution.layers:
        units = []
        paddings = layer.padding or ("zeros",) * len(layer.units)
        for unit, padding, cells in zip(layer.units, paddings, layer.cells):
            column = []
            for checkpoint, cell in enumerate(cells):
                if cell is None:
                    column.append(None)
                    continue
                hit = cell.hit
                column.append({
                    "image": frames.path(hit.image), "image_file": image_file(hit.image), "activation": hit.activation,
                    "row": hit.row, "col": hit.col, "box": list(hit.box), "changed": cell.changed,
                } | ({"projection_file": projection_file(layer.layer, unit, checkpoint)} if cell.projection is not None else {}))
            units.append({"unit": unit, "padding": padding, "checkpoints": column})
        settle = [
            {"from": evolution.names[i], "to": evolution.names[i + 1], **s.to_dict()} for i, s in enumerate(layer.settle)
        ]
        to_final = [{"checkpoint": name, **s.to_dict()} for name, s in zip(evolution.names, layer.to_final)]
        layers.append({"layer": layer.layer, "units": units, "settle": settle, "to_final": to_final})
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": model,
        "checkpoints": [{"name": n, "file": str(p), "sha256": file_sha256(p)} for n, p in zip(evolution.names, evolution.checkpoints)],
        "k": evolution.k,
        "projection": evolution.projection,
        "input_size": list(frames.pixels.shape[-2:]),
        "fill": list(evolution.fill),
        "images": {"root": str(frames.images.root), "count": len(frames.pixels), "read": int(frames.ok.sum())},
        "layers": layers,
    }


def projection_file(layer: str, unit: int, checkpoint: int) -> str:
    """Where a cell's projection is stored, relative to the folder."""
    return f"projections/{layer}/{unit:04d}-{checkpoint}.png"


def winning_frames(evolution: Evolution) -> list[int]:
    """The frames that are some cell's strongest hit, each once, in order (what ``images/`` holds)."""
    return sorted({cell.hit.image for layer in evolution.layers for cells in layer.cells for cell in cells if cell is not None})


def write_evolution(out: str | Path, evolution: Evolution, model: dict[str, Any] | None = None) -> Path:
    """Write ``evolution`` to the folder ``out`` (replacing a previous evolution folder there).

    Args:
        model: the ``model`` section of the record (e.g. ``Network.describe()``).

    Returns:
        ``out``, absolute.

    Example:
        >>> write_evolution("evolve", evolve(net, "photos/", ["a.pt", "b.pt"]))  # doctest: +SKIP
        PosixPath('/home/me/evolve')
    """
    out = Path(out).absolute()
    with atomic_folder(out, check_evolution_out) as tmp:
        projection = evolution.projection is not None
        write_png_atomic(tmp / "evolution.png", evolution_figure(evolution))
        for layer in evolution.layers:
            write_png_atomic(tmp / f"evolution-{layer.layer}.png", layer_block(layer, evolution.names, projection))
        write_png_atomic(
            tmp / "settle.png",
            settle_figure(
                [l.layer for l in evolution.layers], evolution.names, [l.settle for l in evolution.layers], [l.to_final for l in evolution.layers]
            ),
        )
        for frame in winning_frames(evolution):
            write_jpeg(tmp / image_file(frame), evolution.frames.pixels_hwc(frame))
        for layer in evolution.layers:
            for unit, cells in zip(layer.units, layer.cells):
                for checkpoint, cell in enumerate(cells):
                    if cell is not None and cell.projection is not None:
                        picture = fit_cell(cell.projection.pixels, PROJECTION_CELL, cell.projection.inside)
                        write_png(tmp / projection_file(layer.layer, unit, checkpoint), picture)
        write_json(tmp / "evolution.json", evolution_record(evolution, model))
    return out
