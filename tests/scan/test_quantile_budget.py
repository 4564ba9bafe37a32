"""``--quantile-budget``: exact quantiles up to the budget, a sketch beyond; recorded, fingerprinted, merged.

The exact case against ``np.quantile`` of a brute-force forward pass; the sketch flag and the
manifest record; a saved state resumes only a scan of the same budget; a merge's empty state
keeps the budget; a budget below the minimum is refused with a hint.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from convscope.cli import main
from convscope.data import image_source, load_pixels
from convscope.errors import ConvscopeError
from convscope.network.layers import select_layers
from convscope.network.load import load_network
from convscope.pipeline import make_atlas
from convscope.scan import distributed
from convscope.scan.job import ScanJob, run_scan
from convscope.scan.scan import ScanState, signature_sample
from convscope.atlas.format import read_hits
from tiny_models import write_images

NET = "import torch\nfrom torch import nn\n\ndef make():\n    torch.manual_seed(0)\n    return nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 3, 3))\n"
IMAGES = 80


@pytest.fixture
def model(tmp_path: Path) -> str:
    (tmp_path / "net.py").write_text(NET)
    write_images(tmp_path / "images", IMAGES, size=12)
    return f"{tmp_path / 'net.py'}:make"


def _layer(atlas: Path, name: str) -> dict:
    return read_hits(atlas, name)


def test_quantiles_are_exact_up_to_the_budget_and_a_sketch_beyond(tmp_path: Path, model: str) -> None:
    exact = make_atlas(model, tmp_path / "images", tmp_path / "exact", progress=False, batch_size=16, quantile_budget=IMAGES)
    sketch = make_atlas(model, tmp_path / "images", tmp_path / "sketch", progress=False, batch_size=16, quantile_budget=64)
    assert json.loads((exact / "manifest.json").read_text())["scan"]["quantile_budget"] == IMAGES
    assert json.loads((sketch / "manifest.json").read_text())["scan"]["quantile_budget"] == 64
    assert _layer(exact, "0")["exact"] is True and _layer(sketch, "0")["exact"] is False

    network = load_network(model)
    images = image_source(tmp_path / "images")
    with torch.inference_mode():
        x = network.preprocess.normalize(load_pixels(images, range(IMAGES), network.preprocess))
        maxima = network.model[0](x).amax(dim=(2, 3)).double().numpy()  # (images, units): each image's strongest
    layer = _layer(exact, "0")
    levels = layer["quantile_levels"]
    for unit in layer["units"]:
        expected = np.quantile(maxima[:, unit["unit"]], levels)
        np.testing.assert_allclose(unit["stats"]["quantiles"], expected, rtol=1e-6, atol=1e-6)


def test_a_saved_state_resumes_only_a_scan_of_the_same_budget(tmp_path: Path, model: str) -> None:
    network = load_network(model)
    images = image_source(tmp_path / "images")
    layers = select_layers(network.model, None, network.preprocess.input_size)

    def run(budget: int) -> list[str]:
        job = ScanJob(batch_size=16, checkpoint_every=16, progress=False, quantile_budget=budget)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_scan(network, images, layers, tmp_path / "atlas", job)
        return [str(w.message) for w in caught if "resuming" in str(w.message)]

    assert run(64) == []  # a long scan (80 images, saved every 16): its state stays
    assert run(128) == []  # another budget: a fresh scan, not the other state
    assert run(128) != []  # the same one: resumed


def test_a_merge_starts_from_a_state_of_the_same_budget() -> None:
    state = ScanState([("conv", 4)], 9, signature_sample(10), torch.device("cpu"), budget=96)
    assert distributed._empty_like(state).layers["conv"].quantiles.budget == 96


def test_a_budget_below_the_minimum_is_refused_with_a_hint(tmp_path: Path, model: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConvscopeError, match="too small") as error:
        ScanJob(quantile_budget=10)
    assert "--quantile-budget 64" in error.value.hint
    assert main(["atlas", model, str(tmp_path / "images"), "-o", str(tmp_path / "atlas"), "--quantile-budget", "10", "-q"]) == 1
    assert "too small" in capsys.readouterr().err and not (tmp_path / "atlas").exists()
