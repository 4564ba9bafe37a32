"""The viewer shows the unit statistics of format version 3, checked against the atlas's records.

A real atlas (``make_atlas`` on a small net over labelled images: three colour classes, one of
them named ``<img src=x onerror=alert(1)>``) is served over HTTP so that canvases can be read
back. Its first conv has a unit that is never above zero (bias -100: dead after the ReLU, and
negative everywhere before it), one above zero everywhere (bias +100), and a red and a green
detector (selective, labelled). The tests compare what the page shows with ``hits.json`` and
the manifest: histogram bars (pixel heights), quantiles, class bars, bottom-hit patches (against
numpy crops of the stored images, as test_viewer_patches.py does), filters, sorts, the summaries
over depth, escaping; and an older atlas without statistics still renders cleanly.
"""

from __future__ import annotations

import json
import shutil
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from convscope.atlas.serve import make_server
from convscope.atlas.viewer import write_viewer
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess
from convscope.pipeline import make_atlas
from convscope.atlas.format import read_hits
from convscope.atlas.records import compact, data_script
from make_atlas import make_atlas as make_synthetic_atlas, rank_grid_png
from test_viewer_page import Watched, wait_until
from test_viewer_patches import DECODE_TOLERANCE, MEAN, assert_cell_shows, expected_patch, read, stored, striped

pytestmark = pytest.mark.browser

HOSTILE = "<img src=x onerror=alert(1)>"
SIDE = 12
HIST_HEIGHT, HIST_BAR = 96, (0x24, 0x57, 0xC5)  # viewer.js: HIST_HEIGHT, HIST_BAR


def pct(x: float | None) -> str:
    """viewer.js's pct(): a share as a percentage, a decimal only near 0% and 100%."""
    if x is None:
        return "—"
    v = 100 * x
    if v in (0, 100):
        return f"{v:g}%"
    if v < 0.1:
        return "<0.1%"
    if v > 99.9:
        return ">99.9%"
    return f"{v:.1f}%" if v < 5 or v > 95 else f"{v:.0f}%"


def num2(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def close(text: str, value: float) -> bool:
    """``text`` is viewer.js's fmt() of ``value`` (3 significant digits, or 1 decimal from 100)."""
    return abs(float(text) - value) <= max(0.051 if abs(value) >= 100 else 0.0, 0.005 * abs(value), 1e-9)


class Page(Watched):
    """A watched page that also records console errors."""

    def __init__(self, browser, base_url: str) -> None:
        super().__init__(browser, base_url)
        self.console: list[str] = []
        self.page.on("console", lambda message: self.console.append(f"{message.text} ({message.location.get('url')})") if message.type == "error" else None)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """The real atlas described above (layers "0" conv, "1" ReLU, "2" conv; k = 6)."""
    root = tmp_path_factory.mktemp("stats")
    rng = np.random.default_rng(0)
    for name, channel in (("red", 0), ("green", 1), (HOSTILE, 2)):
        folder = root / "images" / name
        folder.mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 90, (SIDE, SIDE, 3), dtype=np.uint8)
            pixels[..., channel] += 150
            Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 3, stride=2, padding=1)).eval()
    with torch.no_grad():
        nn.init.normal_(model[0].weight, generator=torch.Generator().manual_seed(0))
        model[0].bias.zero_()
        model[0].bias[0], model[0].bias[1] = -100.0, 100.0  # dead, always on
        model[0].weight[2:4] = 0
        model[0].weight[2, 0, 1, 1], model[0].weight[2, 1, 1, 1] = 1.0, -1.0  # red minus green
        model[0].weight[3, 1, 1, 1], model[0].weight[3, 0, 1, 1] = 1.0, -1.0  # green minus red
    preprocess = Preprocess(input_size=(SIDE, SIDE), resize=None, mean=MEAN, std=(0.25,) * 3)
    with warnings.catch_warnings():  # deconvnet without max-pooling: expected here
        warnings.simplefilter("ignore")
        return make_atlas(Network(model, "tiny", preprocess), root / "images", root / "atlas", layers=["0", "1", "2"], k=6,
                          projection="deconvnet", progress=False)


@pytest.fixture(scope="module")
def origin(tiny: Path):
    server = make_server(tiny, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def watched(browser, origin: str):
    page = Page(browser, origin + "/")
    yield page
    page.check_clean(origin)
    assert [m for m in page.console if "favicon" not in m] == []
    page.page.close()


def records(atlas: Path, layer: str) -> dict:
    return read_hits(atlas, layer)


def manifest_of(atlas: Path) -> dict:
    return json.loads((atlas / "manifest.json").read_text())


#: The text of every matched element (cards off screen are not rendered, so they have no innerText).
TEXTS = "nodes => nodes.map(n => n.textContent)"


def shown_units(page) -> list[int]:
    return [int(u) for u in page.locator(".cards .card").evaluate_all("cs => cs.map(c => c.dataset.unit)")]


def test_the_atlas_has_what_the_tests_need(tiny: Path) -> None:
    relu = records(tiny, "1")["units"]
    assert relu[0]["stats"]["dead"] and relu[1]["stats"]["always_on"]
    assert records(tiny, "0")["units"][0]["bottom_kind"] == "min" and relu[2]["bottom_kind"] == "max"
    assert any(u["stats"]["label"] and u["stats"]["label"]["name"] == HOSTILE for u in relu)
    assert sum(u["stats"]["selectivity"] is not None and u["stats"]["selectivity"] >= 0.5 for u in relu) >= 2


def check_histogram(page, stats: dict) -> None:
    """The canvas has one bar per bin, ``round(HIST_HEIGHT * count / most)`` pixels high (at least 1
    when the bin is not empty), and a gap column between bars."""
    width = int(page.locator(".distribution canvas.hist-canvas").get_attribute("data-bin-width"))
    pixels = read(page, ".distribution canvas.hist-canvas")
    assert pixels.shape[:2] == (HIST_HEIGHT, width * len(stats["histogram"]))
    bar = np.abs(pixels - HIST_BAR).max(axis=2) <= 1
    most = max(stats["histogram"])
    for i, count in enumerate(stats["histogram"]):
        height = int(bar[:, i * width + (width - 1) // 2].sum())
        assert height == (max(1, int(np.floor(HIST_HEIGHT * count / most + 0.5))) if count else 0), (i, count)
        assert not bar[:, i * width + width - 1].any()


def check_unit(page, stats: dict, levels: list[float], labels: list[str]) -> None:
    """The unit view's numbers are the record's."""
    check_histogram(page, stats)
    # Quantiles at every level, mean and firing rate.
    shown = dict(zip(page.locator(".quantiles .q-level").all_inner_texts(), page.locator(".quantiles .q-value").all_inner_texts()))
    assert {"0.1%", "1%", "50%", "99%", "99.9%"} <= set(shown)
    for level, value in zip(levels, stats["quantiles"]):
        assert close(shown[f"{100 * level:g}%"], value), (level, shown)
    facts = page.locator(".distribution .stat-facts").inner_text()
    assert f"firing rate {pct(stats['firing_rate'])}" in facts
    assert close(page.locator(".distribution .stat-facts b").first.inner_text(), stats["mean"])
    # Flags and the suggested label.
    badges = page.locator(".unit-head .badge").all_inner_texts()
    assert ("dead" in badges) == stats["dead"] and ("always on" in badges) == stats["always_on"]
    label = stats["label"]
    if label is None:
        assert page.locator(".unit-label").inner_text() == "no label" and page.locator(".label-text").count() == 0
    else:
        assert page.locator(".unit-label .label-name").inner_text() == label["name"]
        word = "no" if label["confidence"] == "none" else label["confidence"]
        assert page.locator(".unit-label .badge").inner_text() == f"{word} confidence"
        assert label["text"] in page.locator(".label-text").inner_text()
    # Class bars: the classes' names in the record's order, their means, bar lengths relative to the longest.
    rows = page.locator(".classes .class-row")
    assert rows.evaluate_all("rs => rs.map(r => r.querySelector('.hist-label').textContent)") == [labels[c] for c, _ in stats["classes"]]
    for text, (_, mean) in zip(rows.locator(".hist-count").all_inner_texts(), stats["classes"]):
        assert close(text, mean)
    widths = rows.locator(".bar").evaluate_all("bs => bs.map(b => parseFloat(b.style.width))")
    scale = max([abs(m) for _, m in stats["classes"]] + [abs(stats["mean"])]) or 1
    assert widths == pytest.approx([100 * abs(m) / scale for _, m in stats["classes"]], abs=0.01)
    negative = rows.locator(".bar").evaluate_all("bs => bs.map(b => b.classList.contains('negative'))")
    assert negative == [m < 0 for _, m in stats["classes"]]
    facts = page.locator(".classes .stat-facts").inner_text()
    assert f"selectivity {num2(stats['selectivity'])}" in facts and f"purity {pct(stats['purity'])}" in facts
    assert page.locator(".classes .top-class").inner_text() == labels[stats["top_class"]]


def test_unit_view_shows_the_units_statistics(watched: Page, tiny: Path) -> None:
    labels = manifest_of(tiny)["dataset"]["labels"]
    for layer, units in (("0", range(6)), ("1", (0, 1))):  # every conv unit; the dead and the always-on unit
        hits = records(tiny, layer)
        for unit in units:
            watched.open(f"#{layer}/{unit}", view="unit")
            check_unit(watched.page, hits["units"][unit]["stats"], hits["quantile_levels"], labels)
    # The records came from the atlas's one copy of them (format version 4), not from viewer copies.
    assert {u.split("/")[-2] for u in watched.requests if u.endswith("/hits.js")} == {"0", "1"}
    assert not any("/viewer/data/layer-" in u for u in watched.requests) and not list((tiny / "viewer").rglob("layer-*"))


def test_edge_records_tiny_bins_threshold_no_label_negative_means(browser, tiny: Path, tmp_path: Path) -> None:
    """A copy of the atlas with edited records: bins far below the largest still show, selectivity
    0.5 is selective and 0.4999 is not, a unit without a label says so, negative class means."""
    copy = shutil.copytree(tiny, tmp_path / "atlas")
    hits = records(copy, "0")
    edge = hits["units"][0]["stats"]
    edge["histogram"] = [500, 1, 0, 2, 0, 250] + [0] * 25 + [3]
    edge["label"] = None
    edge["classes"] = [[1, -0.5], [2, -1.5], [0, -2.0]]
    edge["mean"] = -1.25
    hits["units"][1]["stats"]["selectivity"] = 0.5
    hits["units"][2]["stats"]["selectivity"] = 0.4999
    (copy / "layers/0/hits.js").write_text(data_script(0, compact(hits)))
    write_viewer(copy)
    page = Page(browser, copy.as_uri() + "/index.html")
    page.open("#0/0", view="unit")
    check_unit(page.page, edge, hits["quantile_levels"], manifest_of(copy)["dataset"]["labels"])
    page.page.goto(page.base_url + "#0")
    page.page.wait_for_selector('main[data-view="layer"]')
    page.page.select_option("#filter", "selective")
    selective = [u["unit"] for u in hits["units"] if (u["stats"]["selectivity"] or 0) >= 0.5]
    assert 1 in selective and 2 not in selective and shown_units(page.page) == selective
    assert page.page.locator('.card[data-unit="0"]').count() == 0
    page.page.select_option("#filter", "all")
    assert page.page.locator('.card[data-unit="0"] .card-label').text_content() == "no label"
    page.check_clean("file://")
    assert page.console == []
    page.page.close()


def test_bottom_hits_are_the_boxes_of_the_stored_images(watched: Page, tiny: Path) -> None:
    manifest = manifest_of(tiny)
    cell, gap, (_, cols) = manifest["render"]["cell"], manifest["render"]["gap"], manifest["render"]["grid"]
    titles = {"min": "Bottom hits: most negative activations", "max": "Bottom hits: images where it stays weakest"}
    border = 0
    for layer in ("0", "1"):
        for record in records(tiny, layer)["units"][:3]:
            page = watched.open(f"#{layer}/{record['unit']}", view="unit")
            assert page.locator("section.bottom h2").inner_text() == titles[record["bottom_kind"]]
            wait_until(page, "[...document.querySelectorAll('canvas.patch, canvas.glance')].every(c => c.dataset.drawn === '1')")
            acts = page.locator(".bottom-hit .act").all_inner_texts()
            assert len(acts) == len(record["bottom"]) and all(close(a, h["activation"]) for a, h in zip(acts, record["bottom"]))
            assert page.locator(".bottom-hit figcaption", has_text="deconvnet").count() == 0  # projections are of the top hits
            glance = read(page, "canvas.glance.bottom")
            for hit in record["bottom"]:
                patch, inside = expected_patch(stored(tiny, hit), hit["box"], "zeros")
                got = read(page, f'.bottom-hit[data-bottom-rank="{hit["rank"]}"] canvas.patch')
                assert got.shape == patch.shape, (layer, hit)
                assert np.abs(got - striped(patch, inside)).max() <= DECODE_TOLERANCE, (layer, record["unit"], hit)
                border += int((~inside).any())
                # The glance grid: the same patch enlarged into its cell, as the layer view's cards draw it.
                assert_cell_shows(glance, hit["rank"], patch, inside, (cell, gap, cols), (layer, record["unit"]))
    assert border > 0


def test_filters_and_sorts_follow_the_records_and_stay_across_layers(watched: Page, tiny: Path) -> None:
    page = watched.open("#1", view="layer")
    units = records(tiny, "1")["units"]
    filters = {
        "dead": lambda s: s["dead"],
        "always_on": lambda s: s["always_on"],
        "selective": lambda s: s["selectivity"] is not None and s["selectivity"] >= 0.5,
        "labelled": lambda s: s["label"] is not None and s["label"]["confidence"] in ("high", "medium"),
    }
    assert shown_units(page) == [u["unit"] for u in units]
    for name, keep in filters.items():
        page.select_option("#filter", name)
        expected = [u["unit"] for u in units if keep(u["stats"])]
        assert shown_units(page) == expected and expected, name
        assert page.locator("#filter option:checked").inner_text().endswith(f"({len(expected)})")
    page.select_option("#filter", "dead")
    assert shown_units(page) == [0] and page.locator('.card[data-unit="0"] .badge').text_content() == "dead"
    page.select_option("#filter", "all")

    def by(layer_units, key, ascending=False):
        have = [u for u in layer_units if key(u["stats"]) is not None]
        none = [u["unit"] for u in layer_units if key(u["stats"]) is None]
        return [u["unit"] for u in sorted(have, key=lambda u: ((1 if ascending else -1) * key(u["stats"]), u["unit"]))] + none

    selectivity = lambda s: s["selectivity"]
    page.select_option("#sort", "selectivity")
    assert shown_units(page) == by(units, selectivity)
    assert page.locator(".card .card-stat").first.text_content() == f"selectivity {num2(selectivity(units[by(units, selectivity)[0]]['stats']))}"
    page.click("#sort-direction")
    assert shown_units(page) == by(units, selectivity, ascending=True)
    page.click("#sort-direction")
    for value, key in (("mean", lambda s: s["mean"]), ("firing_rate", lambda s: s["firing_rate"]), ("purity", lambda s: s["purity"]),
                       ("agreement", lambda s: s["label"] and s["label"]["purity"]), ("max", lambda s: s["max"])):
        page.select_option("#sort", value)
        assert shown_units(page) == by(units, key), value
    # Every card names its unit's suggested label.
    names = dict(zip(shown_units(page), page.locator(".card .card-label").evaluate_all(TEXTS)))
    assert names == {u["unit"]: u["stats"]["label"]["name"] if u["stats"]["label"] else "no label" for u in units}

    # The choice stays on the next layer; the unit view steps through the filtered order.
    page.select_option("#sort", "selectivity")
    page.select_option("#filter", "selective")
    page.keyboard.press("]")
    wait_until(page, "location.hash === '#2' && document.querySelector('main[data-view=layer] h1').textContent === '2'")
    assert page.locator("#sort").input_value() == "selectivity" and page.locator("#filter").input_value() == "selective"
    deeper = records(tiny, "2")["units"]
    expected = [u for u in by(deeper, selectivity) if filters["selective"](deeper[u]["stats"])]
    assert shown_units(page) == expected
    page.keyboard.press("[")
    wait_until(page, "location.hash === '#1' && document.querySelector('main[data-view=layer] h1').textContent === '1'")
    order = shown_units(page)
    assert order == [u for u in by(units, selectivity) if filters["selective"](units[u]["stats"])] and len(order) >= 2
    page.click(f'.card[data-unit="{order[0]}"]')
    page.wait_for_selector('main[data-view="unit"]')
    assert f"1 of {len(order)} selective ≥ 0.5 by selectivity, highest first" in page.locator(".step").inner_text()
    page.keyboard.press("j")
    wait_until(page, f"location.hash === '#1/{order[1]}'")


def test_summaries_over_depth_and_in_the_layer_header(watched: Page, tiny: Path) -> None:
    manifest = manifest_of(tiny)
    page = watched.open()
    rows = page.locator(".depth-table tbody tr")
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.layer)") == [layer["name"] for layer in manifest["layers"]]
    for row, layer in zip(rows.all(), manifest["layers"]):
        s = layer["summary"]
        cells = row.locator("td").all_inner_texts()
        assert [c.strip() for c in cells] == [
            layer["name"], str(layer["units"]), pct(s["dead"]), pct(s["always_on"]), pct(s["firing_rate"]),
            num2(s["selectivity"]), pct(s["purity"]), pct(s["label_agreement"]), f"{s['confident_labels']} of {layer['units']}"]
    assert manifest["statistics_figure"] == "statistics.png"
    wait_until(page, "(document.querySelector('img.statistics-figure') || {}).naturalWidth > 0")
    page.click('.depth-table a:text-is("1")')
    page.wait_for_selector('main[data-view="layer"]')
    summary = page.locator(".layer-summary").inner_text()
    s = manifest["layers"][1]["summary"]
    for part in (f"{pct(s['dead'])} dead", f"{pct(s['always_on'])} always on", f"{num2(s['selectivity'])} selectivity",
                 f"{pct(s['purity'])} purity", f"{pct(s['label_agreement'])} label agreement", f"{s['confident_labels']} of 6 labelled"):
        assert part in summary, (part, summary)


def test_class_names_from_the_data_are_text(watched: Page, tiny: Path) -> None:
    unit = next(u for u in records(tiny, "1")["units"] if u["stats"]["label"] and u["stats"]["label"]["name"] == HOSTILE)
    page = watched.open(f"#1/{unit['unit']}", view="unit")
    assert page.locator(".unit-label .label-name").inner_text() == HOSTILE
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.locator(".unit-label").inner_html()
    assert HOSTILE in page.locator(".classes .hist-label").all_inner_texts()
    assert HOSTILE in page.locator(".hit .hit-label b").all_inner_texts()
    assert any(HOSTILE in p for p in page.locator(".hit-path").all_inner_texts())
    page.goto(watched.base_url + "#1")
    page.wait_for_selector('main[data-view="layer"]')
    assert HOSTILE in page.locator(".card .card-label").evaluate_all(TEXTS)
    assert page.locator(".card-label").evaluate_all("ls => ls.every(l => l.children.length === 0)")
    # check_clean (fixture): no img[src=x], no dialog (alert), no page error, nothing fetched from elsewhere


def test_records_in_an_unknown_layout_are_refused_with_a_message(browser, tiny: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny, tmp_path / "atlas")
    script = copy / "layers/0/hits.js"
    head, body, tail = script.read_text().split("\n", 2)
    stored = json.loads(body)
    stored["hit_fields"] = stored["hit_fields"][::-1]  # a layout this viewer does not know
    script.write_text("\n".join([head, json.dumps(stored), tail]))
    page = Page(browser, copy.as_uri() + "/index.html")
    page.open("#0", view="missing")
    assert "not in a layout this viewer reads" in page.page.locator("main .error").inner_text()
    page.open("#1", view="layer")  # the other layers still show
    page.page.close()


def test_statistics_figure_missing_or_not_listed(browser, tiny: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny, tmp_path / "atlas")
    (copy / "statistics.png").unlink()  # listed, but not there: the figure goes, the table stays
    page = Page(browser, copy.as_uri() + "/index.html")
    page.open()
    wait_until(page.page, "!document.querySelector('figure.statistics')")
    assert page.page.locator(".depth-table tbody tr").count() == 3
    manifest = manifest_of(copy)
    del manifest["statistics_figure"]  # a version 3 atlas from before the figure
    (copy / "manifest.json").write_text(json.dumps(manifest))
    write_viewer(copy)
    page.requests.clear()
    page.open()
    assert page.page.locator(".depth-table tbody tr").count() == 3 and page.page.locator("figure.statistics").count() == 0
    assert not any("statistics.png" in url for url in page.requests)
    page.check_clean("file://")
    page.page.close()


def test_version_2_atlas_without_statistics_renders_cleanly(browser, tmp_path: Path) -> None:
    root = make_synthetic_atlas(tmp_path / "v2", [("features.0", 5, 4, 4)])
    manifest = manifest_of(root)
    manifest["version"], manifest["render"]["grids"] = 2, True
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "overview.png").write_bytes(rank_grid_png(3, 3, 16, 2, False))
    write_viewer(root)
    page = Page(browser, root.as_uri() + "/index.html")
    home = page.open()
    assert home.locator(".depth-table").count() == 0 and home.locator("figure.statistics").count() == 0
    home.goto(page.base_url + "#features.0")
    home.wait_for_selector('main[data-view="layer"]')
    assert home.locator("#sort option").all_inner_texts() == ["unit index", "strongest activation", "class selectivity"]
    assert home.locator("#filter").count() == 0 and home.locator(".layer-summary").count() == 0
    assert home.locator(".card-label").count() == 0 and home.locator(".card-foot").count() == 5
    home.goto(page.base_url + "#features.0/3")
    home.wait_for_selector('main[data-view="unit"]')
    wait_until(home, "[...document.querySelectorAll('canvas.patch')].every(c => c.dataset.drawn === '1')")
    assert home.locator(".hit").count() == 9 and home.locator(".histogram").count() == 1
    assert home.locator(".unit-stats, section.bottom, .bottom-hit, .unit-label, .badge").count() == 0
    assert "selectivity" in home.locator(".unit-facts").inner_text()
    page.check_clean("file://")
    assert page.console == []
    home.close()
