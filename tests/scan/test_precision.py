"""Opt-in mixed precision and channels-last memory for the scan, against direct computations.

bfloat16/float16 under autocast: the hits are the brute-force top-k of the same net run in
that type by hand (model and input cast, no autocast), and every stored value is a number of
that type. Channels-last: the hits of the usual layout, and the model's own tensors back after.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

from convscope.data import image_source
from convscope.errors import ConvscopeError
from convscope.network.layers import select_layers
from convscope.network.load import load_network
from convscope.pipeline import make_atlas
from convscope.scan.job import ScanJob, run_scan
from convscope.scan.scan import scan
from convscope.atlas.format import read_hits
from tiny_models import write_images

LAYERS = [("0", 6), ("2", 5)]


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 5, 3, stride=2)).eval()


def _data() -> tuple[torch.Tensor, list]:
    g = torch.Generator().manual_seed(1)
    pixels = torch.randint(0, 256, (21, 3, 12, 12), dtype=torch.uint8, generator=g)
    batches = [(pixels[s : s + 4], torch.arange(s, min(s + 4, 21)), torch.ones(len(pixels[s : s + 4]), dtype=torch.bool), [""] * 4) for s in range(0, 21, 4)]
    return pixels, batches


def _normalize(p: torch.Tensor) -> torch.Tensor:
    return p.float() / 127.5 - 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_hits_are_the_top_k_of_the_net_run_in_that_type(dtype: torch.dtype) -> None:
    model = _net()
    pixels, batches = _data()
    result = scan(model, LAYERS, batches, _normalize, k=5, progress=False, precision=dtype)
    by_hand = _net().to(dtype)
    with torch.no_grad():
        x = _normalize(pixels).to(dtype)
        direct = {"0": by_hand[:1](x), "2": by_hand(x)}
    assert model[0].weight.dtype == torch.float32  # the model itself is untouched
    for name, acts in direct.items():
        n, units = acts.shape[:2]
        per_image, where = acts.float().reshape(n, units, -1).max(dim=2)
        top = result.layers[name].topk
        assert torch.equal(top.values, top.values.to(dtype).float())  # numbers of that type, widened exactly
        for unit in range(units):
            ranked = sorted(range(n), key=lambda i: (-per_image[i, unit].item(), i))[:5]
            assert top.images[unit].tolist() == ranked
            assert top.values[unit].tolist() == [per_image[i, unit].item() for i in ranked]
            assert top.positions[unit].tolist() == [where[i, unit].item() for i in ranked]
        assert result.layers[name].mean == pytest.approx(per_image.mean(dim=0).tolist(), rel=1e-5)


def test_channels_last_finds_the_hits_of_the_usual_layout_and_gives_the_model_back() -> None:
    model = _net()
    weight = model[0].weight
    _, batches = _data()
    usual = scan(model, LAYERS, batches, _normalize, k=5, progress=False)
    fast = scan(model, LAYERS, batches, _normalize, k=5, progress=False, channels_last=True)
    assert model[0].weight is weight and weight.is_contiguous() and not (
        weight.is_contiguous(memory_format=torch.channels_last)
    )  # the same parameter, in its own layout again
    for name, _ in LAYERS:
        a, b = usual.layers[name].topk, fast.layers[name].topk
        assert torch.equal(a.images, b.images) and torch.equal(a.positions, b.positions)
        assert torch.allclose(a.values, b.values, rtol=1e-5, atol=1e-6)


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(ConvscopeError, match="unknown precision 'half'"):
        ScanJob(precision="half")


NET = "import torch\nfrom torch import nn\n\ndef make():\n    torch.manual_seed(0)\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3))\n"


def test_the_atlas_records_its_precision(tmp_path) -> None:
    (tmp_path / "net.py").write_text(NET)
    write_images(tmp_path / "images", 12)
    plain = make_atlas(f"{tmp_path / 'net.py'}:make", tmp_path / "images", tmp_path / "plain", progress=False, batch_size=4)
    fast = make_atlas(f"{tmp_path / 'net.py'}:make", tmp_path / "images", tmp_path / "fast", progress=False, batch_size=4, precision="bfloat16", channels_last=True)
    assert json.loads((plain / "manifest.json").read_text())["scan"] == {"precision": "float32", "channels_last": False, "quantile_budget": 8192}
    assert json.loads((fast / "manifest.json").read_text())["scan"] == {"precision": "bfloat16", "channels_last": True, "quantile_budget": 8192}
    fast_values = [h["activation"] for u in read_hits(fast, "0")["units"] for h in u["hits"]]
    plain_values = [h["activation"] for u in read_hits(plain, "0")["units"] for h in u["hits"]]
    assert fast_values and all(torch.tensor(v).bfloat16().item() == v for v in fast_values)
    assert any(torch.tensor(v).bfloat16().item() != v for v in plain_values)  # so the check above can fail


def test_a_saved_state_resumes_only_a_scan_of_the_same_precision(tmp_path) -> None:
    (tmp_path / "net.py").write_text(NET)
    write_images(tmp_path / "images", 12)
    network = load_network(f"{tmp_path / 'net.py'}:make")
    images = image_source(tmp_path / "images")
    layers = select_layers(network.model, None, network.preprocess.input_size)
    out = tmp_path / "atlas"

    def run(precision: str) -> list[str]:
        job = ScanJob(batch_size=4, checkpoint_every=4, progress=False, precision=precision)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_scan(network, images, layers, out, job)
        return [str(w.message) for w in caught if "resuming" in str(w.message)]

    assert run("float32") == []  # a long scan (12 images, saved every 4): its state stays
    assert run("bfloat16") == []  # another arithmetic: a fresh scan, not the float32 state
    assert run("bfloat16") != []  # the same one: resumed
