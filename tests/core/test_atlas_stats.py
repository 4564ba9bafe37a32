"""The statistics an atlas stores, end to end through the CLI, against numbers computed directly from the images."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from convscope.cli import main
from convscope.atlas.format import read_hits

COLOUR_NET = ["tiny_models:ColourNet", "--input-size", "8", "--mean", "0", "0", "0", "--std", "1", "1", "1"]


@pytest.fixture
def images(tmp_path):
    """18 images: 6 reddish 'apple_*', 6 greenish 'leaf_*', 6 with no red at all 'sea_*' (flat folder)."""
    root = tmp_path / "flat"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(18):
        kind = ("apple", "leaf", "sea")[i % 3]
        pixels = rng.integers(0, 60, (8, 8, 3), dtype=np.uint8)
        if kind == "apple":
            pixels[..., 0] += 150
        elif kind == "leaf":
            pixels[..., 1] += 150
        else:
            pixels[..., 0] = 0
        Image.fromarray(pixels).save(root / f"{kind}_{i:02d}.png")
    return root


def direct_maxima(root):
    """Per image (sorted by name) the strongest value of each ColourNet unit = each channel's max in [0, 1]."""
    files = sorted(root.glob("*.png"))
    return files, np.stack([np.asarray(Image.open(f), dtype=np.float64).reshape(-1, 3).max(axis=0) / 255 for f in files])


def test_stats_from_file_names_match_a_direct_computation(images, tmp_path, capsys):
    out = tmp_path / "atlas"
    assert main(["atlas", *COLOUR_NET, str(images), "--out", str(out), "-k", "4", "-q", "--labels-from-name", r"^([a-z]+)_"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"]["labels"] == ["apple", "leaf", "sea"]
    hits = read_hits(out, "conv")
    files, maxima = direct_maxima(images)
    names = [f.name.split("_")[0] for f in files]
    levels = hits["quantile_levels"]
    assert hits["exact"] is True
    for unit, record in enumerate(hits["units"]):
        stats = record["stats"]
        np.testing.assert_allclose(stats["quantiles"], np.quantile(maxima[:, unit], levels), atol=1e-6)
        assert stats["mean"] == pytest.approx(maxima[:, unit].mean(), abs=1e-6)
        assert stats["firing_rate"] == pytest.approx((maxima[:, unit] > 0).mean())
        assert sum(stats["histogram"]) == len(files)
        means = {c: maxima[[n == c for n in names], unit].mean() for c in ("apple", "leaf", "sea")}
        best = max(means, key=means.get)
        assert manifest["dataset"]["labels"][stats["top_class"]] == best
        rest = np.mean([v for c, v in means.items() if c != best])
        assert stats["selectivity"] == pytest.approx((means[best] - rest) / (means[best] + rest), abs=1e-6)
        top = [h["image"] for h in record["hits"]]
        assert stats["purity"] == pytest.approx(np.mean([t.split("_")[0] == best for t in top]))
    red = hits["units"][0]
    assert red["stats"]["label"]["name"] == "apple" and red["stats"]["label"]["agreeing"] == 4
    assert red["stats"]["dead"] is False and red["stats"]["always_on"] is False  # the sea images have no red at all
    assert red["bottom_kind"] == "max" and all(h["image"].startswith("sea_") for h in red["bottom"])
    assert {h["activation"] for h in red["bottom"]} == {0.0}
    assert manifest["statistics_figure"] == "statistics.png" and (out / "statistics.png").stat().st_size > 0
    summary = manifest["layers"][0]["summary"]
    assert summary["dead"] == 0.0 and summary["always_on"] == pytest.approx(2 / 3)


def test_labels_from_a_csv_and_bad_label_input(images, tmp_path, capsys):
    table = tmp_path / "labels.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        for path in sorted(images.glob("*.png")):
            writer.writerow([path.name, "red" if path.name.startswith("apple") else "other"])
    out = tmp_path / "atlas"
    assert main(["atlas", *COLOUR_NET, str(images), "--out", str(out), "-k", "4", "-q", "--labels", str(table)]) == 0
    assert json.loads((out / "manifest.json").read_text())["dataset"]["labels"] == ["other", "red"]

    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nnot_there.png,red\n")
    assert main(["atlas", *COLOUR_NET, str(images), "--out", str(tmp_path / "x"), "-q", "--labels", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("convscope: error:") == 1 and "not_there.png" in err
    assert main(["atlas", *COLOUR_NET, str(images), "--out", str(tmp_path / "x"), "-q", "--labels-from-name", "[a-z]+_"]) == 1
    assert "group" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_output_units_are_named_after_the_classes(images, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("red\ngreen\nblue\n")
    out = tmp_path / "atlas"
    assert main(["atlas", *COLOUR_NET, str(images), "--out", str(out), "-k", "4", "-q", "--class-names", str(names)]) == 0
    hits = read_hits(out, "conv")
    assert [u["class_name"] for u in hits["units"]] == ["red", "green", "blue"]
    assert json.loads((out / "manifest.json").read_text())["model"]["class_names"] == ["red", "green", "blue"]


def test_a_unit_constant_on_every_image_gets_no_label(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(12):
        pixels = rng.integers(0, 200, (8, 8, 3), dtype=np.uint8)
        pixels[..., 2] = 0  # the blue unit is 0 on every image: its top hits are ties in image order
        Image.fromarray(pixels).save(root / f"{('a', 'b')[i // 6]}_{i:02d}.png")  # the first six: class a
    out = tmp_path / "atlas"
    assert main(["atlas", *COLOUR_NET, str(root), "--out", str(out), "-k", "6", "-q", "--labels-from-name", r"^([a-z])_"]) == 0
    blue = read_hits(out, "conv")["units"][2]
    assert {h["label"] for h in blue["hits"]} == {"a"}  # six ties, all from the first class by image order ...
    assert blue["stats"]["label"] is None and blue["stats"]["purity"] is None  # ... which is no evidence
    assert blue["stats"]["dead"] is True
