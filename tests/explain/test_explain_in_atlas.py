"""``convscope explain ATLAS IMAGE`` without --out: ATLAS/explain/<name>/, atomic, ours only, kept over a rebuild."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convscope import explain, make_atlas
from convscope.atlas.viewer import find_analyses
from convscope.cli import main
from convscope.errors import AtlasError, ConvscopeWarning
from convscope.explain import in_atlas
from convscope.explain.in_atlas import choose_names, safe_name, write_in_atlas
from convscope.explain.region import region_units
from convscope.explain.viewer_data import decode_map, maps_payload
from convscope.network.geometry import Box
from convscope.network.preprocess import Preprocess
from tiny_models import tiny_alexnet
from viewer.make_explained import LAYERS, SIDE, TINY, build_atlas


@pytest.fixture
def built(tmp_path) -> dict:
    return build_atlas(tmp_path)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), links as their target."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = os.readlink(path).encode()
        elif path.is_file():
            out[key] = path.read_bytes()
    return out


def _calls(atlas: Path) -> list[tuple[str, str]]:
    """(kind, folder) of the viewer's analyses data script."""
    text = (atlas / "viewer/data/analyses.js").read_text()
    return [(json.loads(line.split("(", 1)[1].split(",", 1)[0]), json.loads(line.split("JSON.parse('", 1)[1].rsplit("')", 1)[0].replace("\\x3c", "<").replace("\\x3e", ">").replace("\\x26", "&").replace("\\'", "'"))["folder"])
            for line in text.splitlines()]


def test_the_cli_writes_into_the_atlas_what_the_viewer_needs(built, capsys):
    atlas, image = built["atlas"], built["image"]
    assert main(["explain", str(atlas), str(image), "--top", "3"]) == 0
    folder = atlas / "explain" / "img000"
    assert "#/explain/img000" in capsys.readouterr().out
    record = json.loads((folder / "explanation.json").read_text())
    assert record["format"] == "convscope-explanation" and record["version"] == 2
    (entry,) = record["explanations"]
    assert entry["image"] == str(image) and entry["image_file"] == "image.png"
    direct = explain(atlas, image, top=3)
    # The stored image is the model-input frame, exactly.
    assert np.array_equal(np.asarray(Image.open(folder / "image.png").convert("RGB")), direct.image)
    # The top classes: the softmax's five largest, by an independent sort.
    order = np.argsort(-direct.probabilities.numpy(), kind="stable")[:5]
    assert [c["class"] for c in entry["top_classes"]] == order.tolist()
    assert [c["probability"] for c in entry["top_classes"]] == pytest.approx(direct.probabilities.numpy()[order].tolist())
    payload = (folder / "activations.js").read_text()
    maps = json.loads(payload.split("JSON.parse('", 1)[1].rsplit("')", 1)[0])
    for index, (layer, stored_layer) in enumerate(zip(direct.layers, entry["layers"])):
        assert stored_layer["layer"] == layer.layer and stored_layer["shape"] == list(layer.activation.shape)
        assert [u["unit"] for u in stored_layer["units"]] == [u.unit for u in layer.units]
        assert [u["share"] for u in stored_layer["units"]] == pytest.approx([u.share for u in layer.units], rel=1e-9)
        # Every unit's map, float16-rounded: the top units' maps within float16's relative error.
        decoded = decode_map(maps["layers"][index])
        assert torch.equal(decoded, layer.activation.half().float())
        for u in layer.units:
            assert torch.allclose(decoded[u.unit], u.activation_map, rtol=1e-3, atol=1e-6)
        # Each heatmap overlay: alpha = |smoothed heatmap| / its 99.5th percentile, colour by sign
        # (the smoothing recomputed with numpy: a mean over the 3 x 3 square inside the image).
        for u, stored_unit in zip(layer.units, stored_layer["units"]):
            rgba = np.asarray(Image.open(folder / stored_unit["heatmap_file"]))
            heat = u.heatmap.double().numpy()
            padded = np.pad(heat, 1)
            counts = np.pad(np.ones_like(heat), 1)
            sums = sum(padded[1 + dr : 1 + dr + heat.shape[0], 1 + dc : 1 + dc + heat.shape[1]] for dr in (-1, 0, 1) for dc in (-1, 0, 1))
            n = sum(counts[1 + dr : 1 + dr + heat.shape[0], 1 + dc : 1 + dc + heat.shape[1]] for dr in (-1, 0, 1) for dc in (-1, 0, 1))
            shown = sums / n
            scale = np.percentile(np.abs(shown), 99.5)
            assert stored_unit["heatmap_scale"] == pytest.approx(scale, rel=1e-4)
            assert np.abs(rgba[..., 3] - np.clip(np.abs(shown) / scale, 0, 1) * 255).max() <= 1.01
            assert (rgba[..., 0][shown > 1e-6 * scale] == 255).all() and (rgba[..., 2][shown < -1e-6 * scale] == 255).all()
    assert ("explanation", "explain/img000") in _calls(atlas)


def test_the_float16_maps_give_region_units_of_the_stored_values(built):
    result = explain(built["atlas"], built["image"], top=2)
    for layer, stored in zip(result.layers, maps_payload(result)["layers"]):
        rounded = decode_map(stored)
        for region in (Box(0, 0, 1, 1), Box(8, 8, 14, 14), Box(SIDE - 1, 3, SIDE, 9)):
            exact = region_units(layer.activation, layer.fields, region)
            from_stored = region_units(rounded, layer.fields, region)
            assert [u.unit for u in from_stored] == [u.unit for u in exact] or \
                sorted(u.unit for u in from_stored) == sorted(u.unit for u in exact)  # the same units; near-ties may swap
            assert {u.unit: u.activation for u in from_stored} == pytest.approx({u.unit: u.activation for u in exact}, rel=1e-3, abs=1e-6)


def test_a_failure_midway_leaves_the_atlas_as_it_was(built, monkeypatch):
    atlas = built["atlas"]
    before = _tree(atlas)
    written = []

    def broken(path, image):
        if written:
            raise OSError("disk full")
        written.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)

    explanation = explain(atlas, built["image"], top=2)
    monkeypatch.setattr(in_atlas, "write_png", broken)
    with pytest.raises(OSError, match="disk full"):
        write_in_atlas(atlas, [explanation], [str(built["image"])])
    assert written  # it had begun writing
    assert _tree(atlas) == before
    assert [p.name for p in (atlas / "explain").iterdir() if not p.name.endswith(".lock")] == []


def test_what_is_not_ours_is_refused_or_left_alone(built, tmp_path):
    atlas, image = built["atlas"], built["image"]
    outside = tmp_path / "outside"
    outside.mkdir()
    (atlas / "explain").symlink_to(outside, target_is_directory=True)
    with pytest.raises(AtlasError, match="symbolic link"):
        write_in_atlas(atlas, [explain(atlas, image, top=1)], [str(image)])
    assert main(["explain", str(atlas), str(image)]) == 1
    assert list(outside.iterdir()) == []
    (atlas / "explain").unlink()
    (atlas / "explain").write_text("mine")
    assert main(["explain", str(atlas), str(image)]) == 1
    assert (atlas / "explain").read_text() == "mine"
    (atlas / "explain").unlink()
    # A user's folder where the name would go is left alone: the explanation takes the next name.
    mine = atlas / "explain" / "img000"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    assert main(["explain", str(atlas), str(image), "--top", "1"]) == 0
    assert _tree(mine) == {"notes.txt": b"mine"}
    assert (atlas / "explain" / "img000-2" / "explanation.json").is_file()
    # The same image again replaces its folder; another image of the same stem gets another.
    assert main(["explain", str(atlas), str(image), "--top", "2"]) == 0
    assert sorted(p.name for p in (atlas / "explain").iterdir() if not p.name.startswith(".")) == ["img000", "img000-2"]
    record = json.loads((atlas / "explain" / "img000-2" / "explanation.json").read_text())
    assert len(record["explanations"][0]["layers"][0]["units"]) == 2
    # Not an atlas: refused before any work.
    with pytest.raises(AtlasError, match="no atlas"):
        in_atlas.explanations_home(tmp_path / "nothing")


def test_names_are_safe_unique_and_never_the_classes_folder(tmp_path):
    assert safe_name("a/b/n02085620_Chihuahua.jpg") == "n02085620_Chihuahua"
    assert safe_name("x/<b>alert(1)&.png") == "b-alert-1"
    assert safe_name("../..jpg") == "image" and safe_name("é.png") == "image"
    assert choose_names(tmp_path, ["a/dog.jpg", "b/dog.jpg", "classes.png", "c/dog.png"]) == ["dog", "dog-2", "classes-2", "dog-3"]


def test_an_atlas_rebuild_keeps_explanations_of_the_same_model_and_drops_others(built):
    atlas, root = built["atlas"], built["root"]
    assert main(["explain", str(atlas), str(built["image"]), "--top", "2"]) == 0
    kept = _tree(atlas / "explain" / "img000")
    options = dict(layers=list(LAYERS), k=2, preprocess=Preprocess(input_size=(SIDE, SIDE), resize=SIDE), progress=False, workers=0)
    make_atlas(TINY, root / "photos", atlas, weights=built["weights"], **options)
    assert _tree(atlas / "explain" / "img000") == kept
    assert ("explanation", "explain/img000") in [(k, f) for k, f, _ in find_analyses(atlas)]
    assert ("explanation", "explain/img000") in _calls(atlas)
    other = root / "other.pth"
    state = tiny_alexnet().state_dict()
    state["classifier.bias"] = state["classifier.bias"] + 1
    torch.save(state, other)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_atlas(TINY, root / "photos", atlas, weights=other, **options)
    assert any(issubclass(w.category, ConvscopeWarning) and "explain/img000" in str(w.message) for w in caught)
    assert not (atlas / "explain").exists()
    assert _calls(atlas) == []


def test_out_still_writes_a_standalone_folder(built, tmp_path):
    out = tmp_path / "standalone"
    assert main(["explain", str(built["atlas"]), str(built["image"]), "--top", "2", "--out", str(out)]) == 0
    record = json.loads((out / "explanation.json").read_text())
    assert record["version"] == 2 and (out / "explanation.png").is_file() and not (out / "activations.js").exists()
    assert len(record["explanations"][0]["top_classes"]) == 4  # the net has 4 classes
    assert not (built["atlas"] / "explain").exists()
