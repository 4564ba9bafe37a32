"""run_demo also writes the evolution over the training's checkpoints, from the cache, with no extra training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convscope.atlas.viewer import find_analyses
from convscope.cli import main
from convscope.demo.model import CONV_LAYERS
from convscope.demo import run as demo_run
from convscope.demo import train as train_module
from test_demo_train import _image_folder


@pytest.mark.filterwarnings("ignore:only 8 images were scanned")
def test_the_demo_writes_the_evolution_of_its_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_module, "BATCH_SIZE", 8)
    monkeypatch.setattr(train_module, "HELD_OUT_CROPS", 16)
    train = train_module.train_demo
    monkeypatch.setattr(demo_run, "train_demo", lambda cache, data, progress: train(cache, data, steps=3, progress=progress))
    data = _image_folder(tmp_path / "data")
    atlas = demo_run.run_demo(tmp_path / "atlas", data=data, cache_dir=tmp_path / "cache", projection=None, progress=False)
    record = json.loads((atlas / "evolution" / "evolution.json").read_text())
    assert [c["name"] for c in record["checkpoints"]] == ["step 1", "step 2", "step 3"]
    assert [layer["layer"] for layer in record["layers"]] == ["features.0", "features.3", "features.6", "features.8", "features.10"]
    assert all(len(layer["settle"]) == 2 for layer in record["layers"])
    assert (atlas / "evolution" / "settle.png").is_file() and (atlas / "evolution" / "evolution.png").is_file()
    # The atlas's viewer was refreshed after the evolution was written: its data holds the record.
    assert find_analyses(atlas) == [("evolution", "evolution", record)]
    script = (atlas / "viewer" / "data" / "analyses.js").read_text()
    assert script.startswith('window.convscopeRegister("evolution", 0, ') and script.count("\n") == 1
    cells = [c for layer in record["layers"] for u in layer["units"] for c in u["checkpoints"] if c is not None]
    assert cells and all((atlas / "evolution" / c["image_file"]).is_file() for c in cells)
    # The atlas records a model source that loads, so `convscope evolve` runs on the cached
    # checkpoints as a user would, and finds what the demo found with its own model object.
    source = json.loads((atlas / "manifest.json").read_text())["model"]["source"]
    assert source == "convscope.demo:TinyAlexNet(num_classes=2)"
    files = [c["file"] for c in record["checkpoints"]]
    assert [Path(f).name for f in files[:-1]] == [f"{Path(files[-1]).stem}.step-{s:05d}.pt" for s in (1, 2)]
    args = ["evolve", source, str(data), "--checkpoints", *files, "--names", "step 1", "step 2", "step 3",
            "--layers", *CONV_LAYERS, "--input-size", "128", "-q", "--out", str(tmp_path / "cli")]  # fmt: skip
    assert main(args) == 0
    again = json.loads((tmp_path / "cli" / "evolution.json").read_text())
    assert again["layers"] == record["layers"]
    # A second run loads the cache (checkpoints included) instead of training.
    monkeypatch.setattr(train_module, "_fit", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained again")))
    demo_run.run_demo(tmp_path / "atlas", data=data, cache_dir=tmp_path / "cache", projection=None, progress=False)
    assert (atlas / "evolution" / "evolution.json").is_file()
