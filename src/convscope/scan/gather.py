"""Pass 2: turn the scan's hits into records with boxes, and reload only the winning images.

The hits of one layer are visited in chunks of units, so memory stays bounded by
the chunk, not by the number of units or images.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from convscope.data.dataset import load_frames
from convscope.data.folder import ImageList
from convscope.network.geometry import Box, UnitFields
from convscope.network.preprocess import Preprocess
from convscope.scan.scan import LayerScan


@dataclass(frozen=True)
class Hit:
    """One of a unit's top activations.

    Attributes:
        unit, rank: which unit, and its place among the unit's hits (0 = strongest).
        activation: the value of the unit there.
        image: index of the image in the :class:`ImageList`.
        row, col: the position in the layer's output.
        box: the receptive field of that position in model-input pixels, cut where the
            layer never reads the last rows or cols (:attr:`ReceptiveField.end`).
    """

    unit: int
    rank: int
    activation: float
    image: int
    row: int
    col: int
    box: Box


def unit_hits(layer: LayerScan, unit: int, fields: UnitFields | None, input_size: tuple[int, int]) -> list[Hit]:
    """The hits of ``unit``, strongest first, each with the box of the unit's own receptive
    field; fewer than k when there were fewer images. Where the fields are unknown, the box
    is the whole input.
    """
    return units_hits(layer, [unit], fields, input_size)[0]


def units_hits(
    layer: LayerScan, units: Sequence[int], fields: UnitFields | None, input_size: tuple[int, int], *, bottom: bool = False
) -> list[list[Hit]]:
    """:func:`unit_hits` of each of ``units``, the scan's tensors read once for all of them;
    with ``bottom``, the bottom hits instead (weakest first, see ``LayerScan.bottom``)."""
    index = torch.as_tensor(list(units), dtype=torch.long)
    kept = layer.bottom if bottom else layer.topk
    if kept is None:
        return [[] for _ in units]
    values, images, positions = (t[index].tolist() for t in kept)
    out = []
    for i, unit in enumerate(units):
        field = fields.field(unit) if fields is not None else None
        hits = []
        for rank, image in enumerate(images[i]):
            if image < 0:
                break
            row, col = divmod(positions[i][rank], layer.cols)
            box = field.box(row, col) if field is not None else Box(0, 0, *input_size)
            hits.append(Hit(unit, rank, float(values[i][rank]), image, row, col, box))
        out.append(hits)
    return out


@dataclass(frozen=True)
class Chunk:
    """The hits of some units with the pixels of the images they come from.

    Attributes:
        units: the units of the chunk.
        hits: per unit of the chunk, its hits.
        pixels: image index -> ``uint8 (H, W, 3)`` model-input-frame pixels.
    """

    units: list[int]
    hits: list[list[Hit]]
    pixels: dict[int, np.ndarray]
    bottom: list[list[Hit]] | None = None

    def flat(self) -> list[Hit]:
        return [hit for unit in self.hits for hit in unit]

    def stacked(self, hits: Sequence[Hit]) -> torch.Tensor:
        """The pixels of each of ``hits``' images, in order: ``uint8 (N, 3, H, W)``."""
        if not hits:
            return torch.zeros(0, 3, 0, 0, dtype=torch.uint8)
        return torch.from_numpy(np.stack([self.pixels[hit.image] for hit in hits])).permute(0, 3, 1, 2)


class PixelCache:
    """Model-input-frame pixels of reloaded images, kept up to a byte budget.

    Units of different layers often win on the same images; the cache decodes each
    at most once while the budget lasts, then forgets the least recently used.
    """

    def __init__(self, images: ImageList, preprocess: Preprocess, max_bytes: int = 1 << 30) -> None:
        self.images = images
        self.preprocess = preprocess
        self.max_bytes = max_bytes
        self._store: OrderedDict[int, np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, indices: Sequence[int]) -> dict[int, np.ndarray]:
        """Image index -> ``uint8 (H, W, 3)`` for every index asked."""
        missing = sorted({i for i in indices if i not in self._store})
        if missing:
            for index, frame in zip(missing, load_frames(self.images, missing, self.preprocess)):
                self._store[index] = frame
                self._bytes += frame.nbytes
        out = {}
        for index in indices:
            self._store.move_to_end(index)
            out[index] = self._store[index]
        while self._bytes > self.max_bytes and len(self._store) > len(out):
            _, dropped = self._store.popitem(last=False)
            self._bytes -= dropped.nbytes
        return out


#: Units gathered and pictured together: the unit of work of pass 2 (and of its deal over ranks).
UNITS_PER_CHUNK = 64


def unit_chunks(units: int, per_chunk: int = UNITS_PER_CHUNK) -> list[range]:
    """The units ``0..units-1`` in runs of ``per_chunk``: pass 2's chunks of a layer."""
    return [range(start, min(start + per_chunk, units)) for start in range(0, units, per_chunk)]


def gather_chunk(layer: LayerScan, units: Sequence[int], fields: UnitFields | None, cache: PixelCache) -> Chunk:
    """The top and bottom hits of ``units`` with the pixels of their images."""
    hits = units_hits(layer, units, fields, cache.preprocess.input_size)
    bottom = units_hits(layer, units, fields, cache.preprocess.input_size, bottom=True)
    wanted = [hit.image for unit in hits + bottom for hit in unit]
    return Chunk(list(units), hits, cache.get(wanted), bottom)


def chunk_images(layer: LayerScan, units: range) -> set[int]:
    """The images the top and bottom hits of ``units`` (a run of units) come from."""
    kept = [layer.topk] + ([layer.bottom] if layer.bottom is not None else [])
    return {image for hits in kept for image in hits.images[units.start : units.stop].flatten().tolist() if image >= 0}


class NewImages:
    """Which of pass 2's chunks is the first to show each winning image.

    Walk the layers in the atlas's order with :meth:`of_layer`; every rank walks them alike,
    so each knows, for a chunk it computes, the images that no earlier chunk showed: the
    ones it sends to the writer (rank 0 already has the others).
    """

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def of_layer(self, layer: LayerScan, units: int) -> list[frozenset[int]]:
        """Per chunk of the layer (:func:`unit_chunks`), the images it shows first."""
        firsts = []
        for chunk in unit_chunks(units):
            new = chunk_images(layer, chunk) - self._seen
            self._seen |= new
            firsts.append(frozenset(new))
        return firsts
