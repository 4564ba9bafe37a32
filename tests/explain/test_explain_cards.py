"""The atlas's cards beside an explanation: the figure's patch panel, the notebook display."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convscope import explain, make_atlas, read_hits
from convscope.explain.cards import atlas_cards, unit_cards
from convscope.explain.display import explanation_html
from convscope.explain.figure import explanation_figure
from convscope.notebook.html import esc
from tiny_models import tiny_alexnet, write_images

TINY = str(Path(__file__).resolve().parents[1] / "tiny_models.py") + ":tiny_alexnet"
LAYERS = ["features.0", "features.3"]


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("cards")
    write_images(root / "photos", 12, size=24, classes=("cat<&>", "dog"))
    weights = root / "tiny.pth"
    torch.save(tiny_alexnet().state_dict(), weights)
    out = root / "atlas"
    make_atlas(TINY, root / "photos", out, weights=weights, layers=LAYERS, k=4, preprocess=None, progress=False, workers=0)
    return {"atlas": out, "image": root / "photos" / "dog" / "img001.png"}


def test_a_card_is_the_units_top_hits_cut_from_the_stored_images(atlas):
    hits = read_hits(atlas["atlas"], "features.3")
    unit = 5
    record = next(r for r in hits["units"] if r["unit"] == unit)
    cards = unit_cards(atlas["atlas"], [("features.3", unit), ("features.3", unit)], cell=16)
    assert list(cards) == [("features.3", unit)]
    card = cards["features.3", unit]
    assert card.top_activation == pytest.approx(record["hits"][0]["activation"])
    # k = 4: a 2 x 2 grid of 16-pixel cells, 1 pixel apart
    assert card.patches.shape == (33, 33, 3)
    # Independent cut of the first hit: PIL crops the stored image at the hit's box (inside the image here).
    first = record["hits"][0]
    top, left, bottom, right = first["box"]
    stored = Image.open(atlas["atlas"] / first["image_file"]).convert("RGB")
    assert top >= 0 and left >= 0 and bottom <= stored.height and right <= stored.width  # no padding to draw
    side = max(bottom - top, right - left)
    crop = stored.crop((left, top, right, bottom))
    scale = 16 / side
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    expected = np.asarray(crop.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX))
    y, x = (16 - size[1]) // 2, (16 - size[0]) // 2
    assert np.array_equal(card.patches[y : y + size[1], x : x + size[0]], expected)
    assert card.label is not None and card.label.name in ("cat<&>", "dog")


def test_cards_follow_the_explanation_and_need_its_atlas(atlas):
    result = explain(atlas["atlas"], atlas["image"], top=3)
    assert result.atlas == atlas["atlas"].absolute()
    cards = atlas_cards(result, cell=8)
    assert set(cards) == {(layer.layer, u.unit) for layer in result.layers for u in layer.units}
    from dataclasses import replace

    assert atlas_cards(replace(result, atlas=None)) == {}


def test_the_figure_gains_a_patch_panel_per_unit(atlas):
    result = explain(atlas["atlas"], atlas["image"], top=2, layers=["features.3"])
    plain = explanation_figure(result, side=64)
    cards = atlas_cards(result)
    with_cards = explanation_figure(result, side=64, cards=cards)
    assert with_cards.shape[1] >= plain.shape[1] and with_cards.shape[0] > plain.shape[0] + 64
    # The first unit's panel sits under its two maps: find the card's grid, fitted to 64 px, in the figure.
    card = cards["features.3", result.layers[0].units[0].unit].patches
    fitted = np.asarray(Image.fromarray(card).resize((64, 64), Image.Resampling.BILINEAR))
    hits = [(y, x) for y in range(with_cards.shape[0] - 63) for x in range(0, 8) if np.array_equal(with_cards[y : y + 64, x : x + 64], fitted)]
    assert hits, "the unit's patch grid is not in the figure"


def test_top_classes_agree_with_torch_topk(atlas):
    result = explain(atlas["atlas"], atlas["image"], top=1)
    values, indices = torch.topk(result.probabilities.double(), 3)
    found = result.top_classes(3)
    assert [c for c, _, _ in found] == indices.tolist()
    assert [p for _, _, p in found] == pytest.approx(values.tolist())
    assert all(name == result.name_of(c) for c, name, _ in found)
    assert result.name_of(10**6) == "class 1000000"


def test_the_notebook_display_escapes_names_and_shows_every_unit(atlas):
    from dataclasses import replace

    result = explain(atlas["atlas"], atlas["image"], top=3)
    hostile = replace(result, class_name="<script>alert(1)</script>",
                      class_names=tuple("<b>x</b> & co" for _ in range(len(result.probabilities))))
    html = hostile._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;x&lt;/b&gt; &amp; co" in html
    tiles = sum(len(layer.units) for layer in result.layers)
    assert html.count('alt="conditional heatmap of unit') == tiles
    assert html.count('top patches in the atlas" title=') == tiles
    labels = [card.label.name for card in atlas_cards(result).values() if card.label is not None]
    assert labels and all(f">{esc(name)}</span>" in html for name in labels)
    bare = explanation_html(replace(result, atlas=None))
    assert "top patches in the atlas" not in bare and bare.count('alt="activation map of unit') == tiles
