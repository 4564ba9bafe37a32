"""Build an atlas from a scan: gather the hits, run the views, lay out figures, hand them to the writer.

The stages: :func:`unit_results` (gather + views: data only) feeds the layout
(:mod:`convscope.render`, arrays only), and :class:`~convscope.atlas.files.AtlasFiles`
writes. Adding a kind of per-unit picture is a new view in :mod:`convscope.views`
and one line in :func:`views_for`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from convscope.progress import progress_bar

from convscope.version import __version__
from convscope.atlas.analyses import carry_analyses
from convscope.atlas.deal import Deal
from convscope.atlas.files import AtlasFiles
from convscope.atlas.unit_stats import layer_statistics
from convscope.atlas.format import FORMAT, STATISTICS_FIGURE, VERSION, hits_file, image_file
from convscope.atlas.writer import atomic_folder, encode_jpeg, encode_png, now
from convscope.data import ImageList
from convscope.data.dataset import load_frames
from convscope.errors import ConvscopeWarning
from convscope.featurevis import colour_matrix
from convscope.network.geometry import ReceptiveField
from convscope.network.layers import LayerInfo
from convscope.network.load import Network
from convscope.render.figures import (
    CELL_GAP,
    UNIT_GAP,
    layer_mosaic,
    mosaic_scale,
    overview,
    overview_layers,
    shrink,
    unit_figure,
    unit_grid,
)
from convscope.render.depth import depth_figure
from convscope.render.grid import fit_cell, grid_shape
from convscope.render.patch import mean_colour
from convscope.render.selection import choose_units
from convscope.scan.gather import Chunk, Hit, NewImages, PixelCache, gather_chunk, unit_chunks
from convscope.scan.job import ScanJob
from convscope.scan.scan import LayerScan, ScanResult
from convscope.views import FeatureVisView, OcclusionView, PatchView, Picture, ProjectionView, UnitView

PADDING_NOTE = (
    "outside-image pixels are drawn as the network saw them (the mean colour, zeros after "
    "normalisation, for zero padding; reflected, repeated or wrapped pixels for a field whose "
    "padding is reflect, replicate or circular) and covered by diagonal grey stripes; overview.png "
    "shows only the part of each box that lies on the image"
)


@dataclass(frozen=True)
class RenderOptions:
    """How an atlas is drawn.

    Attributes:
        projection: ``"deconvnet"``, ``"guided"`` or ``None`` (patches only).
        occlusion: also draw, for each unit's top hit, how much the activation drops
            as a grey square (a quarter of the box) slides over its box.
        cell: pixels of one patch in a unit grid.
        overview_cell: pixels of one patch in ``overview.png``, which shows the part of each
            box that lies on the image (a deep layer's box can be twice the image, mostly
            padding); the viewer and the grids show the whole box.
        overview_units: units per layer in ``overview.png``.
        overview_layers: the most layers ``overview.png`` shows (spread evenly over depth,
            the first and the last among them; every layer is in the viewer and mosaics).
        mosaic_width: the widest a layer mosaic gets, in pixels.
        featurevis: optimisation steps of a feature visualisation of every unit (0: none),
            drawn left of its patches and stored as ``units/0007-featurevis.png``.
        grids: also write every unit's patch grid as a PNG and every layer's mosaic (for
            papers and slides); without them the viewer draws the patches from the stored
            images, and only the overview and the per-unit projections and occlusion maps
            that were asked for are rendered.
    """

    projection: str | None = None
    occlusion: bool = False
    cell: int = 64
    overview_cell: int = 32
    overview_units: int = 9
    overview_layers: int = 6
    mosaic_width: int = 2400
    grids: bool = False
    featurevis: int = 0


def views_for(network: Network, options: RenderOptions, colour: torch.Tensor | None = None) -> list[UnitView]:
    """The views an atlas shows: the patches first, then what ``options`` ask for
    (``colour``: the data's ``(3, 3)`` colour matrix for feature visualisation)."""
    fill = mean_colour(network.preprocess.mean)
    views: list[UnitView] = [PatchView(fill)]
    if options.projection:
        views.append(ProjectionView(network, options.projection))
    if options.occlusion:
        views.append(OcclusionView(network, fill))
    if options.featurevis:
        views.append(FeatureVisView(network, colour, steps=options.featurevis))
    return views


def data_colour(images: ImageList, network: Network, sample: int = 64) -> torch.Tensor:
    """The ``(3, 3)`` colour matrix of ``sample`` images spread over the data set (model-input frame)."""
    indices = np.linspace(0, len(images) - 1, min(sample, len(images))).round().astype(int).tolist()
    return colour_matrix(load_frames(images, sorted(set(indices)), network.preprocess))


@dataclass(frozen=True)
class UnitResult:
    """Everything the views made of one unit.

    Attributes:
        unit: the unit.
        hits: its hits, strongest first.
        bottom: its bottom hits, weakest first (see ``LayerScan.bottom``).
        pictures: view name -> its pictures (one per hit, or one per unit); empty for a unit
            that was not pictured.
        pixels: image index -> ``uint8 (H, W, 3)`` model-input-frame pixels of each hit's and bottom
            hit's image; from another rank (:func:`_for_writer`), only the images no earlier chunk
            showed, as the JPEG bytes they are stored as.
        drawn: view name -> the unit's own picture of that view (``""``: the patch grid), PNG-encoded, to be written.
        thumb: ``uint8 (h, w, 3)``, the unit's figure for its layer's mosaic (with grids), else ``None``.
        small: ``uint8 (h, w, 3)``, the unit's figure for ``overview.png`` if it is shown there, else ``None``.
        featurevis: the record of its feature visualisation (its records' ``featurevis``), if it has one.
    """

    unit: int
    hits: list[Hit]
    pictures: dict[str, list[Picture]]
    pixels: dict[int, np.ndarray | bytes]
    bottom: list[Hit] = field(default_factory=list)
    drawn: dict[str, bytes] = field(default_factory=dict)
    thumb: np.ndarray | None = None
    small: np.ndarray | None = None
    featurevis: dict[str, Any] | None = None


@dataclass(frozen=True)
class LayerPlan:
    """What pass 2 makes of a layer's units.

    Attributes:
        chosen: the units ``overview.png`` shows.
        in_overview: whether the layer is in ``overview.png``.
        every: every unit is pictured (grids, projections, occlusion maps or feature
            visualisations asked for); else only the overview's units.
        scale: the mosaic thumbnails' shrink factor.
        new_images: with pass 2 dealt over ranks, per chunk the images it is the first to show
            (:class:`~convscope.scan.gather.NewImages`); else ``None``.
    """

    chosen: list[int]
    in_overview: bool
    every: bool
    scale: float
    new_images: list[frozenset[int]] | None = None

    @property
    def pictured(self) -> set[int] | None:
        """The units that go through the views (``None``: every unit)."""
        return None if self.every else (set(self.chosen) if self.in_overview else set())


def plan_layer(
    info: LayerInfo, scan: LayerScan, views: Sequence[UnitView], k: int, options: RenderOptions, in_overview: bool, new: NewImages | None = None
) -> LayerPlan:
    """The :class:`LayerPlan` of a layer, the same on every rank (``new``: the layers' walk of
    :class:`NewImages` when pass 2 is dealt over ranks)."""
    return LayerPlan(
        choose_units(scan.topk.values, scan.signature, options.overview_units),
        in_overview,
        options.grids or any(view.name for view in views),
        mosaic_scale(info.units, _figure_width(views, k, options.cell), options.mosaic_width),
        new.of_layer(scan, info.units) if new is not None else None,
    )


def unit_results(
    info: LayerInfo,
    scan: LayerScan,
    views: Sequence[UnitView],
    cache: PixelCache,
    plan: LayerPlan,
    k: int,
    options: RenderOptions,
    deal: Deal | None = None,
) -> Iterator[UnitResult]:
    """Every unit of a layer in unit order, with its views' pictures and its drawn figures if
    the ``plan`` pictures it; memory bounded by a chunk. With a ``deal`` (pass 2 on many
    processes), each chunk is computed by its rank and the results come out on rank 0 only."""
    for number, units in enumerate(unit_chunks(info.units)):
        compute = partial(_chunk_results, info, scan, units, views, cache, plan, k, options)
        if deal is None:
            yield from compute()
        else:
            new = plan.new_images[number] if plan.new_images is not None else frozenset()
            yield from deal.chunk(compute, partial(_for_writer, new=new)) or []


def _chunk_results(
    info: LayerInfo,
    scan: LayerScan,
    units: Sequence[int],
    views: Sequence[UnitView],
    cache: PixelCache,
    plan: LayerPlan,
    k: int,
    options: RenderOptions,
) -> list[UnitResult]:
    """:func:`unit_results` of one chunk of ``units``."""
    chunk = gather_chunk(scan, units, info.fields, cache)
    pictured = plan.pictured
    chosen = [i for i, unit in enumerate(chunk.units) if pictured is None or unit in pictured]
    part = Chunk([chunk.units[i] for i in chosen], [chunk.hits[i] for i in chosen], chunk.pixels)
    made = {view.name: dict(zip(chosen, view(info, part))) for view in views} if chosen else {}
    results = []
    for i, (unit, hits, bottom) in enumerate(zip(chunk.units, chunk.hits, chunk.bottom or [[] for _ in chunk.units])):
        pixels = {hit.image: chunk.pixels[hit.image] for hit in hits + bottom}
        pictures = {name: pictures[i] for name, pictures in made.items() if i in pictures}
        featurevis = _featurevis_record(pictures["featurevis"][0].value, hits) if pictures.get("featurevis") else None
        result = UnitResult(unit, hits, pictures, pixels, bottom, featurevis=featurevis)
        results.append(_draw(result, views, k, options, plan) if result.pictures else result)
    return results


def _for_writer(results: list[UnitResult], new: frozenset[int]) -> list[UnitResult]:
    """A chunk's results as a worker sends them to rank 0: without the views' pictures (drawn
    already), and with only the images ``new`` (no earlier chunk showed them), JPEG-encoded,
    each once."""
    sent: set[int] = set()
    slim = []
    for unit in results:
        images: dict[int, np.ndarray | bytes] = {i: encode_jpeg(p) for i, p in unit.pixels.items() if i in new and i not in sent}  # type: ignore[arg-type]
        sent |= images.keys()
        slim.append(replace(unit, pictures={}, pixels=images))
    return slim


def _draw(unit: UnitResult, views: Sequence[UnitView], k: int, options: RenderOptions, plan: LayerPlan) -> UnitResult:
    """``unit`` with its figures drawn: its views' own pictures (PNG), its mosaic thumbnail and
    its overview figure, as the ``plan`` asks."""
    drawn, thumb, small = {}, None, None
    if plan.every:
        if options.grids:
            figure, singles = _unit_figure(unit, views, k, options.cell)
            thumb = shrink(figure, plan.scale) if plan.scale < 1 else figure
        else:  # the viewer draws the patches: only the other views' pictures are made
            singles = _own_pictures(unit, [v for v in views if v.name], k, options.cell)
        drawn = {name: encode_png(picture) for name, picture in singles.items()}
    if plan.in_overview and unit.unit in plan.chosen:  # the part on the image, so deep layers' patches stay readable
        on_image = replace(unit, pictures={name: [p.on_image() for p in pictures] for name, pictures in unit.pictures.items()})
        small = _unit_figure(on_image, views, k, options.overview_cell)[0]
    return replace(unit, drawn=drawn, thumb=thumb, small=small)


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
    deal: Deal | None = None,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write the atlas of ``result`` to the folder ``out`` (replacing a previous atlas);
    ``settings`` says how the scan computed (``ScanJob.settings``, for the manifest; default
    the default job's).

    With a ``deal`` (rank 0 of many processes, the others calling :func:`serve_atlas`), the
    other ranks compute their share of the units' pictures.
    """
    views = _views(network, images, options)
    cache = PixelCache(images, network.preprocess)
    new = NewImages() if deal is not None and deal.world > 1 else None
    with atomic_folder(Path(out)) as tmp, AtlasFiles(tmp) as files:
        shown = overview_layers(len(layers), options.overview_layers)
        entries, blocks = [], []
        for number, info in enumerate(layers, start=1):
            names = output_names(network, info, last=number == len(layers))
            entry, block = _layer(files, info, number, result.layers[info.name], views, cache, images, k, options, progress, number - 1 in shown, names, deal, new)
            entries.append(entry)
            blocks += [block] if block is not None else []
        manifest = _manifest(network, images, result, entries, k, options) | {
            "overview_layers": [layers[i].name for i in shown],
            "scan": settings or ScanJob().settings,
        }
        left = carry_analyses(Path(out), tmp, manifest["model"])
        if left:
            warnings.warn(
                f"the atlas {out} held analyses of another model ({', '.join(left)}); the new atlas does not keep them",
                ConvscopeWarning,
                stacklevel=2,
            )
        depth = None
        if all("summary" in entry for entry in entries):
            depth = depth_figure([e["name"] for e in entries], [e["summary"] for e in entries], f"{network.source}: units over depth")
            manifest["statistics_figure"] = STATISTICS_FIGURE
        files.finish(overview(blocks), manifest, depth)
    return Path(out)


def serve_atlas(
    network: Network, images: ImageList, layers: Sequence[LayerInfo], result: ScanResult, *, k: int, options: RenderOptions, deal: Deal
) -> None:
    """A rank other than 0's part of :func:`write_atlas`: compute and draw its chunks of every
    layer and send them to rank 0 (``result``: the merged scan, the same on every rank)."""
    views = _views(network, images, options)
    cache = PixelCache(images, network.preprocess)
    shown = overview_layers(len(layers), options.overview_layers)
    new = NewImages()
    for number, info in enumerate(layers):
        scan = result.layers[info.name]
        plan = plan_layer(info, scan, views, k, options, number in shown, new)
        for _ in unit_results(info, scan, views, cache, plan, k, options, deal):
            pass  # nothing comes out on this rank: its chunks went to rank 0


def _views(network: Network, images: ImageList, options: RenderOptions) -> list[UnitView]:
    """:func:`views_for` with the data's colour matrix when feature visualisations are asked for."""
    return views_for(network, options, data_colour(images, network) if options.featurevis else None)


def _layer(
    files: AtlasFiles,
    info: LayerInfo,
    number: int,
    scan: LayerScan,
    views: Sequence[UnitView],
    cache: PixelCache,
    images: ImageList,
    k: int,
    options: RenderOptions,
    progress: bool,
    in_overview: bool,
    unit_names: Sequence[str] | None = None,
    deal: Deal | None = None,
    new: NewImages | None = None,
) -> tuple[dict[str, Any], tuple[str, list[np.ndarray]] | None]:
    """Write one layer's images, hits and asked-for unit pictures; return its manifest entry
    and, if ``in_overview``, its overview block. Only the units that need a picture go
    through the views (:class:`LayerPlan`).
    """
    plan = plan_layer(info, scan, views, k, options, in_overview, new)
    records: list[dict[str, Any]] = []
    thumbs: list[np.ndarray] = []
    small: dict[int, np.ndarray] = {}
    results = unit_results(info, scan, views, cache, plan, k, options, deal)
    statistics = layer_statistics(scan, images.labels, images.class_names) if scan.moments is not None else None
    for unit in progress_bar(results, total=info.units, unit="unit", desc=f"atlas {info.name}", disable=not progress, dynamic_ncols=True):
        for index, pixels in unit.pixels.items():
            files.image(index, pixels)
        record = {"unit": unit.unit, "mean": _finite(scan.mean[unit.unit]), "hits": [_hit_record(images, h) for h in unit.hits]}
        if unit_names is not None:
            record["class_name"] = unit_names[unit.unit]
        if statistics is not None:
            record["bottom"] = [_hit_record(images, h) for h in unit.bottom]
            record["bottom_kind"] = "min" if bool(scan.bottom_min[unit.unit]) else "max"
            record["stats"] = statistics.units[unit.unit]
        if unit.featurevis is not None:
            record["featurevis"] = unit.featurevis
        records.append(record)
        for name, png in unit.drawn.items():
            files.unit_picture(info.name, unit.unit, name, png)
        if unit.thumb is not None:
            thumbs.append(unit.thumb)
        if unit.small is not None:
            small[unit.unit] = unit.small
    title = f"{info.name} ({info.type}, {info.units} units, receptive field {_rf_text(info)})"
    hits: dict[str, Any] = {"layer": info.name, "k": k}
    if statistics is not None:
        hits |= {"quantile_levels": statistics.levels, "exact": statistics.exact}
    files.layer(number - 1, info.name, hits | {"units": records}, layer_mosaic(thumbs, title, options.mosaic_width) if thumbs else None)
    entry = info.to_dict() | ({"summary": statistics.summary} if statistics is not None else {}) | {
        "overview_units": plan.chosen,
        "hits": hits_file(info.name),
        "nonfinite": {"activations": int(scan.nonfinite.sum()), "units": int((scan.nonfinite > 0).sum())},
    }
    block = (f"layer {number} · {info.name} · {_rf_text(info)}", [small[u] for u in plan.chosen]) if in_overview else None
    return entry, block


def output_names(network: Network, info: LayerInfo, *, last: bool) -> Sequence[str] | None:
    """The class names of a classifier's output units: for the deepest layer scanned when it has
    one unit per class of the model (``network.class_names``), else ``None``."""
    names = network.class_names
    return names if last and names and info.units == len(names) else None


def _unit_figure(unit: UnitResult, views: Sequence[UnitView], k: int, cell: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The unit's figure (its per-hit grids side by side, the patches rightmost, as in Zeiler &
    Fergus's Figure 2) and every view's own picture by view name."""
    own = _own_pictures(unit, views, k, cell)
    grids = [own[v.name] for v in views if v.per_hit]
    height = grids[0].shape[0]
    beside = [fit_cell(unit.pictures[v.name][0].pixels, height) for v in views if v.in_figure and not v.per_hit and unit.pictures.get(v.name)]
    return unit_figure([*beside, *grids[1:], grids[0]]), own


def _own_pictures(unit: UnitResult, views: Sequence[UnitView], k: int, cell: int) -> dict[str, np.ndarray]:
    """Each of ``views``' picture of the unit by view name: a per-hit view's grid of ``cell`` cells,
    a per-unit view's picture in a ``2 * cell`` square."""
    own: dict[str, np.ndarray] = {}
    for view in views:
        pictures = unit.pictures.get(view.name, [])
        if view.per_hit:
            own[view.name] = unit_grid([fit_cell(p.pixels, cell, p.inside) for p in pictures], k)
        elif pictures:
            own[view.name] = fit_cell(pictures[0].pixels, 2 * cell, pictures[0].inside)
    return own


def _figure_width(views: Sequence[UnitView], k: int, cell: int) -> int:
    """Width of a unit figure, so that mosaic thumbnails are shrunk as they are made."""
    cols = grid_shape(k)[1]
    grid = cols * cell + (cols - 1) * CELL_GAP
    count = sum(v.in_figure for v in views)  # a picture beside the grids is about as wide as one
    return count * grid + (count - 1) * (UNIT_GAP // 2)


def _featurevis_record(reached: float | None, hits: Sequence[Hit]) -> dict[str, Any]:
    """The activation the optimised image reached, and its ratio to the unit's top dataset
    activation (both the unit's spatial max); ``below_top`` flags a ratio under 1."""
    top = hits[0].activation if hits else float("nan")
    ratio = reached / top if reached is not None and top > 0 else float("nan")
    return {"reached": _finite(reached if reached is not None else float("nan")), "ratio": _finite(ratio), "below_top": bool(ratio < 1)}


def _hit_record(images: ImageList, hit: Hit) -> dict[str, Any]:
    """A hit as readers see it (stored compact: :func:`~convscope.atlas.records.compact`)."""
    return {
        "rank": hit.rank,
        "activation": _finite(hit.activation),
        "image": images.paths[hit.image],
        "label": images.label_name(hit.image),
        "image_file": image_file(hit.image),
        "row": hit.row,
        "col": hit.col,
        "box": list(hit.box),
    }


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _rf_text(info: LayerInfo) -> str:
    """``51 px``, ``whole image``, ``unknown``, or per run of units ``units 0-63: 19 px; 64-127: 27 px``."""
    if info.fields is None:
        return "unknown"
    texts = [(start, stop, _size_text(field)) for start, stop, field in info.fields.ranges]
    if len(texts) == 1:
        return texts[0][2]
    return "units " + "; ".join(f"{start}-{stop - 1}: {text}" for start, stop, text in texts)


def _size_text(rf: ReceptiveField) -> str:
    if rf.stride == (0, 0):
        return "whole image"
    return f"{rf.size[0]} px" if rf.size[0] == rf.size[1] else f"{rf.size[0]}x{rf.size[1]} px"


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
        "featurevis": options.featurevis or None,
        "padding": PADDING_NOTE,
        "render": {"cell": options.cell, "gap": CELL_GAP, "grid": [rows, cols], "grids": options.grids},
        "layers": entries,
    }
