"""open_atlas reads back what the scan computed, cuts the patches the atlas describes, shows units
inline with every data string escaped, and reads a layer's hits only when the layer is used.

The atlas is written by ``make_atlas``; the expectations come from an independent call of
``scan`` on the same pixels (loaded and normalised here, not by convscope's data pipeline) and
from crops of the stored images done with numpy.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import convscope
from convscope.atlas.format import read_hits
from convscope.errors import AtlasError, ConvscopeError
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess
from convscope.notebook import Hit, Table, open_atlas
from convscope.notebook.html import esc
from convscope.pipeline import make_atlas
from convscope.scan.scan import scan

SIDE, COUNT, K = 12, 14, 4
MEAN, STD = (0.2, 0.4, 0.6), (0.25, 0.25, 0.25)
FILL = tuple(round(255 * m) for m in MEAN)
HOSTILE = "<script>alert(1)</script>"
LAYERS = ("0", "3")


def tiny_net() -> nn.Module:
    """conv 3x3 (pad 1) -> ReLU -> 2x2 max pool -> conv 3x3 (pad 1): fields 3 s1 o-1 and 8 s2 o-3."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 5, 3, padding=1)).eval()


def write_images(folder: Path) -> tuple[list[str], list[int]]:
    """Smooth random images (JPEG keeps them close); even ones are class HOSTILE, odd ones 'plain & simple'."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(4)
    names, labels = [], []
    for i in range(COUNT):
        small = rng.integers(40, 216, (2, 2, 3), dtype=np.uint8)
        pixels = np.asarray(Image.fromarray(small).resize((SIDE, SIDE), Image.Resampling.BILINEAR))
        name = f"img&{i:02d}.png"
        Image.fromarray(pixels).save(folder / name)
        names.append(name)
        labels.append(i % 2)
    return names, labels


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("notebook")
    names, labels = write_images(root / "images")
    table = root / "labels.csv"
    classes = [HOSTILE, "plain & simple"]  # sorted: '<' before 'p'
    table.write_text("path,label\n" + "".join(f'{n},"{classes[c]}"\n' for n, c in zip(names, labels)))
    preprocess = Preprocess(input_size=(SIDE, SIDE), resize=None, mean=MEAN, std=STD)
    out = make_atlas(
        Network(tiny_net(), "tiny", preprocess), root / "images", root / "atlas", layers=list(LAYERS), k=K,
        projection="guided", labels=table, progress=False,
    )
    return out, root / "images", names, labels


@pytest.fixture(scope="module")
def scanned(built):
    """The same scan, called independently on pixels loaded and normalised here."""
    _, folder, names, labels = built
    pixels = torch.from_numpy(np.stack([np.asarray(Image.open(folder / n).convert("RGB")) for n in sorted(names)])).permute(0, 3, 1, 2)
    order = [names.index(n) for n in sorted(names)]
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    batches = [(pixels[s : s + 5], torch.arange(s, min(s + 5, COUNT)), torch.ones(len(pixels[s : s + 5]), dtype=torch.bool), [""] * 5) for s in range(0, COUNT, 5)]
    result = scan(tiny_net(), [("0", 4), ("3", 5)], batches, lambda p: (p.float() / 255 - mean) / std, k=K,
                  labels=[labels[i] for i in order], classes=2, progress=False)
    return result, sorted(names)


def test_hits_bottom_and_statistics_equal_an_independent_scan(built, scanned):
    result, paths = scanned
    atlas = open_atlas(built[0])
    assert atlas.layers == LAYERS and atlas.class_names == (HOSTILE, "plain & simple") and atlas.version == 5
    for name in LAYERS:
        layer, expected = atlas[name], result.layers[name]
        stats = layer.stats
        assert len(layer) == layer.units == expected.topk.values.shape[0]
        for unit in layer:
            u = unit.index
            assert [h.image for h in unit.hits] == [paths[i] for i in expected.topk.images[u].tolist()]
            np.testing.assert_allclose([h.activation for h in unit.hits], expected.topk.values[u].numpy(), rtol=1e-5, atol=1e-5)
            positions = expected.topk.positions[u].tolist()
            assert [(h.row, h.col) for h in unit.hits] == [divmod(p, expected.cols) for p in positions]
            assert [h.image for h in unit.bottom] == [paths[i] for i in expected.bottom.images[u].tolist()]
            np.testing.assert_allclose([h.activation for h in unit.bottom], expected.bottom.values[u].numpy(), rtol=1e-5, atol=1e-5)
            assert unit.bottom_kind == ("min" if bool(expected.bottom_min[u]) else "max")
            assert unit.stats["firing_rate"] == pytest.approx(expected.moments.firing_rate[u])
        np.testing.assert_allclose(stats["quantiles"], expected.distribution.quantiles, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(stats["quantile_levels"], expected.distribution.qs)
        np.testing.assert_allclose(stats["firing_rate"], expected.moments.firing_rate)
        np.testing.assert_allclose(stats["mean"], expected.moments.mean, rtol=1e-5, atol=1e-6)
        assert stats["histogram"].tolist() == expected.distribution.counts.tolist()
        assert stats["dead"].tolist() == expected.moments.dead.tolist()
        assert stats["quantiles"].shape == (layer.units, len(layer.quantile_levels)) and not stats["quantiles"].flags.writeable
        table = layer.table()
        assert isinstance(table, Table) and table.rows == layer.units
        np.testing.assert_allclose(table["q0.5"], stats["quantiles"][:, list(stats["quantile_levels"]).index(0.5)])


def stored(atlas: Path, hit: Hit) -> np.ndarray:
    return np.asarray(Image.open(atlas / hit.image_file).convert("RGB"))


def expected_patch(image: np.ndarray, hit: Hit) -> np.ndarray:
    """The box cut by numpy: past the border the mean colour under grey stripes where (row + col) % 4 == 0."""
    top, left, bottom, right = hit.box
    padded = np.stack([np.pad(image[..., c], SIDE, constant_values=FILL[c]) for c in range(3)], axis=-1)
    patch = padded[top + SIDE : bottom + SIDE, left + SIDE : right + SIDE].copy()
    rows, cols = np.indices(patch.shape[:2])
    outside = ~(((rows + top >= 0) & (rows + top < SIDE)) & ((cols + left >= 0) & (cols + left < SIDE)))
    patch[outside & ((rows + cols) % 4 == 0)] = (96, 96, 96)
    return patch


def test_patches_are_the_boxes_of_the_stored_images(built):
    root, folder, _, _ = built
    atlas = open_atlas(root)
    interior = border = 0
    for name in LAYERS:
        for unit in atlas[name]:
            for hits, patches in ((unit.hits, unit.patches()), (unit.bottom, unit.bottom_patches())):
                assert len(patches) == len(hits)
                for hit, patch in zip(hits, patches):
                    got = np.asarray(patch)
                    assert got.shape == (hit.box.height, hit.box.width, 3)
                    assert np.array_equal(got, expected_patch(stored(root, hit), hit)), (name, unit.index, hit)
                    top, left, bottom, right = hit.box
                    if top >= 0 and left >= 0 and bottom <= SIDE and right <= SIDE:
                        interior += 1  # and the source image is close (the stored JPEG subsamples colour)
                        source = np.asarray(Image.open(folder / hit.image).convert("RGB"))[top:bottom, left:right]
                        difference = np.abs(got.astype(int) - source)
                        assert difference.mean() <= 6 and difference.max() <= 20
                    else:
                        border += 1
    assert interior > 0 and border > 0
    projection = atlas["3"][0].projections()
    assert projection is not None and projection.size[0] > 0


def images_of(html: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(src))).convert("RGB")) for src in re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)]


def test_unit_card_shows_every_patch_and_escapes_data(built):
    atlas = open_atlas(built[0])
    unit = atlas["3"][1]
    html = unit._repr_html_()
    assert html.count("<img") == len(unit.hits) + 1 + len(unit.bottom)  # patches, the projection grid, bottom patches
    assert "<script" not in html and "javascript:" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # class bars and hit labels
    assert "plain &amp; simple" in html and "img&amp;" in html and "img&0" not in html
    assert unit.label is not None and f"suggested label: {esc(unit.label.text)}" in html
    assert "<svg" in html and html.count("<rect") == len(unit.stats["histogram"])
    shown = images_of(html)[: len(unit.hits)]
    for picture, hit, patch in zip(shown, unit.hits, unit.patches()):
        factor = picture.shape[0] // hit.box.height
        assert factor >= 2 and picture.shape[:2] == (hit.box.height * factor, hit.box.width * factor)
        inside = expected_patch(np.zeros((SIDE, SIDE, 3), np.uint8) + 1, hit) == 1  # True on image pixels
        assert np.array_equal(picture[::factor, ::factor][inside], np.asarray(patch)[inside])
    layer_html = atlas["0"]._repr_html_()
    assert layer_html.count("<img") == atlas["0"].units and "<script" not in layer_html
    few = atlas["0"].to_html(limit=2)
    assert few.count("<img") == 2 and "2 hidden" in few
    assert "<script" not in atlas._repr_html_() and "<table" in atlas._repr_html_()


def test_layers_read_their_hits_only_when_used(built, tmp_path):
    copy = tmp_path / "atlas"
    shutil.copytree(built[0], copy)
    atlas = open_atlas(copy)
    (copy / "layers/0/hits.js").unlink()
    first, second = atlas["0"], atlas[1]
    assert first is atlas[0] and second is atlas["3"] and not first.loaded and not second.loaded
    assert len(first) == 4 and first.has_stats and atlas.summary()["units"].tolist() == [4, 5]
    assert "<table" in atlas._repr_html_()
    assert len(second.stats["mean"]) == 5 and second.loaded
    with pytest.raises(AtlasError, match="no hits file") as error:
        first.stats
    assert error.value.hint and "rebuild" in error.value.hint
    with pytest.raises(AtlasError, match="no hits file"):
        first[0]


def test_an_older_atlas_has_patches_but_no_statistics(built, tmp_path):
    copy = tmp_path / "atlas"
    shutil.copytree(built[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["version"] = 2
    for entry in manifest["layers"]:  # as version 2 stored it: a hits.json per layer, a dict per hit
        del entry["summary"]
        hits = read_hits(copy, entry["name"])
        for key in ("quantile_levels", "exact"):
            del hits[key]
        for record in hits["units"]:
            for key in ("stats", "bottom", "bottom_kind"):
                del record[key]
        (copy / entry["hits"]).unlink()
        entry["hits"] = entry["hits"].removesuffix(".js") + ".json"
        (copy / entry["hits"]).write_text(json.dumps(hits))
    (copy / "manifest.json").write_text(json.dumps(manifest))
    atlas = open_atlas(copy)
    layer, unit = atlas["3"], atlas["3"][0]
    assert not layer.has_stats and not unit.has_stats and len(unit.patches()) == K
    for ask in (lambda: layer.stats, lambda: layer.summary, lambda: unit.stats, lambda: unit.bottom, lambda: unit.label):
        with pytest.raises(AtlasError, match="format version 2"):
            ask()
    assert np.isnan(atlas.summary()["dead"]).all()
    html = unit._repr_html_()
    assert html.count("<img") == K + 1 and "keeps no statistics" in html and "<svg" not in html
    assert layer._repr_html_().count("<img") == layer.units


def test_errors_say_what_to_do(built, tmp_path):
    with pytest.raises(AtlasError, match="no manifest.json") as error:
        open_atlas(tmp_path)
    assert error.value.hint
    with pytest.raises(AtlasError, match="no atlas folder"):
        open_atlas(tmp_path / "missing")
    atlas = open_atlas(built[0])
    with pytest.raises(AtlasError, match="no layer 'features.9'") as error:
        atlas["features.9"]
    assert "0, 3" in error.value.hint
    with pytest.raises(AtlasError, match="no unit 9"):
        atlas["0"][9]
    assert atlas["0"][-1].index == 3
    with pytest.raises(ConvscopeError, match="no statistics column 'colour'"):
        atlas["0"].filter(colour="red")
    layer = atlas["3"]
    dead = layer.filter(dead=True)
    assert [u.index for u in dead] == np.flatnonzero(layer.stats["dead"]).tolist()
    strong = layer.filter(firing_rate=lambda rate: rate > 0.5, dead=False)
    assert [u.index for u in strong] == np.flatnonzero((layer.stats["firing_rate"] > 0.5) & ~layer.stats["dead"]).tolist()


def test_tables_become_dataframes_only_with_pandas(built):
    table = open_atlas(built[0]).summary()
    assert table.rows == 2 and list(table)[:3] == ["layer", "type", "units"]
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ConvscopeError, match="pandas is not installed") as error:
            table.to_pandas()
        assert "pip install pandas" in error.value.hint
    else:
        assert table.to_pandas().shape == (2, len(table))


def test_open_atlas_is_public():
    assert convscope.open_atlas is open_atlas and "open_atlas" in convscope.__all__
