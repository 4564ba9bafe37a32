"""`convscope atlas --featurevis`: every unit gets its optimised image and the ratio to its top dataset activation."""

import json

import numpy as np
from PIL import Image

from convscope.cli import main
from convscope.atlas.format import read_hits
from tiny_models import write_images

COLOUR_NET = ["tiny_models:ColourNet", "--input-size", "16", "--mean", "0", "0", "0", "--std", "1", "1", "1"]


def test_atlas_with_featurevis(tmp_path):
    write_images(tmp_path / "images", 6, classes=("a", "b"))
    out = tmp_path / "atlas"
    assert main(["atlas", *COLOUR_NET, str(tmp_path / "images"), "--out", str(out), "-k", "4", "-q", "--featurevis", "24"]) == 0
    hits = read_hits(out, "conv")
    for record in hits["units"]:
        unit = record["unit"]
        vis = record["featurevis"]
        top = record["hits"][0]["activation"]
        assert vis["ratio"] == vis["reached"] / top and vis["below_top"] == (vis["ratio"] < 1)
        picture = np.asarray(Image.open(out / f"layers/conv/units/{unit:04d}-featurevis.png"), dtype=float)
        centre = picture[picture.shape[0] // 2, picture.shape[1] // 2]
        # ColourNet's unit c is channel c: its optimised image has channel c at full brightness where
        # the unit looks (the other channels do not matter to it). The data already holds full-bright
        # pixels (top activation 1.0), which a sigmoid image approaches but never reaches exactly.
        assert centre[unit] >= 240, centre
        assert vis["ratio"] > 0.99
    assert Image.open(out / "overview.png").size[0] > 0
    # The notebook reads it back: the stored picture, the ratio on the card.
    from convscope import open_atlas

    unit = open_atlas(out)["conv"][0]
    stored = np.asarray(Image.open(out / "layers/conv/units/0000-featurevis.png").convert("RGB"))
    assert np.array_equal(np.asarray(unit.featurevis()), stored)
    card = unit.to_html()
    assert "optimised image" in card and f"{hits['units'][0]['featurevis']['ratio']:.2f}x the top hit" in card
    assert json.loads((out / "manifest.json").read_text())["featurevis"] == 24
