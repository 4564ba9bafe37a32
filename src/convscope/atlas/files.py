"""The atlas's one writer: every file of an atlas is written here, under the atomic folder.

Stages that compute (scan, gather, views, render) return data; :class:`AtlasFiles`
knows where each piece goes (see :mod:`convscope.atlas.format`) and writes it.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from convscope.atlas.format import STATISTICS_FIGURE, hits_file, image_file, layer_dir, unit_file
from convscope.atlas.records import compact, data_script
from convscope.atlas.viewer import write_viewer
from convscope.atlas.writer import write_jpeg, write_json, write_png


class AtlasFiles:
    """Writes into ``root`` (the temporary folder of :func:`~convscope.atlas.writer.atomic_folder`).

    Each winning image is stored once, however many hits it has; images are encoded on
    ``threads`` threads (Pillow releases the GIL while it encodes). Use it as a context
    manager: leaving it waits for every write and re-raises the first failure.
    """

    #: Image writes queued at most before the next one waits for the oldest.
    QUEUE = 64

    def __init__(self, root: Path, threads: int = 2) -> None:
        self.root = Path(root)
        self._stored: set[int] = set()
        self._pool = ThreadPoolExecutor(threads)
        self._pending: deque[Future] = deque()

    def __enter__(self) -> AtlasFiles:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._pool.shutdown(wait=True, cancel_futures=error is not None)
        if error is None:
            while self._pending:
                self._pending.popleft().result()

    def unit_picture(self, layer: str, unit: int, view: str, png: bytes) -> None:
        """A unit's picture of one view (``""``: the patch grid), PNG-encoded (``encode_png``)."""
        path = self.root / unit_file(layer, unit, view)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)

    def image(self, index: int, pixels: np.ndarray | bytes) -> None:
        """A winning image ``uint8 (H, W, 3)`` in the model-input frame (or its ``encode_jpeg``
        bytes), written the first time only."""
        if index not in self._stored:
            self._stored.add(index)
            if len(self._pending) >= self.QUEUE:
                self._pending.popleft().result()
            self._pending.append(self._pool.submit(write_jpeg, self.root / image_file(index), pixels))

    def layer(self, index: int, layer: str, hits: dict[str, Any], mosaic: np.ndarray | None) -> None:
        """The records of the manifest's layer ``index`` (each hit a dict, as :func:`~convscope.atlas.
        format.read_layer_hits` gives them back) as its ``hits.js``: their one copy, compact, which the
        viewer loads too (:mod:`~convscope.atlas.records`); and, if there is one, its ``mosaic.png``."""
        folder = self.root / layer_dir(layer)
        folder.mkdir(parents=True, exist_ok=True)
        (self.root / hits_file(layer)).write_text(data_script(index, compact(hits)), encoding="ascii")
        if mosaic is not None:
            write_png(folder / "mosaic.png", mosaic)

    def finish(self, overview: np.ndarray, manifest: dict[str, Any], statistics: np.ndarray | None = None) -> None:
        """The overview figure, the statistics-over-depth figure (if any), the manifest and the viewer."""
        write_png(self.root / "overview.png", overview)
        if statistics is not None:
            write_png(self.root / STATISTICS_FIGURE, statistics)
        write_json(self.root / "manifest.json", manifest)
        write_viewer(self.root)
