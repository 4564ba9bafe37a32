"""Feature evolution during training (Zeiler & Fergus 2014, Figure 4): one scan per checkpoint.

The pieces, each callable alone:

1. :func:`load_checkpoint` loads a weights file into the network's own model (strict:
   a file that does not fit raises a :class:`~convscope.errors.WeightsError` naming it
   and its first mismatched keys).
2. :func:`decode_frames` decodes the images once, into the model-input frame, and keeps
   them in memory for every checkpoint (at most ``max_images``: a larger folder is cut to
   a seeded, evenly spread subsample, with a warning).
3. :func:`scan_frames` is one :func:`~convscope.scan.scan.scan` over those frames.
4. :func:`pick_units`: the units shown, by default :func:`~convscope.render.selection.choose_units`
   on the *last* checkpoint's scan (clear, mutually different units of the trained network).
5. :func:`top_cells`: each shown unit's strongest hit at one checkpoint, its patch and (if
   asked) its deconvnet or guided projection, with a ``changed`` flag where the hit's
   image differs from the previous checkpoint's.
6. :func:`~convscope.analysis.settle.settle_layer`: how settled a layer is between two
   checkpoints (over *all* its units, not only the shown ones): each checkpoint against
   the one before (``settle``), and against the last one (``to_final``).

:func:`evolve` runs them all and returns an :class:`Evolution`; nothing is saved here
(:mod:`convscope.analysis.evolve_folder` writes it, :mod:`convscope.analysis.evolve_figure`
draws it).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from convscope.progress import progress_bar

from convscope.analysis.settle import Settle, settle_layer
from convscope.data import ImageList, find_images, frame_batches
from convscope.errors import ConvscopeError, ConvscopeWarning, DataError, LayerError, WeightsError
from convscope.network.layers import NCHW, LayerInfo, select_layers
from convscope.network.network import Network
from convscope.network.weights import with_weights_file
from convscope.render.patch import mean_colour
from convscope.render.selection import choose_units
from convscope.scan.gather import Chunk, Hit, units_hits
from convscope.scan.scan import ScanResult, scan, signature_sample
from convscope.views.base import Picture, padding_of
from convscope.views.patch import PatchView
from convscope.views.projection import ProjectionView

#: Units shown per layer when the caller does not name them.
DEFAULT_UNITS = 6
#: Hits kept per unit in every scan; the settle measure compares these top-k image sets.
DEFAULT_K = 9
#: Images decoded and kept in memory at most (2,000 at 224x224 take 300 MB).
MAX_IMAGES = 2000


@dataclass(frozen=True)
class Frames:
    """Decoded images in the model-input frame, shared by every checkpoint's scan.

    Attributes:
        images: the image list the frames come from.
        indices: ``(N,)`` the index in ``images`` of each frame (all of them, or a subsample).
        pixels: ``uint8 (N, 3, H, W)``; zeros where an image could not be read.
        ok: ``bool (N,)`` False where an image could not be read.
    """

    images: ImageList
    indices: torch.Tensor
    pixels: torch.Tensor
    ok: torch.Tensor

    def path(self, frame: int) -> str:
        """The path (relative to the image root) of frame ``frame``."""
        return self.images.paths[int(self.indices[frame])]

    def pixels_hwc(self, frame: int) -> np.ndarray:
        """``uint8 (H, W, 3)`` of frame ``frame``."""
        return np.ascontiguousarray(self.pixels[frame].permute(1, 2, 0).numpy())


@dataclass(frozen=True)
class Cell:
    """One unit's strongest hit at one checkpoint.

    Attributes:
        hit: the hit; ``hit.image`` is a frame index (see :meth:`Frames.path`).
        changed: True where the hit's image differs from the previous checkpoint's
            strongest hit's image (never on the first checkpoint).
        patch: the pixels under the hit's box.
        projection: its deconvnet or guided projection cut to the box, or ``None``.
    """

    hit: Hit
    changed: bool
    patch: Picture
    projection: Picture | None = None


@dataclass(frozen=True)
class LayerEvolution:
    """One layer over training.

    Attributes:
        layer: its name. units: the units shown, in order.
        cells: ``cells[u][c]``: unit ``units[u]`` at checkpoint ``c`` (``None``: no hit, e.g. no image read).
        settle: per checkpoint after the first, how settled the layer is since the one before.
        to_final: per checkpoint, how much of the last checkpoint's top hits it already has
            (the last one's is 1 wherever a unit is measured).
        padding: per unit, how the network padded the image for it (``"zeros"``, ``"reflect"``, ...;
            what a patch shows past the border).
    """

    layer: str
    units: tuple[int, ...]
    cells: tuple[tuple[Cell | None, ...], ...]
    settle: tuple[Settle, ...]
    to_final: tuple[Settle, ...] = ()
    padding: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evolution:
    """The result of :func:`evolve`.

    Attributes:
        checkpoints: the weights files, in training order. names: their labels (file stems by default).
        frames: the decoded images. layers: per layer its :class:`LayerEvolution`, shallow to deep.
        k: hits per unit in the scans. projection: ``"deconvnet"``, ``"guided"`` or ``None``.
        fill: the ``uint8`` RGB colour of a zero model input (the mean), what zero padding shows.
    """

    checkpoints: tuple[Path, ...]
    names: tuple[str, ...]
    frames: Frames
    layers: tuple[LayerEvolution, ...]
    k: int
    projection: str | None
    fill: tuple[int, int, int] = (0, 0, 0)


def check_checkpoints(checkpoints: Sequence[str | Path]) -> tuple[Path, ...]:
    """The checkpoints as paths; at least two, each an existing file.

    Raises:
        ConvscopeError: fewer than two checkpoints (naming the one given).
        WeightsError: a file is missing (naming it).

    Example:
        >>> check_checkpoints(["only.pt"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        convscope.errors.ConvscopeError: an evolution needs at least two checkpoints, got one: only.pt...
    """
    paths = tuple(Path(c) for c in checkpoints)
    if len(paths) < 2:
        got = f"one: {paths[0]}" if paths else "none"
        raise ConvscopeError(
            f"an evolution needs at least two checkpoints, got {got}",
            hint="pass the weights files saved during training, in training order: --checkpoints A.pt B.pt C.pt",
        )
    for path in paths:
        if not path.is_file():
            raise WeightsError(f"checkpoint {path} does not exist", hint="check the --checkpoints paths")
    return paths


def load_checkpoint(network: Network, path: str | Path) -> Network:
    """``network`` with the state dict in ``path`` loaded into its own model (in place, strict).

    Raises:
        WeightsError: the file is missing, unreadable, or does not fit the model; the
            message names the file and the first missing, unexpected or mis-shaped keys.

    Example:
        >>> net = load_checkpoint(net, "epoch-05.pt")  # doctest: +SKIP
    """
    return with_weights_file(network, Path(path))


def decode_frames(
    images: ImageList, network: Network, *, max_images: int = MAX_IMAGES, batch_size: int = 32, workers: int = 0, progress: bool = True
) -> Frames:
    """Decode ``images`` once into the model-input frame of ``network.preprocess``.

    A list longer than ``max_images`` is cut to a seeded subsample spread over all of it
    (:func:`~convscope.scan.scan.signature_sample`, sorted), with a warning; unreadable
    images are kept as zeros with ``ok=False`` (the scans skip them).

    Returns:
        :class:`Frames` with ``pixels`` ``uint8 (N, 3, H, W)``.
    """
    if max_images < 1:
        raise ConvscopeError(f"max_images must be at least 1, got {max_images}", hint="pass --max-images 2000")
    if len(images) == 0:
        raise DataError(f"no image found in {images.root}", hint="give a folder of JPEG or PNG files")
    if len(images) > max_images:
        indices = signature_sample(len(images), max_images)
        warnings.warn(
            f"{len(images)} images: an evolution keeps them all in memory, so a seeded subsample of {max_images} is scanned",
            ConvscopeWarning,
            stacklevel=2,
        )
    else:
        indices = torch.arange(len(images))
    h, w = network.preprocess.input_size
    pixels = torch.zeros(len(indices), 3, h, w, dtype=torch.uint8)
    ok = torch.zeros(len(indices), dtype=torch.bool)
    done = 0
    with progress_bar(total=len(indices), unit="img", desc="decode", disable=not progress, dynamic_ncols=True) as bar:
        for batch in frame_batches(images, network.preprocess, batch_size, workers, torch.device("cpu"), indices.tolist()):
            n = len(batch.index)
            pixels[done : done + n] = batch.pixels.cpu()
            ok[done : done + n] = batch.ok
            done += n
            bar.update(n)
    if not ok.any():
        raise DataError(f"no image in {images.root} could be read", hint="check the files open in an image viewer")
    return Frames(images, indices, pixels, ok)


def scan_frames(network: Network, infos: Sequence[LayerInfo], frames: Frames, *, k: int = DEFAULT_K, batch_size: int = 32, progress: bool = True, desc: str = "scan") -> ScanResult:
    """One :func:`~convscope.scan.scan.scan` of ``infos`` over the in-memory ``frames``; image indices are frame indices."""
    count = len(frames.pixels)

    def batches():
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            ok = frames.ok[start:stop]
            yield frames.pixels[start:stop], torch.arange(start, stop), ok, ["" if good else "unreadable" for good in ok.tolist()]

    return scan(
        network.model,
        [(info.name, info.units) for info in infos],
        batches(),
        network.preprocess.normalize,
        k=k,
        total=count,
        progress=progress,
        layouts={info.name: info.dims for info in infos if info.dims is not None and info.dims != NCHW},
    )


def pick_units(result: ScanResult, infos: Sequence[LayerInfo], units: Mapping[str, Sequence[int]] | None = None, n: int = DEFAULT_UNITS) -> dict[str, tuple[int, ...]]:
    """The units shown per layer: ``units[layer]`` where given, else ``n`` by
    :func:`~convscope.render.selection.choose_units` on ``result`` (the last checkpoint's scan).

    Raises:
        LayerError: a named unit is out of range, or a named layer is not scanned.
    """
    units = dict(units or {})
    names = {info.name for info in infos}
    for layer in units:
        if layer not in names:
            raise LayerError(f"--units names layer {layer!r}, which is not scanned", hint=f"scanned layers: {', '.join(sorted(names))}")
    chosen = {}
    for info in infos:
        if info.name in units:
            wanted = tuple(int(u) for u in units[info.name])
            bad = [u for u in wanted if not 0 <= u < info.units]
            if bad:
                raise LayerError(f"layer {info.name!r} has {info.units} units; unit {bad[0]} does not exist", hint=f"pick units 0..{info.units - 1}")
            chosen[info.name] = wanted
        else:
            layer = result.layers[info.name]
            chosen[info.name] = tuple(choose_units(layer.topk.values, layer.signature, n))
    return chosen


def top_cells(
    network: Network,
    info: LayerInfo,
    result: ScanResult,
    units: Sequence[int],
    frames: Frames,
    previous: Sequence[int | None] | None,
    projection: str | None = None,
) -> list[Cell | None]:
    """Each of ``units``' strongest hit in ``result`` with its patch (and projection, computed with
    the weights now in ``network.model``: load the same checkpoint first).

    Args:
        previous: per unit the frame of its strongest hit at the checkpoint before (``None``
            for the first checkpoint, or where it had none); a different frame is ``changed``.
    """
    hits = [unit[:1] for unit in units_hits(result.layers[info.name], units, info.fields, network.preprocess.input_size)]
    wanted = sorted({h.image for unit in hits for h in unit})
    chunk = Chunk(list(units), hits, {i: frames.pixels_hwc(i) for i in wanted})
    patches = PatchView(mean_colour(network.preprocess.mean))(info, chunk)
    projections = ProjectionView(network, projection)(info, chunk) if projection else None
    cells: list[Cell | None] = []
    for u, unit_hits in enumerate(hits):
        if not unit_hits:
            cells.append(None)
            continue
        before = previous[u] if previous is not None else None
        changed = before is not None and before != unit_hits[0].image
        cells.append(Cell(unit_hits[0], changed, patches[u][0], projections[u][0] if projections else None))
    return cells


def evolve(
    network: Network,
    images: str | Path | ImageList | Frames,
    checkpoints: Sequence[str | Path],
    *,
    layers: Sequence[str] | None = None,
    units: Mapping[str, Sequence[int]] | None = None,
    n_units: int = DEFAULT_UNITS,
    k: int = DEFAULT_K,
    projection: str | None = None,
    names: Sequence[str] | None = None,
    max_images: int = MAX_IMAGES,
    batch_size: int = 32,
    workers: int = 0,
    progress: bool = True,
) -> Evolution:
    """Zeiler & Fergus's Figure 4 as data: each chosen unit's strongest hit at every checkpoint.

    Every checkpoint is loaded into ``network.model`` in turn (it is left holding the last
    one); the images are decoded once.

    Args:
        network: the model (any weights: each checkpoint replaces them) and its preprocessing.
        images: an image folder, an :class:`ImageList`, or :class:`Frames` already decoded.
        checkpoints: at least two weights files, in training order.
        layers: layers to follow (default: as :func:`~convscope.network.layers.select_layers`).
        units: per layer the units to show; other layers get ``n_units`` by the default rule
            (:func:`pick_units`).
        k: hits kept per unit (the settle measure compares top-k image sets).
        projection: ``"deconvnet"``, ``"guided"`` or ``None`` (patches only).
        names: a label per checkpoint (default: the file stems).
        max_images: decoded images kept in memory at most (see :func:`decode_frames`).

    Raises:
        ConvscopeError: fewer than two checkpoints; WeightsError: a checkpoint that is missing
            or does not fit the model (checked for all before any scan), naming the file.

    Example:
        >>> ev = evolve(load_network("net.py:make"), "photos/", ["e1.pt", "e5.pt", "e20.pt"])  # doctest: +SKIP
        >>> [s.top1_same for s in ev.layers[0].settle]  # doctest: +SKIP
        [0.5, 0.83]
    """
    paths = check_checkpoints(checkpoints)
    if projection not in (None, "deconvnet", "guided"):
        raise ConvscopeError(f"unknown projection {projection!r}", hint="use 'deconvnet', 'guided' or None")
    if k < 1 or n_units < 1:
        raise ConvscopeError(f"k and the units per layer must be at least 1, got k={k}, n_units={n_units}", hint="e.g. k=9, n_units=6")
    labels = tuple(names) if names is not None else tuple(p.stem for p in paths)
    if len(labels) != len(paths):
        raise ConvscopeError(f"{len(labels)} names for {len(paths)} checkpoints", hint="give one name per checkpoint")
    for path in paths:  # every file is checked before the first scan: a bad one fails in seconds
        network = load_checkpoint(network, path)
    infos = select_layers(network.model, layers, network.preprocess.input_size)
    if isinstance(images, Frames):
        frames = images
    else:
        image_list = images if isinstance(images, ImageList) else find_images(Path(images))
        frames = decode_frames(image_list, network, max_images=max_images, batch_size=batch_size, workers=workers, progress=progress)
    results = []
    for i, path in enumerate(paths):
        network = load_checkpoint(network, path)
        if progress:
            print(f"checkpoint {i + 1}/{len(paths)}: {labels[i]}", flush=True)
        results.append(scan_frames(network, infos, frames, k=k, batch_size=batch_size, progress=progress))
    chosen = pick_units(results[-1], infos, units, n_units)
    cells: dict[str, list[list[Cell | None]]] = {info.name: [] for info in infos}  # per layer, per checkpoint
    for i, path in enumerate(paths):
        if projection:
            network = load_checkpoint(network, path)
        for info in infos:
            columns = cells[info.name]
            previous = [c.hit.image if c is not None else None for c in columns[-1]] if columns else None
            columns.append(top_cells(network, info, results[i], chosen[info.name], frames, previous, projection))
    out = []
    for info in infos:
        columns = cells[info.name]
        rows = tuple(tuple(columns[c][u] for c in range(len(paths))) for u in range(len(chosen[info.name])))
        topk = [result.layers[info.name].topk for result in results]
        settle = tuple(settle_layer(topk[c - 1], topk[c]) for c in range(1, len(paths)))
        to_final = tuple(settle_layer(topk[c], topk[-1]) for c in range(len(paths)))
        padding = tuple(padding_of(info, unit) for unit in chosen[info.name])
        out.append(LayerEvolution(info.name, chosen[info.name], rows, settle, to_final, padding))
    fill = tuple(int(c) for c in mean_colour(network.preprocess.mean))
    return Evolution(paths, labels, frames, tuple(out), k, projection, fill)
