"""The viewer's circuits sections and circuit page in headless Chromium, from file://.

The atlas is :func:`make_circuits_atlas`'s: a real scan of a tiny net with a planted
``circuits/`` folder (two pairs, one of them direct, and an ablated layer whose class names
include an HTML injection). Checked: the home page and the side bar list the folder, its pairs
and its ablated layer with Bau's numbers; a unit's card shows "Built from" (the planted top
input first, signs, shares and kernels equal to the stored ones), "Feeds" (the upper units that
list the unit, computed here from the stored script's units independently of the page's
inversion) and "Matters for" (the planted class first, the hostile name as text); the circuit
page draws the unit, its inputs and theirs (the count computed here) with one line per link;
no console errors, no request outside the atlas. The ablated layer's class view
(``#/circuits/ablation/<layer>[/<class>]``, reached from the overview's ablation table and from
each class under "Matters for") lists the classes with images by index, filters them by name,
and for a class shows its units by drop (the order computed here from the stored drops with a
plain loop), each card opening its unit.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from convscope.atlas.viewer import find_analyses
from make_circuits import CLASS_NAMES, HOSTILE_CLASS, PLANTED_UNIT, TOP, make_circuits_atlas
from test_viewer_page import Watched, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_circuits_atlas(tmp_path_factory.mktemp("circuits"))


def payload(made: dict, name: str) -> dict:
    """The JSON inside a data script of the circuits folder (read back independently of the page)."""
    text = (made["circuits"] / "viewer" / name).read_text()
    literal = text[text.index("JSON.parse('") + len("JSON.parse('"):text.rindex("')")]
    # undo js_register_call's escapes: \\, \' and \xNN
    return json.loads(re.sub(r"\\(x[0-9a-fA-F]{2}|.)", lambda m: chr(int(m[1][1:], 16)) if len(m[1]) == 3 else m[1], literal))


@pytest.fixture
def watched(browser, made: dict):
    watched = Watched(browser, made["atlas"].as_uri() + "/index.html")
    console: list[str] = []
    watched.page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    yield watched
    watched.check_clean("file://")
    assert console == []
    watched.page.close()


def open_unit(watched: Watched, layer: str, unit: int):
    page = watched.open(f"#{layer}/{unit}", view="unit")
    wait_until(page, "[...document.querySelectorAll('.circuits section')].every(s => s.dataset.done === '1')")
    return page


def test_the_home_page_and_the_side_bar_list_the_circuits(watched: Watched) -> None:
    page = watched.open()
    items = page.locator("ul.circuits-list li")
    assert [li.get_attribute("data-kind") for li in items.all()] == ["circuits", "pair", "pair", "ablation"]
    assert items.locator("a").all_inner_texts() == ["Circuits: circuits/", "features.3 ← features.2", "features.2 ← features.0", "features.3: ablation"]
    assert "direct (kernels)" in items.nth(1).inner_text() and "direct" not in items.nth(2).inner_text()
    assert "for 75% of 4 classes (mean drop 1.25 vs 0.500)" in items.nth(3).inner_text()
    side = page.locator("nav a.circuits-link")
    assert side.count() == 1 and side.get_attribute("href") == "#/circuits"
    side.click()
    wait_until(page, "document.querySelector('main').dataset.view === 'circuits'")
    assert page.locator(".circuit-pairs tbody tr").count() == 2
    assert page.locator(".circuit-ablation-table tbody td").all_inner_texts() == ["features.3", "6", "2", "4", "75%", "1.25", "0.500", "by class →"]


def test_built_from_lists_the_planted_inputs_with_signs_and_kernels(watched: Watched, made: dict) -> None:
    page = open_unit(watched, "features.3", PLANTED_UNIT)
    section = page.locator("section.circuit-inputs")
    assert section.get_attribute("data-below") == "features.2"
    positive = section.locator(".circuit-row.positive .circuit-unit")
    negative = section.locator(".circuit-row.negative .circuit-unit")
    # planted contributions [-2.5, 2.0, -0.5, 5.0]: shares -0.25, 0.2, -0.05, 0.5
    assert [c.get_attribute("data-unit") for c in positive.all()] == ["3", "1"]
    assert [c.get_attribute("data-unit") for c in negative.all()] == ["0", "2"]
    assert positive.locator(".share").all_inner_texts() == ["+50.0%", "+20.0%"]
    assert negative.locator(".share").all_inner_texts() == ["−25.0%", "−5.0%"]
    assert [c.get_attribute("data-sign") for c in positive.all() + negative.all()] == ["+", "+", "-", "-"]
    assert positive.first.get_attribute("href") == "#features.2/3"
    # the strongest bar fills half the track, on its side
    widths = page.evaluate("[...document.querySelectorAll('.circuit-inputs .share-bar')].map(b => [b.className, b.style.width])")
    assert widths == [["share-bar positive", "50%"], ["share-bar positive", "20%"], ["share-bar negative", "25%"], ["share-bar negative", "5%"]]
    # kernels: the pair is direct, each card draws the stored kernel (the conv's weight slice)
    weight = made["model"].features[3].weight.detach().numpy()
    assert section.locator("canvas.kernel").count() == 4
    for card in positive.all() + negative.all():
        c = int(card.get_attribute("data-unit"))
        pixels = card.locator("canvas.kernel").evaluate("k => Array.from(k.getContext('2d').getImageData(0, 0, k.width, k.height).data)")
        rgba = np.array(pixels).reshape(3, 3, 4)
        kernel = weight[PLANTED_UNIT, c]
        red = rgba[..., 2] < rgba[..., 0]   # red: positive weight; blue: negative
        assert (red == (kernel > 0))[np.abs(kernel) > 1e-3].all()
    wait_until(page, "[...document.querySelectorAll('.circuit-inputs .unit-thumb')].every(s => s.querySelector('canvas.patch[data-drawn=\"1\"]'))")
    watched.shot("circuits-unit")


def test_a_pair_that_is_not_direct_draws_no_kernels(watched: Watched, made: dict) -> None:
    page = open_unit(watched, "features.2", 1)
    expected = payload(made, "inputs-1.js")["units"]["1"]
    cards = page.locator("section.circuit-inputs .circuit-unit")
    assert [int(c.get_attribute("data-unit")) for c in cards.all()] == [row[0] for row in expected["pos"] + expected["neg"]]
    assert page.locator("section.circuit-inputs canvas.kernel").count() == 0


@pytest.mark.parametrize("unit", [0, 3])
def test_feeds_inverts_the_pair_above(watched: Watched, made: dict, unit: int) -> None:
    units = payload(made, "inputs-0.js")["units"]
    expected_pos, expected_neg = [], []
    for u in range(6):  # a plain loop over every upper unit's lists
        for sign, out in (("pos", expected_pos), ("neg", expected_neg)):
            for c, share, _ in units[str(u)][sign]:
                if c == unit:
                    out.append((u, share))
    expected_pos.sort(key=lambda r: -r[1])
    expected_neg.sort(key=lambda r: r[1])
    page = open_unit(watched, "features.2", unit)
    section = page.locator("section.circuit-feeds")
    assert section.get_attribute("data-layer") == "features.3"
    shown = lambda sign: [(int(c.get_attribute("data-unit")), float(c.get_attribute("data-share"))) for c in section.locator(f".circuit-row.{sign} .circuit-unit").all()]
    for sign, expected in (("positive", expected_pos), ("negative", expected_neg)):
        assert [u for u, _ in shown(sign)] == [u for u, _ in expected]
        assert [s for _, s in shown(sign)] == pytest.approx([s for _, s in expected], abs=1e-12)
    assert len(expected_pos) + len(expected_neg) > 0
    if unit == 3:  # the planted input: unit 2's strongest
        assert (PLANTED_UNIT, 0.5) in [(u, round(s, 6)) for u, s in shown("positive")]


def test_matters_for_lists_the_planted_class_and_keeps_names_as_text(watched: Watched) -> None:
    page = open_unit(watched, "features.3", PLANTED_UNIT)
    rows = page.locator("section.circuit-ablation li.ablation-class")
    assert [r.get_attribute("data-class") for r in rows.all()] == ["3", "1", "0", "2"]   # drops 2.0, 1.5, 0.1, -0.3
    assert rows.locator(".class-name").all_inner_texts() == ["tiger shark", HOSTILE_CLASS, "tench", "white shark"]
    assert rows.first.locator(".drop").inner_text() == "drop 2.00"
    assert rows.first.locator(".accuracy").inner_text() == "accuracy −25.0 pts"   # 0.25 -> max(0, 0.25 - 0.25 * 2)
    assert page.locator("section.circuit-ablation img").count() == 0
    assert "Bau" not in page.locator("section.circuit-ablation").inner_text()
    assert "for 75% of 4 classes" in page.locator("section.circuit-ablation").inner_text()
    assert CLASS_NAMES[1] == HOSTILE_CLASS


def test_the_circuit_page_draws_the_unit_its_inputs_and_theirs(watched: Watched, made: dict) -> None:
    upper = payload(made, "inputs-0.js")["units"][str(PLANTED_UNIT)]
    lower = payload(made, "inputs-1.js")["units"]
    first = [row[0] for row in upper["pos"][:4] + upper["neg"][:2]]
    second, links = [], 0
    for c in first:
        rows = sorted(lower[str(c)]["pos"] + lower[str(c)]["neg"], key=lambda r: (-abs(r[1]), r[0]))[:3]
        links += len(rows)
        second += [r[0] for r in rows if r[0] not in second]
    page = watched.open("#features.3/0", view="unit")
    page.locator("section.circuit-inputs a.circuit-link").click()
    wait_until(page, "document.querySelector('main').dataset.view === 'circuit' && document.querySelector('.circuit-graph').dataset.unit === '0' && document.querySelector('.circuit-graph').dataset.done === '1'")
    page.goto(watched.base_url + f"#/circuit/features.3/{PLANTED_UNIT}")
    wait_until(page, f"document.querySelector('.circuit-graph').dataset.unit === '{PLANTED_UNIT}' && document.querySelector('.circuit-graph').dataset.done === '1'")
    depth = lambda d: [int(c.get_attribute("data-unit")) for c in page.locator(f'.graph-unit[data-depth="{d}"]').all()]
    assert depth(0) == [PLANTED_UNIT] and depth(1) == first and depth(2) == second
    assert page.locator(".graph-unit").count() == 1 + len(first) + len(second)
    assert page.locator(".circuit-lines path").count() == len(first) + links
    widths = [float(w) for w in page.evaluate("[...document.querySelectorAll('.circuit-lines path')].map(p => p.getAttribute('stroke-width'))")]
    assert max(widths) == pytest.approx(8.0) and min(widths) >= 1.0
    wait_until(page, "[...document.querySelectorAll('.graph-unit .unit-thumb')].every(s => s.querySelector('canvas.patch[data-drawn=\"1\"]'))")
    watched.shot("circuits-graph")
    # a row-1 card opens its own circuit (features.2 has a pair); a row-2 card opens its unit card (features.0 has none)
    page.locator('.graph-unit[data-depth="1"]').first.click()
    wait_until(page, f"location.hash === '#/circuit/features.2/{first[0]}' && document.querySelector('.circuit-graph')?.dataset.layer === 'features.2' && document.querySelector('.circuit-graph').dataset.done === '1'")
    assert page.locator('.graph-unit[data-depth="2"]').count() == 0
    assert page.locator('.graph-unit[data-depth="1"]').first.get_attribute("href").startswith("#features.0/")


def test_an_unknown_circuit_says_so(watched: Watched) -> None:
    page = watched.open("#/circuit/features.0/1", view="missing")   # features.0 has no pair
    assert "no circuit" in page.locator("main").inner_text()
    page = watched.open("#/circuit/features.3/99", view="missing")
    assert "no circuit" in page.locator("main").inner_text()


def test_the_folder_follows_the_documented_layout(made: dict) -> None:
    record = json.loads((made["circuits"] / "circuits.json").read_text())
    assert record["format"] == "convscope-circuits" and record["top"] == TOP
    for pair in record["pairs"]:
        with np.load(made["circuits"] / pair["file"]) as data:
            assert data["contributions"].shape == (pair["units"], pair["below_units"]) and data["contributions"].dtype == np.float32
        assert (made["circuits"] / pair["script"]).is_file()
    assert [(kind, folder) for kind, folder, _ in find_analyses(made["atlas"])] == [("circuits", "circuits")]
    assert payload(made, "ablation-0.js")["class_names"][1] == HOSTILE_CLASS


def ranked_units(made: dict, k: int) -> list[tuple[int, float]]:
    """Class k's units by falling drop (ties by unit), top 10, from ablation-0.npz with a plain loop."""
    with np.load(made["circuits"] / "ablation-0.npz") as data:
        drops = data["drops"]
    ranked: list[tuple[int, float]] = []
    for u in range(drops.shape[0]):
        at = 0
        while at < len(ranked) and (ranked[at][1] > drops[u, k] or (ranked[at][1] == drops[u, k] and ranked[at][0] < u)):
            at += 1
        ranked.insert(at, (u, float(drops[u, k])))
    return ranked[:10]


def wait_class(page, k: int | None) -> None:
    wait_until(page, f"(() => {{ const d = document.querySelector('.ablation-detail'); return !!d && d.dataset.class === '{'' if k is None else k}' && d.dataset.done === '1'; }})()")


def test_the_class_view_lists_the_classes_and_a_class_its_units(watched: Watched, made: dict) -> None:
    page = watched.open("#/circuits", view="circuits")
    page.locator(".circuit-ablation-table a.ablation-classes-link").click()
    wait_until(page, "location.hash === '#/circuits/ablation/features.3' && document.querySelector('main').dataset.view === 'circuits-ablation'")
    wait_class(page, None)
    items = page.locator(".ablation-classes li")
    assert [li.get_attribute("data-class") for li in items.all()] == ["0", "1", "2", "3"]
    assert items.locator(".class-name").all_inner_texts() == CLASS_NAMES   # the hostile name as text
    assert items.nth(3).locator(".class-count").inner_text() == f"most: #{PLANTED_UNIT} · drop 2.00"
    assert "for 75% of 4 classes" in page.locator(".ablation-detail").inner_text()
    search = page.locator("input.class-search")
    search.fill("shark")
    assert [li.get_attribute("data-class") for li in items.all() if li.is_visible()] == ["2", "3"]
    assert page.locator(".class-found").inner_text() == "2 matches"
    search.fill("#1")
    assert [li.get_attribute("data-class") for li in items.all() if li.is_visible()] == ["1"]
    search.fill("tiger")
    items.locator("a", has_text="tiger shark").click()
    wait_class(page, 3)
    assert page.evaluate("location.hash") == "#/circuits/ablation/features.3/3"
    assert page.locator(".ablation-classes li.current").get_attribute("data-class") == "3"
    assert page.locator(".ablation-detail h2").inner_text() == "tiger shark"
    cards = page.locator(".ablation-detail .ablation-unit")
    expected = ranked_units(made, 3)
    assert expected[0][0] == PLANTED_UNIT and len(expected) == 6
    assert [(int(c.get_attribute("data-unit")), float(c.get_attribute("data-share"))) for c in cards.all()] == [(u, pytest.approx(d, abs=1e-6)) for u, d in expected]
    assert cards.first.locator(".share").inner_text() == "drop 2.00"
    assert page.evaluate("document.querySelector('.ablation-unit .share-bar').style.width") == "50%"
    wait_until(page, "[...document.querySelectorAll('.ablation-unit .unit-thumb')].every(s => s.querySelector('canvas.patch[data-drawn=\"1\"]'))")
    watched.shot("circuits-classes")
    assert cards.first.get_attribute("href") == f"#features.3/{PLANTED_UNIT}"
    cards.first.click()
    wait_until(page, f"location.hash === '#features.3/{PLANTED_UNIT}' && document.querySelector('main').dataset.view === 'unit'")


def test_matters_for_opens_a_class_s_units(watched: Watched, made: dict) -> None:
    page = open_unit(watched, "features.3", PLANTED_UNIT)
    link = page.locator("section.circuit-ablation li.ablation-class a.class-name").nth(1)   # the hostile class 1
    assert link.inner_text() == HOSTILE_CLASS and link.get_attribute("href") == "#/circuits/ablation/features.3/1"
    link.click()
    wait_until(page, "document.querySelector('main').dataset.view === 'circuits-ablation'")
    wait_class(page, 1)
    assert page.locator(".ablation-detail h2").inner_text() == HOSTILE_CLASS
    assert page.locator(".crumbs").inner_text().endswith(HOSTILE_CLASS)
    cards = page.locator(".ablation-detail .ablation-unit")
    assert [int(c.get_attribute("data-unit")) for c in cards.all()] == [u for u, _ in ranked_units(made, 1)]
    assert cards.first.get_attribute("data-unit") == str(PLANTED_UNIT) and cards.first.locator(".share").inner_text() == "drop 1.50"


def test_an_unknown_ablated_class_or_layer_says_so(watched: Watched) -> None:
    page = watched.open("#/circuits/ablation/features.3/9", view="circuits-ablation")
    wait_class(page, 9)
    assert "No image of class 9" in page.locator(".ablation-detail").inner_text()
    page = watched.open("#/circuits/ablation/features.0", view="missing")   # features.0 was not ablated
    assert "no analysis folder" in page.locator("main").inner_text()
