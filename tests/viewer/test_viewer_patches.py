"""The viewer's patches, drawn from the stored images, show the pixels the atlas's boxes say.

A real atlas (``make_atlas`` on a small net whose convs pad with zeros or by reflection) is
served over HTTP (a ``file://`` canvas cannot be read back). For some units the test reads back
the unit view's patch canvases (one canvas pixel per image pixel) and the layer view's grid
cells (enlarged, nearest neighbour), and compares them with the box cut from the stored JPEG
by Pillow and ``numpy.pad``, an independent crop: past the border the mean colour (zero
padding) or numpy's reflection, under grey stripes where ``(row + col) % 4 == 0``. The grid
PNGs that ``grids=True`` writes are checked the same way against the source images.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
import torch
from torch import nn

from convscope.atlas.serve import make_server
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess
from convscope.pipeline import make_atlas
from convscope.atlas.format import read_hits
from test_viewer_page import Watched, wait_until
from tiny_models import write_images

pytestmark = pytest.mark.browser

SIDE, MEAN, STRIPE = 20, (0.2, 0.4, 0.6), (96, 96, 96)
FILL = tuple(round(255 * m) for m in MEAN)
#: Largest difference allowed between Chromium's and Pillow's decoding of the same JPEG.
DECODE_TOLERANCE = 3

READ_CANVAS = """(canvas) => ({w: canvas.width, h: canvas.height,
  data: Array.from(canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data)})"""


def expected_patch(image: np.ndarray, box: list[int], mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The box cut from ``image`` ``(H, W, 3)`` padded by numpy, and where it is image content."""
    top, left, bottom, right = box
    margin = SIDE
    if mode == "zeros":
        padded = np.stack([np.pad(image[..., c], margin, constant_values=FILL[c]) for c in range(3)], axis=-1)
    else:
        padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)), mode="reflect")
    patch = padded[top + margin : bottom + margin, left + margin : right + margin]
    rows, cols = np.arange(top, bottom)[:, None], np.arange(left, right)[None, :]
    inside = (rows >= 0) & (rows < image.shape[0]) & (cols >= 0) & (cols < image.shape[1])
    return patch, inside


def striped(patch: np.ndarray, inside: np.ndarray) -> np.ndarray:
    out = patch.copy()
    rows, cols = np.indices(inside.shape)
    out[~inside & ((rows + cols) % 4 == 0)] = STRIPE
    return out


def assert_cell_shows(grid: np.ndarray, rank: int, patch: np.ndarray, inside: np.ndarray, layout: tuple[int, int, int], context: object) -> None:
    """Cell ``rank`` of a drawn grid ``(H, W, 3)`` shows ``patch`` enlarged into it, centred (the
    viewer's nearest-neighbour scaling): each patch pixel at the centre of its block, or the
    stripe colour where the patch lies past the image. ``layout``: ``(cell, gap, cols)``."""
    cell, gap, cols = layout
    h, w = patch.shape[:2]
    scale = cell / max(h, w)
    y0 = (rank // cols) * (cell + gap) + (cell - round(h * scale)) // 2
    x0 = (rank % cols) * (cell + gap) + (cell - round(w * scale)) // 2
    for i in range(h):
        for j in range(w):
            pixel = grid[int(y0 + (i + 0.5) * scale), int(x0 + (j + 0.5) * scale)]
            same = np.abs(pixel - patch[i, j]).max() <= DECODE_TOLERANCE
            assert same or (not inside[i, j] and tuple(pixel) == STRIPE), (context, rank, i, j, pixel, patch[i, j])


def read(page, selector: str) -> np.ndarray:
    got = page.locator(selector).evaluate(READ_CANVAS)
    return np.array(got["data"], dtype=np.int16).reshape(got["h"], got["w"], 4)[..., :3]


@pytest.fixture(scope="module", params=["zeros", "reflect"])
def served(request, tmp_path_factory, browser):
    mode = request.param
    root = tmp_path_factory.mktemp(f"patches-{mode}")
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=2, padding_mode=mode)
    ).eval()
    generator = torch.Generator().manual_seed(0)  # every weight seeded: the test does not depend on earlier tests' random state
    for layer in (model[0], model[2]):
        nn.init.normal_(layer.weight, generator=generator)
        nn.init.normal_(layer.bias, generator=generator)
    write_images(root / "images", 10, SIDE, seed=3)
    preprocess = Preprocess(input_size=(SIDE, SIDE), resize=None, mean=MEAN, std=(0.25,) * 3)
    out = make_atlas(Network(model, "pad", preprocess), root / "images", root / "atlas", layers=["0", "2"], k=4, grids=True, progress=False)
    server = make_server(out, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield mode, out, Watched(browser, "http://127.0.0.1:%d/" % server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def hits_of(atlas: Path, layer: str) -> list[dict]:
    return read_hits(atlas, layer)["units"]


def stored(atlas: Path, hit: dict) -> np.ndarray:
    return np.asarray(Image.open(atlas / hit["image_file"]).convert("RGB")).astype(np.int16)


def test_unit_view_patches_are_the_boxes_of_the_stored_images(served) -> None:
    mode, atlas, watched = served
    border = 0
    for layer in ("0", "2"):
        for record in hits_of(atlas, layer)[:3]:
            page = watched.open(f"#{layer}/{record['unit']}", view="unit")
            wait_until(page, "[...document.querySelectorAll('canvas.patch')].every(c => c.dataset.drawn === '1')")
            for hit in record["hits"]:
                patch, inside = expected_patch(stored(atlas, hit), hit["box"], mode)
                got = read(page, f'.hit[data-rank="{hit["rank"]}"] canvas.patch')
                assert got.shape == patch.shape, (layer, hit)
                assert np.abs(got - striped(patch, inside)).max() <= DECODE_TOLERANCE, (layer, record["unit"], hit)
                border += int((~inside).any())
    watched.check_clean(watched.base_url.rstrip("/"))
    assert border > 0  # some boxes reach past the image, so the padding was drawn and checked


def test_layer_view_grid_cells_are_the_boxes_enlarged(served) -> None:
    mode, atlas, watched = served
    manifest = json.loads((atlas / "manifest.json").read_text())
    cell, gap, (_, cols) = manifest["render"]["cell"], manifest["render"]["gap"], manifest["render"]["grid"]
    page = watched.open("#2", view="layer")
    wait_until(page, "[...document.querySelectorAll('.card canvas.grid')].slice(0, 3).every(c => c.dataset.drawn === '1')")
    for record in hits_of(atlas, "2")[:3]:
        got = read(page, f'.card[data-unit="{record["unit"]}"] canvas.grid')
        for hit in record["hits"]:
            patch, inside = expected_patch(stored(atlas, hit), hit["box"], mode)
            assert_cell_shows(got, hit["rank"], patch, inside, (cell, gap, cols), record["unit"])


def test_grid_pngs_show_the_boxes_of_the_source_images(served) -> None:
    mode, atlas, _ = served
    manifest = json.loads((atlas / "manifest.json").read_text())
    cell, gap, (_, cols) = manifest["render"]["cell"], manifest["render"]["gap"], manifest["render"]["grid"]
    root = Path(manifest["dataset"]["root"])
    for record in hits_of(atlas, "2"):
        grid = np.asarray(Image.open(atlas / f"layers/2/units/{record['unit']:04d}.png").convert("RGB")).astype(np.int16)
        for hit in record["hits"]:
            source = np.asarray(Image.open(root / hit["image"]).convert("RGB")).astype(np.int16)
            patch, inside = expected_patch(source, hit["box"], mode)
            h, w = patch.shape[:2]
            scale = cell / max(h, w)
            y0 = (hit["rank"] // cols) * (cell + gap) + (cell - round(h * scale)) // 2
            x0 = (hit["rank"] % cols) * (cell + gap) + (cell - round(w * scale)) // 2
            centres = [(i, j, int(y0 + (i + 0.5) * scale), int(x0 + (j + 0.5) * scale)) for i in range(h) for j in range(w)]
            for i, j, y, x in centres:
                assert tuple(grid[y, x]) == tuple(patch[i, j]) or (not inside[i, j] and tuple(grid[y, x]) == STRIPE), (i, j)
