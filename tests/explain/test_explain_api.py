"""explain(): the one call, its atlas mode, the CLI, and one clear error per bad input (nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from convscope import explain, load_network, make_atlas
from convscope.cli import main
from convscope.errors import ConvscopeError, DataError, LayerError, WeightsError
from convscope.explain import Explanation
from helpers import hook_count, plain_relevance
from tiny_models import tiny_alexnet, write_images

TINY = str(Path(__file__).resolve().parents[1] / "tiny_models.py") + ":tiny_alexnet"


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("explain")
    write_images(root / "photos", 6, size=20)
    weights = root / "tiny.pth"
    torch.save(tiny_alexnet().state_dict(), weights)
    out = root / "atlas"
    make_atlas(TINY, root / "photos", out, weights=weights, layers=["features.0", "features.3"], k=2,
               preprocess=None, progress=False, workers=0)
    return {"root": root, "atlas": out, "weights": weights, "image": root / "photos" / "img000.png"}


def test_network_mode_matches_plain_autograd(atlas):
    net = load_network(TINY, atlas["weights"])
    result = explain(net, atlas["image"], layers=["features.0", "features.3"], top=3, target=2)
    assert isinstance(result, Explanation) and result.target == 2
    assert result.image.dtype == np.uint8 and result.image.shape == (224, 224, 3)
    x = net.model_input(torch.from_numpy(result.image).permute(2, 0, 1)[None])
    expected = plain_relevance(net.model, x, ["features.0", "features.3"], 2)
    for layer in result.layers:
        r = expected[layer.layer]
        order = sorted((u for u in range(len(r)) if r[u] != 0), key=lambda u: (-float(r[u]), u))[:3]
        assert [u.unit for u in layer.units] == order
        for u in layer.units:
            assert u.relevance == pytest.approx(float(r[u.unit]), rel=1e-5)
            assert u.share == pytest.approx(float(r[u.unit] / r.abs().sum()), rel=1e-5)
            assert u.heatmap.shape == (224, 224)
        values = [f.activation for f in layer.firing]
        assert values == sorted(values, reverse=True) and len(values) == 3
    assert hook_count(net.model) == 0


def test_atlas_mode_uses_the_atlas_and_matches_network_mode(atlas):
    net = load_network(TINY, atlas["weights"])
    direct = explain(net, atlas["image"], layers=["features.0", "features.3"], top=4, region=(100, 100, 110, 110))
    via = explain(atlas["atlas"], atlas["image"], top=4, region=(100, 100, 110, 110))
    assert [l.layer for l in via.layers] == ["features.0", "features.3"]
    for a, b in zip(direct.layers, via.layers):
        assert [(u.unit, round(u.share, 6)) for u in a.units] == [(u.unit, round(u.share, 6)) for u in b.units]
        assert [r.unit for r in a.region] == [r.unit for r in b.region]


def test_bad_inputs_give_one_clear_error_each(atlas, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot read image"):
        explain(atlas["atlas"], bad)
    net = load_network("torchvision:squeezenet1_0")
    with pytest.raises(ConvscopeError, match="no class named 'beagel'") as info:
        explain(net, atlas["image"], target="beagel", layers=["features.0"])
    assert "beagle" in str(info.value)
    with pytest.raises(LayerError, match="has no layer 'features.9'"):
        explain(atlas["atlas"], atlas["image"], layers=["features.9"])
    other = tmp_path / "other.pth"
    state = tiny_alexnet().state_dict()
    state["classifier.bias"] = state["classifier.bias"] + 1
    torch.save(state, other)
    with pytest.raises(WeightsError, match="not the one the atlas"):
        explain(atlas["atlas"], atlas["image"], weights=other)


def test_cli_writes_the_folder_and_writes_nothing_on_error(atlas, tmp_path, capsys):
    out = tmp_path / "ex"
    assert main(["explain", str(atlas["atlas"]), str(atlas["image"]), "--top", "2", "--out", str(out), "--region", "0,0,8,8"]) == 0
    record = json.loads((out / "explanation.json").read_text())
    assert record["format"] == "convscope-explanation" and (out / "explanation.png").is_file()
    assert [l["layer"] for l in record["explanations"][0]["layers"]] == ["features.0", "features.3"]
    assert "features.3:" in capsys.readouterr().out
    other = tmp_path / "other.pth"
    state = tiny_alexnet().state_dict()
    state["classifier.bias"] = state["classifier.bias"] + 1
    torch.save(state, other)
    for args in (["--class", "nope"], ["--layers", "features.9"], ["--weights", str(other)], ["--region", "5,5,1,1"]):
        fresh = tmp_path / f"fresh{len(args[1])}"
        assert main(["explain", str(atlas["atlas"]), str(atlas["image"]), "--out", str(fresh), *args]) == 1
        assert not fresh.exists()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    assert main(["explain", TINY, str(bad), "--weights", str(atlas["weights"]), "--out", str(tmp_path / "none")]) == 1
    assert not (tmp_path / "none").exists()
    assert "cannot read image" in capsys.readouterr().err
