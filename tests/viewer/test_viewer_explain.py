"""The viewer's explained images in headless Chromium, from file://.

The atlas is :func:`make_explained_atlas`'s: a real scan of a tiny padded net, two images explained
by the CLI function into ``ATLAS/explain/`` (the first's class named with ``<script>`` and ``&``,
with a region; the second without heatmaps). Checked: the home page lists them; the page shows the
image, the class probabilities and per layer the record's units with its shares; hovering a unit
overlays its heatmap and draws its peak box (its activation map without heatmaps); a click on the
image lists per layer exactly :func:`region_units` of the stored maps; a unit's page lists the
explanation and links back; the hostile class name stays text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from convscope.explain.region import region_units
from convscope.explain.viewer_data import decode_map
from convscope.network.geometry import Box, UnitFields
from make_explained import HOSTILE_CLASS, SIDE, make_explained_atlas
from test_viewer_page import Watched, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def explained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_explained_atlas(tmp_path_factory.mktemp("explained"))


@pytest.fixture
def watched(browser, explained: dict):
    watched = Watched(browser, explained["atlas"].as_uri() + "/index.html")
    yield watched
    watched.check_clean("file://")
    watched.page.close()


def _record(atlas: Path, name: str) -> dict:
    return json.loads((atlas / "explain" / name / "explanation.json").read_text())["explanations"][0]


def _maps(atlas: Path, name: str) -> dict[str, torch.Tensor]:
    text = (atlas / "explain" / name / "activations.js").read_text()
    payload = json.loads(text.split("JSON.parse('", 1)[1].rsplit("')", 1)[0])
    return {entry["layer"]: decode_map(entry) for entry in payload["layers"]}


def _expected_region(atlas: Path, name: str, region: Box, top: int = 10) -> dict[str, list[tuple]]:
    record, maps = _record(atlas, name), _maps(atlas, name)
    out = {}
    for layer in record["layers"]:
        fields = UnitFields.from_list(layer["receptive_fields"])
        out[layer["layer"]] = [(u.unit, u.activation, u.row, u.col) for u in region_units(maps[layer["layer"]], fields, region, top)]
    return out


def _shown_region(page) -> dict[str, list[tuple]]:
    rows = page.evaluate("""[...document.querySelectorAll('.region-unit')].map(li => [li.dataset.layer, +li.dataset.unit, +li.dataset.activation, +li.dataset.row, +li.dataset.col])""")
    out: dict[str, list[tuple]] = {}
    for layer, *rest in rows:
        out.setdefault(layer, []).append(tuple(rest))
    return out


def test_the_home_page_lists_the_explained_images(watched: Watched, explained: dict) -> None:
    page = watched.open()
    items = page.locator("ul.explanation-list li")
    assert items.count() == 2
    assert items.locator(".explain-class").all_inner_texts() == [HOSTILE_CLASS, HOSTILE_CLASS]
    assert [a.get_attribute("href") for a in items.locator("a").all()] == ["#/explain/img000", "#/explain/img001"]
    wait_until(page, "[...document.querySelectorAll('img.explain-thumb')].every(i => i.complete && i.naturalWidth > 0)")
    record = _record(explained["atlas"], "img000")
    assert f"p = {100 * record['probability']:.1f}%" in items.first.inner_text()
    watched.shot("explain-home")
    page.click('ul.explanation-list a[href="#/explain/img000"]')
    wait_until(page, "document.querySelector('main').dataset.view === 'explanation'")


def test_the_page_shows_the_image_the_classes_and_the_units_with_their_shares(watched: Watched, explained: dict) -> None:
    atlas = explained["atlas"]
    record = _record(atlas, "img000")
    page = watched.open("#/explain/img000", view="explanation")
    wait_until(page, "(() => { const i = document.querySelector('img.explain-image'); return i && i.complete && i.naturalWidth > 0; })()")
    assert page.evaluate("[document.querySelector('img.explain-image').naturalWidth, document.querySelector('img.explain-image').naturalHeight]") == [SIDE, SIDE]
    assert page.locator("h1 .explain-class").inner_text() == HOSTILE_CLASS  # text, not markup
    assert page.locator(".explain-classes tr").count() == len(record["top_classes"]) == 4
    assert page.locator(".explain-classes tr.target .class-name").inner_text() == HOSTILE_CLASS
    for layer in record["layers"]:
        rows = page.locator(f'.explain-unit[data-layer="{layer["layer"]}"]')
        assert [int(u) for u in [r.get_attribute("data-unit") for r in rows.all()]] == [u["unit"] for u in layer["units"]]
        assert [float(r.get_attribute("data-share")) for r in rows.all()] == pytest.approx([u["share"] for u in layer["units"]], rel=1e-12)
        assert [t.strip() for t in rows.locator(".share").all_inner_texts()] == [f"{'+' if u['share'] >= 0 else '−'}{abs(100 * u['share']):.1f}%" for u in layer["units"]]
        assert [a.get_attribute("href") for a in rows.locator("a.unit-link").all()] == [f"#{layer['layer']}/{u['unit']}" for u in layer["units"]]
    watched.shot("explain-page")


def test_hovering_a_unit_overlays_its_heatmap_and_draws_its_peak_box(watched: Watched, explained: dict) -> None:
    record = _record(explained["atlas"], "img000")
    page = watched.open("#/explain/img000", view="explanation")
    assert page.locator("img.explain-heat").is_hidden() and page.locator(".explain-box").is_hidden()
    for layer in record["layers"]:
        for unit in layer["units"][:2]:
            page.hover(f'.explain-unit[data-layer="{layer["layer"]}"][data-unit="{unit["unit"]}"] .share-track')
            heat = page.locator("img.explain-heat")
            assert heat.is_visible() and heat.get_attribute("src") == f"explain/img000/{unit['heatmap_file']}"
            wait_until(page, "(() => { const i = document.querySelector('img.explain-heat'); return i.complete && i.naturalWidth > 0; })()")
            assert page.locator(".explain-box").get_attribute("data-box") == ",".join(map(str, unit["box"]))
            assert page.locator(".explain-stage").get_attribute("data-unit") == str(unit["unit"])
    watched.shot("explain-hover")
    page.mouse.move(0, 0)
    assert page.locator("img.explain-heat").is_hidden()
    # In "activation map" mode, the hovered unit's map is drawn through its fields on the canvas.
    page.click('button[data-mode="activation"]')
    layer = record["layers"][1]
    page.hover(f'.explain-unit[data-layer="{layer["layer"]}"][data-unit="{layer["units"][0]["unit"]}"] .share-track')
    wait_until(page, "!document.querySelector('canvas.explain-act').hidden")
    assert page.locator("img.explain-heat").is_hidden()
    assert page.evaluate("(() => { const c = document.querySelector('canvas.explain-act'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; })()") > 0


def test_without_heatmaps_hovering_draws_the_activation_map(watched: Watched, explained: dict) -> None:
    record = _record(explained["atlas"], "img001")
    assert all("heatmap_file" not in u for layer in record["layers"] for u in layer["units"])
    page = watched.open("#/explain/img001", view="explanation")
    unit = record["layers"][0]["units"][0]
    page.hover(f'.explain-unit[data-layer="{record["layers"][0]["layer"]}"][data-unit="{unit["unit"]}"] .share-track')
    wait_until(page, "!document.querySelector('canvas.explain-act').hidden")
    assert page.locator("canvas.explain-act").get_attribute("data-unit") == str(unit["unit"])
    assert page.locator(".explain-box").get_attribute("data-box") == ",".join(map(str, unit["box"]))


@pytest.mark.parametrize("row, col", [(10, 11), (0, 0), (SIDE - 1, 25)])
def test_a_click_lists_region_units_of_each_layer(watched: Watched, explained: dict, row: int, col: int) -> None:
    atlas = explained["atlas"]
    page = watched.open("#/explain/img000", view="explanation")
    # The recorded --region is looked up first, as the command did.
    wait_until(page, "document.querySelector('.explain-region').dataset.done === '1'")
    assert page.locator(".explain-region").get_attribute("data-region") == "8,8,14,14"
    assert _shown_region(page) == {k: v for k, v in _expected_region(atlas, "img000", Box(8, 8, 14, 14)).items() if v}
    record = _record(atlas, "img000")
    recorded = {layer["layer"]: [r["unit"] for r in layer["region"]] for layer in record["layers"]}
    assert {k: [u for u, *_ in v][:3] for k, v in _shown_region(page).items()} == {k: v for k, v in recorded.items() if v}
    box = page.locator(".explain-stage").bounding_box()
    page.mouse.click(box["x"] + (col + 0.5) * box["width"] / SIDE, box["y"] + (row + 0.5) * box["height"] / SIDE)
    wait_until(page, f"document.querySelector('.explain-region').dataset.region === '{row},{col},{row + 1},{col + 1}' && document.querySelector('.explain-region').dataset.done === '1'")
    expected = _expected_region(atlas, "img000", Box(row, col, row + 1, col + 1))
    assert all(expected.values())  # a point is under some unit of every layer
    assert _shown_region(page) == expected
    if (row, col) == (10, 11):
        watched.shot("explain-click")
    # Each listed unit links to its card; hovering it draws its box at that position.
    first = page.locator(".region-unit").first
    layer, unit = first.get_attribute("data-layer"), int(first.get_attribute("data-unit"))
    assert first.locator("a").get_attribute("href") == f"#{layer}/{unit}"
    first.hover()
    fields = UnitFields.from_list(next(entry for entry in record["layers"] if entry["layer"] == layer)["receptive_fields"])
    shown = expected[layer][0]
    assert page.locator(".explain-box").get_attribute("data-box") == ",".join(map(str, fields.field(unit).box(shown[2], shown[3])))


def test_a_drag_selects_a_region(watched: Watched, explained: dict) -> None:
    atlas = explained["atlas"]
    page = watched.open("#/explain/img000", view="explanation")
    box = page.locator(".explain-stage").bounding_box()
    at = lambda r, c: (box["x"] + (c + 0.5) * box["width"] / SIDE, box["y"] + (r + 0.5) * box["height"] / SIDE)  # noqa: E731
    page.mouse.move(*at(20, 6))
    page.mouse.down()
    page.mouse.move(*at(22, 8), steps=3)
    page.mouse.move(*at(23, 4), steps=3)
    page.mouse.up()
    wait_until(page, "document.querySelector('.explain-region').dataset.region === '20,4,24,7' && document.querySelector('.explain-region').dataset.done === '1'")
    assert _shown_region(page) == {k: v for k, v in _expected_region(atlas, "img000", Box(20, 4, 24, 7)).items() if v}


def test_a_unit_page_lists_the_explanations_where_it_mattered(watched: Watched, explained: dict) -> None:
    record = _record(explained["atlas"], "img000")
    layer = record["layers"][1]
    unit = layer["units"][0]
    page = watched.open(f"#{layer['layer']}/{unit['unit']}", view="unit")
    items = page.locator("section.explained li.explained-in")
    keys = [li.get_attribute("data-key") for li in items.all()]
    assert "img000" in keys
    item = items.nth(keys.index("img000"))
    assert float(item.get_attribute("data-share")) == pytest.approx(unit["share"], rel=1e-12)
    assert item.locator(".explain-class").inner_text() == HOSTILE_CLASS
    watched.shot("explain-unit")
    item.locator("a").click()
    wait_until(page, "document.querySelector('main').dataset.view === 'explanation' && location.hash === '#/explain/img000'")
    # A unit that was never among the top units has no such section.
    top = {u["unit"] for name in ("img000", "img001") for u in _record(explained["atlas"], name)["layers"][1]["units"]}
    other = min(set(range(6)) - top)
    page = watched.open(f"#{layer['layer']}/{other}", view="unit")
    assert page.locator("section.explained").count() == 0


def test_an_unknown_explanation_says_so(watched: Watched) -> None:
    page = watched.open("#/explain/nothing-here", view="missing")
    assert "no explanation" in page.locator("main").inner_text()
