"""``convscope circuits ATLAS`` and ``convscope atlas ... --circuits``: the folder written into the
atlas, its numbers those of the Python API and of the atlas's hits, one clear error and nothing
written on bad input, and circuits kept when the same model's atlas is rebuilt."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from circuits_fixtures import LAYERS, TINY, build_tiny_atlas
from convscope import make_atlas
from convscope.atlas.circuits_data import read_circuits
from convscope.atlas.format import read_hits
from convscope.circuits.api import make_circuits
from convscope.cli import main
from convscope.errors import ConvscopeWarning


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return build_tiny_atlas(tmp_path_factory.mktemp("circuits-command"))


@pytest.fixture()
def atlas(tiny, tmp_path, monkeypatch) -> Path:
    return Path(shutil.copytree(tiny["atlas"], tmp_path / "atlas"))


def test_the_command_writes_the_circuits_into_the_atlas(atlas, capsys):
    assert main(["circuits", str(atlas), "--top", "3", "-q"]) == 0
    out = capsys.readouterr().out
    record = json.loads((atlas / "circuits" / "circuits.json").read_text())
    assert [(p["layer"], p["below"]) for p in record["pairs"]] == [("features.3", "features.0"), ("classifier", "features.3")]
    assert record["top"] == 3 and record["hits"] == 2 and record["ablation"] is None
    assert record["model"] == json.loads((atlas / "manifest.json").read_text())["model"]
    assert [(p["units"], p["below_units"]) for p in record["pairs"]] == [(6, 4), (4, 6)]
    found = read_circuits(atlas)
    for pair, (layer, _) in zip(record["pairs"], found.pairs):
        hits = read_hits(atlas, layer)["units"]
        assert found.inputs(layer).hits.tolist() == [len(u["hits"][:2]) for u in hits]  # every unit averaged over its atlas hits
    api = make_circuits(atlas, top=3, progress=False)  # the command's numbers are the API's
    for computed in api.inputs:
        np.testing.assert_array_equal(found.inputs(computed.layer).contributions, computed.contributions.astype(np.float32))
    assert "features.3 <- features.0" in out and "classifier <- features.3" in out
    assert f"{atlas.absolute() / 'index.html'}#/circuit/features.3/" in out
    assert "circuits" in (atlas / "viewer" / "data" / "analyses.js").read_text()


def test_layers_hits_and_ablation(atlas, capsys):
    assert main(["circuits", str(atlas), "--layers", "features.3", "--hits", "1", "--ablation", "5", "--seed", "2", "-q"]) == 0
    record = json.loads((atlas / "circuits" / "circuits.json").read_text())
    assert [(p["layer"], p["below"]) for p in record["pairs"]] == [("features.3", "features.0")] and record["hits"] == 1
    assert read_circuits(atlas).inputs("features.3").hits.max() == 1
    ablation = record["ablation"]
    assert ablation["images"] == 5 and ablation["seed"] == 2
    assert ablation["class_by"] == "predicted"  # 3 label folders cannot be the model's 4 classes
    assert [entry["layer"] for entry in ablation["layers"]] == ["features.3"]  # the last layer that is not the logits
    stored = read_circuits(atlas).ablation("features.3")
    assert len(stored.images) == 5 and len(set(stored.images.tolist())) == 5 and stored.images.max() < 9
    assert "ablation of features.3" in capsys.readouterr().out
    with pytest.warns(ConvscopeWarning, match="the ablation counts each image for its predicted class"):
        api = make_circuits(atlas, layers=["features.3"], hits=1, ablation=5, seed=2, progress=False)  # the same seed, the same sample
    np.testing.assert_array_equal(stored.images, api.ablations[0].images)
    np.testing.assert_array_equal(stored.drops, np.asarray(api.ablations[0].drops, dtype=np.float32))
    assert main(["circuits", str(atlas), "--ablation", "3", "--ablation-layers", "features.0", "classifier", "-q"]) == 0
    record = json.loads((atlas / "circuits" / "circuits.json").read_text())
    assert [entry["layer"] for entry in record["ablation"]["layers"]] == ["features.0", "classifier"]


def error_of(argv: list[str], capsys) -> str:
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.count("error:") == 1, captured.err
    return captured.err


@pytest.mark.parametrize("flags, message", [
    (["--layers", "features.9"], "has no layer 'features.9'"),
    (["--layers", "features.0"], "is the atlas's first layer"),
    (["--ablation", "10"], "an ablation over 10 images needs that many"),
    (["--ablation", "2", "--ablation-layers", "nope"], "no layer 'nope' to ablate"),
    (["--top", "0"], "top must be at least 1"),
    (["--hits", "0"], "hits must be at least 1"),
    (["--images", "/nonexistent/photos"], "/nonexistent/photos, which does not exist"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(atlas, capsys, flags, message):
    before = sorted(p.name for p in atlas.iterdir())
    assert message in error_of(["circuits", str(atlas), "-q", *flags], capsys)
    assert sorted(p.name for p in atlas.iterdir()) == before and not (atlas / "circuits").exists()


def test_a_dataset_that_is_gone_or_not_ours(atlas, tiny, tmp_path, capsys):
    manifest = json.loads((atlas / "manifest.json").read_text())
    manifest["dataset"]["root"] = str(tmp_path / "moved")
    (atlas / "manifest.json").write_text(json.dumps(manifest))
    err = error_of(["circuits", str(atlas), "-q"], capsys)
    assert "moved, which does not exist (any more)" in err and "--images FOLDER" in err
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(next(tiny["photos"].rglob("*.png")), other / "lonely.png")
    assert "is not among the images" in error_of(["circuits", str(atlas), "--images", str(other), "-q"], capsys)
    assert main(["circuits", str(atlas), "--images", str(tiny["photos"]), "-q"]) == 0  # where the images are now
    (atlas / "circuits" / "circuits.json").write_text(json.dumps({"format": "mine"}))
    assert "is not a circuits folder" in error_of(["circuits", str(atlas), "--images", str(tiny["photos"]), "-q"], capsys)
    assert not [p for p in atlas.iterdir() if p.name.startswith(".circuits.") and p.name.endswith(".partial")]


def test_an_atlas_of_one_layer(tiny, tmp_path, monkeypatch, capsys):
    one = tmp_path / "one"
    make_atlas(TINY, tiny["photos"], one, weights=tiny["weights"], layers=["features.3"], k=2, progress=False, workers=0)
    assert "has one layer only" in error_of(["circuits", str(one), "-q"], capsys)
    assert not (one / "circuits").exists()
    assert main(["circuits", str(one), "--ablation", "2", "-q"]) == 0  # the ablation alone
    record = json.loads((one / "circuits" / "circuits.json").read_text())
    assert record["pairs"] == [] and [e["layer"] for e in record["ablation"]["layers"]] == ["features.3"]


def test_not_an_atlas(tmp_path, capsys):
    assert "no atlas folder" in error_of(["circuits", str(tmp_path / "none"), "-q"], capsys)


def test_atlas_with_circuits_and_a_rebuild_keeps_them(tiny, tmp_path, monkeypatch, capsys):
    out = tmp_path / "atlas"
    argv = ["atlas", TINY, str(tiny["photos"]), "--weights", str(tiny["weights"]), "--out", str(out), "--layers", *LAYERS,
            "-k", "2", "--workers", "0", "-q"]
    assert "--ablation goes with --circuits" in error_of([*argv, "--ablation", "3"], capsys)
    assert main([*argv, "--circuits", "--ablation", "3"]) == 0
    assert "#/circuit/features.3/" in capsys.readouterr().out
    record = json.loads((out / "circuits" / "circuits.json").read_text())
    assert len(record["pairs"]) == 2 and record["ablation"]["images"] == 3
    before = (out / "circuits" / "inputs-0.npz").read_bytes()
    make_atlas(TINY, tiny["photos"], out, weights=tiny["weights"], layers=LAYERS, k=2, progress=False, workers=0)  # the same model again
    assert (out / "circuits" / "inputs-0.npz").read_bytes() == before
    assert "circuits" in (out / "viewer" / "data" / "analyses.js").read_text()
