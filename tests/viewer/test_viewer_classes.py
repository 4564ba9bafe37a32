"""The viewer's class-relevance page in headless Chromium, from file://.

The atlas is :func:`make_classes_atlas`'s: a real scan of a tiny padded net and
``convscope explain ATLAS FOLDER`` (the CLI function) over its 9 photos labelled by a CSV file into
3 classes, one named with ``<script>`` and ``&``. Checked: the home page and the side bar list the
folder; the class list is "all images" then the record's classes with their images and correct
counts, and searchable; a class's units per layer, their shares, bars and top counts are
``classes.json``'s, each card's patches drawn from the atlas and linking to the unit's card; a
unit's card lists exactly the classes whose top units hold it (computed here from
``classes.json``), linking back to the class; the hostile name stays text.
"""

from __future__ import annotations

import json

import pytest

from make_classes import HOSTILE, TOP, make_classes_atlas
from make_explained import HOSTILE_CLASS
from test_viewer_page import Watched, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_classes_atlas(tmp_path_factory.mktemp("classes"))


@pytest.fixture(scope="module")
def record(made: dict) -> dict:
    return json.loads((made["classes"] / "classes.json").read_text())


@pytest.fixture
def watched(browser, made: dict):
    watched = Watched(browser, made["atlas"].as_uri() + "/index.html")
    yield watched
    watched.check_clean("file://")
    watched.page.close()


def _open_class(watched: Watched, fragment: str, key: str):
    page = watched.open(fragment, view="classes")
    wait_until(page, f"document.querySelector('.class-detail').dataset.class === {json.dumps(key)} && document.querySelector('.class-detail').dataset.done === '1'")
    return page


def _matters_for(record: dict, layer: str, unit: int) -> list[tuple[int, float, int, int]]:
    """Independently of the viewer's index: every class whose listed units at ``layer`` hold ``unit``."""
    rows = []
    for entry in record["classes"]:
        units = next(shown["units"] for shown in entry["layers"] if shown["layer"] == layer)
        for rank, u in enumerate(units, start=1):
            if u["unit"] == unit:
                rows.append((entry["class"], u["mean_share"], rank, u["top_count"]))
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def test_the_home_page_and_the_side_bar_list_the_folder(watched: Watched, record: dict) -> None:
    page = watched.open()
    link = page.locator("ul.classes-list li a")
    assert link.count() == 1
    assert link.inner_text() == f"Class relevance: {record['image_count']} images, {len(record['classes'])} classes, gradient x activation" == "Class relevance: 9 images, 3 classes, gradient x activation"
    assert link.get_attribute("href") == "#/explain/classes"
    side = page.locator("nav a.classes-link")
    assert side.count() == 1 and side.get_attribute("href") == "#/explain/classes"
    link.click()
    wait_until(page, "document.querySelector('main').dataset.view === 'classes' && document.querySelector('.class-detail').dataset.done === '1'")
    assert page.locator("nav a.classes-link").get_attribute("class").split() == ["layer-link", "classes-link", "current"]


def test_the_class_list_is_all_images_then_the_classes(watched: Watched, record: dict) -> None:
    page = _open_class(watched, "#/explain/classes", "all")
    items = page.locator(".class-list li")
    assert [li.get_attribute("data-class") for li in items.all()] == ["all", *(str(c["class"]) for c in record["classes"])] == ["all", "0", "1", "3"]
    assert items.locator(".class-name").all_inner_texts() == ["all images", "tench", HOSTILE_CLASS, "tiger shark"]
    assert items.locator(".class-index").all_inner_texts() == ["", "#0", "#1", "#3"]
    expected = [record["overall"], *record["classes"]]
    assert items.locator(".class-count").all_inner_texts() == [f"{c['images']} img · {c['correct']} right" for c in expected]
    assert [c["images"] for c in record["classes"]] == [4, 3, 2]
    assert page.locator(".class-list li.current").get_attribute("data-class") == "all"
    # Search by name, by index, and nothing.
    page.fill(".class-search", "SHARK")
    assert [li.get_attribute("data-class") for li in items.all() if li.is_visible()] == ["3"]
    page.fill(".class-search", "1")
    assert [li.get_attribute("data-class") for li in items.all() if li.is_visible()] == ["1"]
    page.fill(".class-search", "<script>")
    assert [li.get_attribute("data-class") for li in items.all() if li.is_visible()] == ["1"]
    page.fill(".class-search", "zebra")
    assert not [li for li in items.all() if li.is_visible()] and page.locator(".class-found").inner_text() == "0 matches"
    page.fill(".class-search", "")
    assert all(li.is_visible() for li in items.all())


@pytest.mark.parametrize("k", [None, 0, HOSTILE, 3])
def test_a_class_shows_its_units_and_shares_per_layer(watched: Watched, record: dict, k: int | None) -> None:
    key = "all" if k is None else str(k)
    page = _open_class(watched, "#/explain/classes" + ("" if k is None else f"/{k}"), key)
    entry = record["overall"] if k is None else next(c for c in record["classes"] if c["class"] == k)
    if k == HOSTILE:
        assert page.locator(".class-title").inner_text() == HOSTILE_CLASS  # text, not markup
        assert page.locator(".crumbs").inner_text().endswith(HOSTILE_CLASS)
    assert page.locator(".class-list li.current").get_attribute("data-class") == key
    sections = page.locator(".class-layer")
    assert [s.get_attribute("data-layer") for s in sections.all()] == record["layers"]
    for layer in entry["layers"]:
        cards = page.locator(f'.class-unit[data-layer="{layer["layer"]}"]')
        assert [int(c.get_attribute("data-unit")) for c in cards.all()] == [u["unit"] for u in layer["units"]]
        assert len(layer["units"]) == TOP
        assert [float(c.get_attribute("data-share")) for c in cards.all()] == pytest.approx([u["mean_share"] for u in layer["units"]], rel=1e-12)
        assert [int(c.get_attribute("data-top-count")) for c in cards.all()] == [u["top_count"] for u in layer["units"]]
        assert [t.strip() for t in cards.locator(".share").all_inner_texts()] == [f"{'+' if u['mean_share'] >= 0 else '−'}{abs(100 * u['mean_share']):.1f}%" for u in layer["units"]]
        assert cards.locator(".top-count").all_inner_texts() == [f"top {TOP} in {u['top_count']} of {entry['images']} image{'' if entry['images'] == 1 else 's'}" for u in layer["units"]]
        assert [a.get_attribute("href") for a in cards.all()] == [f"#{layer['layer']}/{u['unit']}" for u in layer["units"]]
        # Bars: |share| over the layer's largest, that one half the track; red raises, blue lowers.
        widest = max(abs(u["mean_share"]) for u in layer["units"])
        bars = cards.locator(".share-bar")
        assert [b.get_attribute("class").split()[1] for b in bars.all()] == ["negative" if u["mean_share"] < 0 else "positive" for u in layer["units"]]
        widths = bars.evaluate_all("bars => bars.map(b => b.getBoundingClientRect().width / b.parentElement.getBoundingClientRect().width)")
        assert widths == pytest.approx([0.5 * abs(u["mean_share"]) / widest for u in layer["units"]], abs=0.01)
    # Each card's top patches are drawn from the atlas's images.
    wait_until(page, "[...document.querySelectorAll('.class-unit canvas.grid')].every(c => c.dataset.drawn === '1')")
    assert page.locator(".class-unit canvas.grid").count() == sum(len(layer["units"]) for layer in entry["layers"])
    watched.shot(f"classes-{key}")


def test_a_card_links_to_the_unit_and_the_unit_back_to_its_classes(watched: Watched, record: dict) -> None:
    page = _open_class(watched, f"#/explain/classes/{HOSTILE}", str(HOSTILE))
    entry = next(c for c in record["classes"] if c["class"] == HOSTILE)
    layer = entry["layers"][1]
    unit = layer["units"][1]["unit"]
    page.click(f'.class-unit[data-layer="{layer["layer"]}"][data-unit="{unit}"]')
    wait_until(page, f"location.hash === '#{layer['layer']}/{unit}' && document.querySelector('main').dataset.view === 'unit' && document.querySelector('section.matters-for')?.dataset.done === '1'")
    items = page.locator("section.matters-for li.matters-class")
    expected = _matters_for(record, layer["layer"], unit)
    assert len(expected) >= 2  # in more than one class's top, so the order is checked
    assert [(int(li.get_attribute("data-class")), float(li.get_attribute("data-share")), int(li.get_attribute("data-rank"))) for li in items.all()] == [(k, pytest.approx(s, rel=1e-12), r) for k, s, r, _ in expected]
    names = {c["class"]: c["name"] for c in record["classes"]}
    assert items.locator("a").all_inner_texts() == [names[k] for k, *_ in expected]
    assert [a.get_attribute("href") for a in items.locator("a").all()] == [f"#/explain/classes/{k}" for k, *_ in expected]
    watched.shot("classes-unit")
    # ... and back: a class link opens that class's page.
    target = expected[-1][0]
    page.click(f'li.matters-class[data-class="{target}"] a')
    wait_until(page, f"document.querySelector('main').dataset.view === 'classes' && document.querySelector('.class-detail')?.dataset.class === '{target}' && document.querySelector('.class-detail').dataset.done === '1'")
    assert page.locator(f'.class-unit[data-layer="{layer["layer"]}"][data-unit="{unit}"]').count() == 1


def test_every_unit_card_lists_what_classes_json_says(watched: Watched, made: dict, record: dict) -> None:
    """Every unit of every layer: the list is the brute force over classes.json (empty: a note)."""
    manifest = json.loads((made["atlas"] / "manifest.json").read_text())
    empty = 0
    for layer in manifest["layers"]:
        for unit in range(layer["units"]):
            page = watched.open(f"#{layer['name']}/{unit}", view="unit")
            wait_until(page, "document.querySelector('section.matters-for')?.dataset.done === '1'")
            shown = page.evaluate("[...document.querySelectorAll('li.matters-class')].map(li => [+li.dataset.class, +li.dataset.share, +li.dataset.rank])")
            expected = [[k, s, r] for k, s, r, _ in _matters_for(record, layer["name"], unit)]
            assert shown == expected, (layer["name"], unit)
            if not expected:
                empty += 1
                assert f"Not among the top {TOP} units of any class" in page.locator("section.matters-for").inner_text()
    assert empty > 0  # some unit matters for no class


def test_an_unknown_class_says_so(watched: Watched) -> None:
    page = watched.open("#/explain/classes/2", view="missing")  # a class of the model without images
    assert "no explanation" in page.locator("main").inner_text()


def test_a_folder_without_its_viewer_data_says_what_to_do(browser, made: dict, tmp_path) -> None:
    """A class-relevance folder written before the viewer's data scripts existed: the page says to rerun."""
    import shutil

    atlas = tmp_path / "atlas"
    shutil.copytree(made["atlas"], atlas)
    shutil.rmtree(atlas / "explain" / "classes" / "viewer")
    watched = Watched(browser, atlas.as_uri() + "/index.html")
    try:
        page = watched.open("#/explain/classes/0", view="classes")
        wait_until(page, "!!document.querySelector('.class-detail .error')")
        assert "rerun convscope explain ATLAS FOLDER" in page.locator(".class-detail .error").inner_text()
        assert page.locator(".class-list li").count() == 4  # the list comes from analyses.js
        page = watched.open("#features.3/5", view="unit")
        wait_until(page, "!!document.querySelector('section.matters-for .error')")
        watched.check_clean("file://")
    finally:
        watched.page.close()
