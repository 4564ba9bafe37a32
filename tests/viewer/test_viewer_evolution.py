"""The viewer's analysis pages in headless Chromium: the evolution over training, invariance.

The atlas is :func:`make_evolved_atlas`'s (a real scan and evolution of a small padded net).
From ``file://``: the route draws one patch per (unit, checkpoint) and frames the changed ones,
hostile names stay text, a unit's page shows its row, version 1 records fall back to their
figures. Over HTTP (a ``file://`` canvas cannot be read back): each drawn cell is the box cut
out of the model-input frame that :meth:`Preprocess.to_model_frame` makes of the original image,
padded by numpy (an independent crop), within JPEG's error; and exactly (within decoding) the
box of the stored JPEG.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from convscope.atlas.serve import make_server
from make_atlas import HOSTILE_IMAGE, HOSTILE_LAYER
from make_evolution import HOSTILE_CHECKPOINT, HOSTILE_FOLDER, make_evolved_atlas, network
from test_viewer_page import Watched, wait_until
from test_viewer_patches import DECODE_TOLERANCE, expected_patch, read, striped

pytestmark = pytest.mark.browser

#: JPEG (quality 90) against the exact model-input frame, on these smooth images.
JPEG_MEAN, JPEG_MAX = 3.0, 16
ALL_DRAWN = "(() => { const c = [...document.querySelectorAll('canvas.evo-patch')]; return c.length > 0 && c.every(x => x.dataset.drawn === '1'); })()"


@pytest.fixture(scope="module")
def atlas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_evolved_atlas(tmp_path_factory.mktemp("evolved"))


@pytest.fixture
def watched(browser, atlas: Path):
    watched = Watched(browser, atlas.as_uri() + "/index.html")
    yield watched
    watched.check_clean("file://")


def _record(atlas: Path, folder: str = "evolution") -> dict:
    return json.loads((atlas / folder / "evolution.json").read_text())


def test_the_evolution_route_draws_each_unit_at_each_checkpoint_and_frames_changes(watched: Watched, atlas: Path) -> None:
    record = _record(atlas)
    names = [c["name"] for c in record["checkpoints"]]
    page = watched.open("#/evolution", view="evolution")
    wait_until(page, ALL_DRAWN)
    changed_seen = 0
    for layer in record["layers"]:
        section = page.locator(f'section.evo-layer[data-layer="{layer["layer"]}"]')
        assert section.locator("thead th.evo-name").all_inner_texts() == names
        assert section.locator("canvas.evo-patch").count() == len(layer["units"]) * len(names)
        for unit in layer["units"]:
            cells = section.locator(f'tr[data-unit="{unit["unit"]}"] td.evo-cell')
            assert cells.count() == len(names)
            for c, cell in enumerate(unit["checkpoints"]):
                td = cells.nth(c)
                assert ("changed" in td.get_attribute("class").split()) == cell["changed"], (layer["layer"], unit["unit"], c)
                assert td.locator("canvas").get_attribute("data-box") == ",".join(map(str, cell["box"]))
                assert float(td.get_attribute("data-activation")) == pytest.approx(cell["activation"])
                assert cell["image"] in td.get_attribute("title") and "activation" in td.get_attribute("title")
                assert td.locator("img.evo-projection").get_attribute("src") == f"evolution/{cell['projection_file']}"
                changed_seen += cell["changed"]
    assert changed_seen > 0 and page.locator("td.evo-cell.changed").count() == changed_seen
    # Every projection under a patch loaded, at the patch's width.
    wait_until(page, "[...document.querySelectorAll('img.evo-projection')].every(i => i.complete && i.naturalWidth > 0)")
    sizes = page.evaluate("[...document.querySelectorAll('td.evo-cell')].map(td => [td.querySelector('canvas').getBoundingClientRect().width, td.querySelector('img.evo-projection').getBoundingClientRect().width])")
    assert sizes and all(canvas == pytest.approx(image) for canvas, image in sizes)
    # The frame is visible: a changed cell's border is coloured, an unchanged one's is not.
    borders = page.evaluate("[...document.querySelectorAll('td.evo-cell')].map(td => [td.classList.contains('changed'), getComputedStyle(td).borderTopColor])")
    assert {colour for changed, colour in borders if changed} != {colour for changed, colour in borders if not changed}
    assert page.locator('figure.analysis-figure img[src="evolution/settle.png"]').count() == 1
    for layer in record["layers"]:
        final = page.locator(f'.settle-table tr[data-layer="{layer["layer"]}"][data-measure="final"] td.num').all_inner_texts()
        before = page.locator(f'.settle-table tr[data-layer="{layer["layer"]}"][data-measure="previous"] td.num').all_inner_texts()
        assert final == [f"{s['topk_overlap']:.2f}" for s in layer["to_final"]]
        assert before == ["—"] + [f"{s['topk_overlap']:.2f}" for s in layer["settle"]]


def test_home_lists_the_analyses_and_hostile_names_stay_text(watched: Watched, atlas: Path) -> None:
    page = watched.open("", view="home")
    links = page.locator(".analysis-list a")
    assert links.all_inner_texts() == [f"Over training: {HOSTILE_FOLDER}/", "Over training: evolution/", "Invariance: invariance/", "Over training: version-1/"]
    links.first.click()
    wait_until(page, "document.querySelector('main').dataset.view === 'evolution'")
    wait_until(page, ALL_DRAWN)
    assert page.locator("h1").inner_text() == f"Over training: {HOSTILE_FOLDER}/"
    assert page.locator("section.evo-layer h2").first.inner_text() == HOSTILE_LAYER
    assert page.locator("th.evo-name").first.inner_text() == HOSTILE_CHECKPOINT
    assert HOSTILE_IMAGE in page.locator("td.evo-cell").first.get_attribute("title")
    assert page.locator(".settle-table th").all_inner_texts()[2] == HOSTILE_CHECKPOINT
    # The hostile folder's pictures load from inside it (its name URL-encoded, not re-read as markup).
    assert any(quote(HOSTILE_FOLDER) in url or HOSTILE_FOLDER.replace(" ", "%20") in url for url in watched.requests if url.endswith(".jpg"))


def test_a_unit_in_the_evolution_shows_its_row_on_its_page(watched: Watched, atlas: Path) -> None:
    record = _record(atlas)
    layer = record["layers"][1]
    unit = layer["units"][0]
    page = watched.open(f"#{layer['layer']}/{unit['unit']}", view="unit")
    section = page.locator('section.over-training[data-folder="evolution"]')
    wait_until(page, "[...document.querySelectorAll('.over-training canvas')].every(c => c.dataset.drawn === '1')")
    assert section.locator("canvas.evo-patch").count() == len(record["checkpoints"])
    assert [("changed" in c.split()) for c in section.locator("td.evo-cell").evaluate_all("tds => tds.map(td => td.className)")] == [c["changed"] for c in unit["checkpoints"]]
    assert section.locator("a").get_attribute("href") == "#/evolution"
    # The version 1 copy follows the same unit but keeps no images: a note, no canvases.
    assert page.locator('section.over-training[data-folder="version-1"] canvas').count() == 0
    # A unit that no evolution follows has no such section.
    followed = {u["unit"] for u in layer["units"]}
    other = next(u for u in range(3) if u not in followed) if len(followed) < 3 else None
    if other is not None:
        page = watched.open(f"#{layer['layer']}/{other}", view="unit")
        assert page.locator("section.over-training").count() == 0


def test_a_version_1_record_shows_its_figures(watched: Watched, atlas: Path) -> None:
    page = watched.open("#/version-1", view="evolution")
    assert page.locator("canvas").count() == 0
    figures = page.locator("figure.analysis-figure img").evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
    assert figures == [f"version-1/evolution-{layer['layer']}.png" for layer in _record(atlas)["layers"]] + ["version-1/settle.png"]
    wait_until(page, "[...document.querySelectorAll('figure.analysis-figure img')].every(i => i.complete && i.naturalWidth > 0)")


def test_the_invariance_route_shows_the_figure_and_the_means(watched: Watched, atlas: Path) -> None:
    record = json.loads((atlas / "invariance" / "invariance.json").read_text())
    page = watched.open("#/invariance", view="invariance")
    assert page.locator('img[src="invariance/invariance.png"]').count() == 1
    rows = page.locator(".invariance-table tbody tr")
    assert rows.count() == len(record["images"]) + 1
    for i, image in enumerate(record["images"]):
        cells = rows.nth(i).locator("td").all_inner_texts()
        assert cells[0] == image["image"] and cells[2] == f"{image['shift_consistency']:.2f}"
        for curve, text in zip(image["curves"], cells[3:]):
            p = "—" if curve["probability"] is None else f"{np.mean(curve['probability']):.2f}"
            assert text == f"{np.mean(curve['first']):.2f} / {np.mean(curve['late']):.2f} / {p}"
    assert rows.nth(len(record["images"])).locator("td").all_inner_texts()[2] == f"{record['mean_shift_consistency']:.2f}"


@pytest.fixture(scope="module")
def served(atlas: Path, browser):
    server = make_server(atlas, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Watched(browser, "http://127.0.0.1:%d/" % server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_each_cell_is_the_box_of_the_model_input_frame(served: Watched, atlas: Path) -> None:
    record = _record(atlas)
    preprocess = network().preprocess
    root = Path(record["images"]["root"])
    page = served.open("#/evolution", view="evolution")
    wait_until(page, ALL_DRAWN)
    border = 0
    for layer in record["layers"]:
        for unit in layer["units"]:
            for c, cell in enumerate(unit["checkpoints"]):
                got = read(page, f'section.evo-layer[data-layer="{layer["layer"]}"] tr[data-unit="{unit["unit"]}"] td.evo-cell:nth-of-type({c + 1}) canvas')
                frame = np.asarray(preprocess.to_model_frame(Image.open(root / cell["image"]).convert("RGB"))).astype(np.int16)
                patch, inside = expected_patch(frame, cell["box"], unit["padding"])
                error = np.abs(got - striped(patch, inside))
                assert got.shape == patch.shape and error.mean() <= JPEG_MEAN and error.max() <= JPEG_MAX, (layer["layer"], unit["unit"], c, error.max())
                stored = np.asarray(Image.open(atlas / "evolution" / cell["image_file"]).convert("RGB")).astype(np.int16)
                patch, inside = expected_patch(stored, cell["box"], unit["padding"])
                assert np.abs(got - striped(patch, inside)).max() <= DECODE_TOLERANCE
                border += int((~inside).any())
    assert border > 0  # some boxes reach past the image: the padding was drawn and checked
    served.check_clean(served.base_url.rstrip("/"))
