"""The viewer shows each unit's optimised image (atlas --featurevis) beside its patches, with its ratio."""

from __future__ import annotations


import pytest

from convscope.cli import main
from convscope.atlas.format import read_hits
from test_viewer_page import wait_until
from tiny_models import write_images

pytestmark = pytest.mark.browser

COLOUR_NET = ["tiny_models:ColourNet", "--input-size", "16", "--mean", "0", "0", "0", "--std", "1", "1", "1"]


@pytest.fixture(scope="module")
def atlases(tmp_path_factory):
    root = tmp_path_factory.mktemp("fv")
    write_images(root / "images", 6, classes=("a", "b"))
    for name, extra in (("with", ["--featurevis", "8"]), ("without", [])):
        assert main(["atlas", *COLOUR_NET, str(root / "images"), "--out", str(root / name), "-k", "4", "-q", *extra]) == 0
    return root


def loaded_images(page, selector: str) -> list[str]:
    return page.evaluate(f"Array.from(document.querySelectorAll({selector!r})).filter(i => i.complete && i.naturalWidth > 0).map(i => i.getAttribute('src'))")


def test_unit_and_layer_views_show_the_optimised_image(atlases, browser):
    record = read_hits(atlases / "with", "conv")["units"][1]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((atlases / "with/index.html").as_uri() + "#conv/1")
    wait_until(page, lambda: len(loaded_images(page, "figure.featurevis img")) == 1)
    assert loaded_images(page, "figure.featurevis img") == ["layers/conv/units/0001-featurevis.png"]
    caption = page.inner_text("figure.featurevis figcaption")
    assert f"{record['featurevis']['ratio']:.2f}× the activation of its top hit" in caption
    page.goto((atlases / "with/index.html").as_uri() + "#conv")
    wait_until(page, lambda: len(loaded_images(page, "img.grid.featurevis")) == 3)  # one per unit's card
    page.goto((atlases / "without/index.html").as_uri() + "#conv/1")
    wait_until(page, "document.querySelector('main').dataset.view === 'unit'")
    assert page.query_selector("figure.featurevis") is None and page.query_selector("img.featurevis") is None
    assert errors == []
    page.close()
