"""Render a scan into an atlas folder: unit grids, layer mosaics, overview, hits, manifest."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from convscope import __version__
from convscope.atlas.format import FORMAT, VERSION, image_file, layer_dir, unit_file
from convscope.atlas.viewer import write_viewer
from convscope.atlas.writer import atomic_folder, now, write_jpeg, write_json, write_png
from convscope.data import ImageList
from convscope.network.device import model_device
from convscope.network.layers import LayerInfo
from convscope.network.load import Network
from convscope.render.figures import CELL_GAP, UNIT_GAP, layer_mosaic, mosaic_scale, overview, shrink, unit_figure, unit_grid
from convscope.render.grid import fit_cell, grid_shape
from convscope.render.patch import crop, mean_colour
from convscope.render.selection import choose_units
from convscope.scan.gather import Chunk, Hit, PixelCache, chunks
from convscope.scan.scan import ScanResult

PADDING_NOTE = (
    "outside-image pixels are drawn in the mean colour (zeros after normalisation, what the "
    "network saw) and covered by diagonal grey stripes"
)


@dataclass(frozen=True)
class RenderOptions:
    """How an atlas is drawn.

    Attributes:
        projection: ``"deconvnet"``, ``"guided"`` or ``None`` (patches only).
        occlusion: also draw, for each unit's top hit, how much the activation drops
            as a grey square (a quarter of the box) slides over its box.
        cell: pixels of one patch in a unit grid.
        overview_cell: pixels of one patch in ``overview.png``.
        overview_units: units per layer in ``overview.png``.
        mosaic_width: the widest a layer mosaic gets, in pixels.
    """

    projection: str | None = None
    occlusion: bool = False
    cell: int = 64
    overview_cell: int = 32
    overview_units: int = 9
    mosaic_width: int = 2400


def write_atlas(
    out: Path,
    network: Network,
    images: ImageList,
    layers: Sequence[LayerInfo],
    result: ScanResult,
    *,
    k: int,
    options: RenderOptions = RenderOptions(),
    progress: bool = True,
) -> Path:
    """Write the atlas of ``result`` to the folder ``out`` (replacing a previous atlas)."""
    with atomic_folder(Path(out)) as tmp:
        layer_writer = _LayerWriter(tmp, network, images, k, options)
        entries, blocks = [], []
        for number, info in enumerate(layers, start=1):
            entry, block = layer_writer.write(info, number, result, progress)
            entries.append(entry)
            blocks.append(block)
        write_png(tmp / "overview.png", overview(blocks))
        write_json(tmp / "manifest.json", _manifest(network, images, result, entries, k, options))
        write_viewer(tmp)
    return Path(out)


class _LayerWriter:
    """Writes the files of one layer at a time; remembers which images are stored."""

    def __init__(self, root: Path, network: Network, images: ImageList, k: int, options: RenderOptions) -> None:
        self.root = root
        self.network = network
        self.images = images
        self.k = k
        self.options = options
        self.fill = mean_colour(network.preprocess.mean)
        self.stored: set[int] = set()
        self.cache = PixelCache(images, network.preprocess)
        self.crop_checks: dict[str, dict] = {}  # per layer: each crop class checked once

    def write(self, info: LayerInfo, number: int, result: ScanResult, progress: bool) -> tuple[dict[str, Any], tuple[str, list[np.ndarray]]]:
        scan = result.layers[info.name]
        chosen = choose_units(scan, self.options.overview_units)
        units = list(range(info.units))
        records: list[dict[str, Any]] = []
        thumbs: list[np.ndarray] = []
        overview_figures: dict[int, np.ndarray] = {}
        scale = self._mosaic_scale(info.units)
        bar = tqdm(total=info.units, unit="unit", desc=f"render {info.name}", disable=not progress, dynamic_ncols=True)
        try:
            for chunk in chunks(scan, units, info.receptive_field, self.cache):
                projections = self._projections(info, chunk)
                for unit, unit_hits, unit_projections in zip(chunk.units, chunk.hits, _split(projections, chunk.hits)):
                    figure, small = self._unit(info.name, unit, unit_hits, chunk, unit_projections, unit in chosen)
                    if self.options.occlusion and unit_hits:
                        top = unit_hits[0]
                        picture = self._occlusion(info.name, top, chunk.pixels[top.image])
                        write_png(self.root / unit_file(info.name, unit, "occlusion"), picture)
                    records.append({"unit": unit, "mean": _finite(scan.mean[unit]), "hits": [self._hit_record(h) for h in unit_hits]})
                    thumbs.append(shrink(figure, scale) if scale < 1 else figure)
                    if small is not None:
                        overview_figures[unit] = small
                    bar.update(1)
        finally:
            bar.close()
        folder = self.root / layer_dir(info.name)
        write_json(folder / "hits.json", {"layer": info.name, "k": self.k, "units": records})
        title = f"{info.name} ({info.type}, {info.units} units, receptive field {_rf_text(info)})"
        write_png(folder / "mosaic.png", layer_mosaic(thumbs, title, self.options.mosaic_width))
        entry = info.to_dict() | {"overview_units": chosen, "hits": f"{layer_dir(info.name)}/hits.json"}
        return entry, (f"layer {number} · {info.name} · {_rf_text(info)}", [overview_figures[u] for u in chosen])

    def _mosaic_scale(self, units: int) -> float:
        """Unit figures are shrunk for the mosaic as they are made, to hold only small ones."""
        rows, cols = grid_shape(self.k)
        width = cols * self.options.cell + (cols - 1) * CELL_GAP
        if self.options.projection:
            width = 2 * width + UNIT_GAP // 2
        return mosaic_scale(units, width, self.options.mosaic_width)

    def _projections(self, info: LayerInfo, chunk: Chunk) -> torch.Tensor | None:
        if not self.options.projection:
            return None
        from convscope.project import project_hits

        flat = chunk.flat()
        if not flat:
            return None
        model = self.network.model
        device = model_device(model)
        long = lambda values: torch.tensor(values, dtype=torch.long, device=device)  # noqa: E731
        return project_hits(
            model,
            info.name,
            chunk.inputs(self.network.preprocess, device),
            long([h.unit for h in flat]),
            long([h.row for h in flat]),
            long([h.col for h in flat]),
            self.options.projection,
            receptive_field=info.receptive_field,
            crop_checks=self.crop_checks.setdefault(info.name, {}),
            image_ids=[h.image for h in flat],
        ).cpu()

    def _unit(
        self, layer: str, unit: int, hits: list[Hit], chunk: Chunk, projections: torch.Tensor | None, overview: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Write the unit's grids; return its figure at the atlas cell size and, if
        asked, at the overview's (re-fitted, so the padding stripes stay visible)."""
        patches = []
        for hit in hits:
            pixels = chunk.pixels[hit.image]
            patches.append(crop(pixels, hit.box, self.fill))
            self._store_image(hit.image, pixels)
        signals = None
        if projections is not None:
            from convscope.project import projection_to_image

            signals = []
            for hit, proj in zip(hits, projections):
                signal, inside = crop(proj.permute(1, 2, 0).numpy(), hit.box, 0.0)
                signals.append((projection_to_image(torch.from_numpy(signal).permute(2, 0, 1)), inside))
        patch_grid, projection_grid = self._grids(patches, signals, self.options.cell)
        write_png(self.root / unit_file(layer, unit), patch_grid)
        if projection_grid is not None:
            write_png(self.root / unit_file(layer, unit, "projection"), projection_grid)
        small = unit_figure(*self._grids(patches, signals, self.options.overview_cell)) if overview else None
        return unit_figure(patch_grid, projection_grid), small

    def _grids(
        self, patches: list[tuple[np.ndarray, np.ndarray]], signals: list | None, cell: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        patch_grid = unit_grid([fit_cell(p, cell, inside) for p, inside in patches], self.k)
        if signals is None:
            return patch_grid, None
        return patch_grid, unit_grid([fit_cell(p, cell, inside) for p, inside in signals], self.k)

    def _occlusion(self, layer: str, hit: Hit, pixels: np.ndarray) -> np.ndarray:
        """The drop of ``hit``'s activation as a grey square slides over its box, drawn on the patch
        at twice the cell size. Squares have a quarter of the box's side, every eighth of it."""
        from convscope.project import UnitTarget, occlusion_map, render_occlusion

        box = hit.box
        size = max(1, min(box.height, box.width) // 4)
        stride = max(1, size // 2)
        model = self.network.model
        x = self.network.preprocess.normalize(torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].to(model_device(model)))
        target = UnitTarget(layer, hit.unit, (hit.row, hit.col))
        heat = occlusion_map(model, x, target=target, size=size, stride=stride, region=box)
        patch, inside = crop(pixels, box, self.fill)
        picture = render_occlusion(patch, heat, size, stride, baseline=hit.activation)
        return fit_cell(picture, 2 * self.options.cell, inside)

    def _store_image(self, index: int, pixels: np.ndarray) -> None:
        if index not in self.stored:
            write_jpeg(self.root / image_file(index), pixels)
            self.stored.add(index)

    def _hit_record(self, hit: Hit) -> dict[str, Any]:
        return {
            "rank": hit.rank,
            "activation": _finite(hit.activation),
            "image": self.images.paths[hit.image],
            "label": self.images.label_name(hit.image),
            "image_file": image_file(hit.image),
            "row": hit.row,
            "col": hit.col,
            "box": list(hit.box),
        }


def _split(projections: torch.Tensor | None, hits: list[list[Hit]]) -> list[torch.Tensor | None]:
    if projections is None:
        return [None] * len(hits)
    return list(torch.split(projections, [len(h) for h in hits]))


def _finite(value: float | torch.Tensor) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _rf_text(info: LayerInfo) -> str:
    rf = info.receptive_field
    if rf is None:
        return "unknown"
    size = f"{rf.size[0]}" if rf.size[0] == rf.size[1] else f"{rf.size[0]}x{rf.size[1]}"
    return f"{size} px" if rf.stride != (0, 0) else "whole image"


def _manifest(network: Network, images: ImageList, result: ScanResult, entries: list[dict], k: int, options: RenderOptions) -> dict[str, Any]:
    skipped = [{"path": s.path, "reason": s.reason} for s in images.skipped]
    skipped += [{"path": images.paths[i], "reason": reason} for i, reason in result.failed]
    rows, cols = grid_shape(k)
    return {
        "format": FORMAT,
        "version": VERSION,
        "convscope_version": __version__,
        "created": now(),
        "model": network.describe(),
        "preprocess": network.preprocess.to_dict(),
        "dataset": {
            "root": str(images.root),
            "image_count": result.image_count,
            "labels": list(images.class_names) if images.class_names else None,
            "skipped": skipped,
        },
        "k": k,
        "projection": options.projection,
        "occlusion": options.occlusion,
        "padding": PADDING_NOTE,
        "render": {"cell": options.cell, "gap": CELL_GAP, "grid": [rows, cols]},
        "layers": entries,
    }
