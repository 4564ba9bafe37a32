"""The atlas of layers whose units do not all look alike: a channel concatenation of branches
with different receptive fields (a Fire module) and a channels-last (NHWC) block. Hits,
activations and boxes are checked against a brute force that calls the sub-modules by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from convscope.data import find_images, load_pixels
from convscope.network.geometry import Box
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess
from convscope.pipeline import make_atlas
from convscope.project import projection_to_image
from convscope.render.grid import fit_cell
from convscope.render.patch import crop
from convscope.atlas.format import read_hits
from oracles import need_module
from tiny_models import Fire, write_images

K = 3


class Net(nn.Module):
    """A Fire module, then a ConvNeXt-like channels-last block (LayerNorm and Linear in NHWC)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fire = Fire()
        self.norm, self.mix = nn.LayerNorm(6), nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fire(x).permute(0, 2, 3, 1)
        return self.mix(self.norm(y)).permute(0, 3, 1, 2)


def brute_force(model: Net, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each layer's output as ``(N, units, rows, cols)``, by calling the modules by hand."""
    with torch.no_grad():
        fire = model.fire(x)
        mix = model.mix(model.norm(fire.permute(0, 2, 3, 1)))  # (N, H, W, 5)
    return {"fire": fire, "mix": mix.permute(0, 3, 1, 2)}


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    write_images(root / "images", 10, 12, seed=3)
    network = Network(Net().eval(), "layouts", Preprocess(input_size=(12, 12), resize=None, mean=(0.5,) * 3, std=(0.25,) * 3))
    out = make_atlas(network, root / "images", root / "atlas", layers=["fire", "mix"], k=K, projection="guided", progress=False)
    return network, root, out


def test_hits_and_activations_equal_brute_force_in_both_layouts(atlas):
    network, root, out = atlas
    images = find_images(root / "images")
    x = network.model_input(load_pixels(images, range(10), network.preprocess))
    manifest = json.loads((out / "manifest.json").read_text())
    shapes = {layer["name"]: layer["shape"] for layer in manifest["layers"]}
    assert shapes == {"fire": [6, 12, 12], "mix": [5, 12, 12]}
    for name, acts in brute_force(network.model, x).items():
        n, units, rows, cols = acts.shape
        best, where = acts.reshape(n, units, -1).max(dim=2)
        for record in read_hits(out, name)["units"]:
            unit = record["unit"]
            ranked = sorted(range(n), key=lambda i: (-best[i, unit].item(), i))[:K]
            assert [images.paths.index(h["image"]) for h in record["hits"]] == ranked
            for hit, i in zip(record["hits"], ranked):
                assert hit["activation"] == pytest.approx(best[i, unit].item(), rel=1e-5, abs=1e-6)
                assert divmod(int(where[i, unit]), cols) == (hit["row"], hit["col"])


def test_each_unit_gets_its_own_branchs_box(atlas):
    _, _, out = atlas
    manifest = json.loads((out / "manifest.json").read_text())
    fire = next(layer for layer in manifest["layers"] if layer["name"] == "fire")
    assert [f["units"] for f in fire["receptive_fields"]] == [[0, 3], [3, 6]]
    assert [f["size"] for f in fire["receptive_fields"]] == [[1, 1], [3, 3]]
    for record in read_hits(out, "fire")["units"]:
        grow = 0 if record["unit"] < 3 else 1  # the 1x1 branch sees one pixel, the 3x3 branch its neighbours
        for hit in record["hits"]:
            r, c = hit["row"], hit["col"]
            assert hit["box"] == [r - grow, c - grow, r + 1 + grow, c + 1 + grow]


def test_projections_of_a_channels_last_layer_are_its_own_units(atlas):
    """The guided-backprop picture of a ``mix`` hit (an NHWC layer) equals Captum's for the
    activation ``mix[row, col, unit]`` of the NHWC output."""
    captum_attr = need_module("captum.attr")

    network, root, out = atlas
    images = find_images(root / "images")
    record = read_hits(out, "mix")["units"][2]
    hit = record["hits"][0]
    x = network.model_input(load_pixels(images, [images.paths.index(hit["image"])], network.preprocess))

    class Activation(nn.Module):  # the NHWC output, indexed [row, col, unit] by hand
        def __init__(self, model: Net) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            nhwc = self.model.mix(self.model.norm(self.model.fire(x).permute(0, 2, 3, 1)))
            return nhwc[:, hit["row"], hit["col"], 2]

    signal = captum_attr.GuidedBackprop(Activation(network.model)).attribute(x)
    part, inside = crop(signal[0].permute(1, 2, 0).detach().numpy(), Box(*hit["box"]), 0.0)
    expected = projection_to_image(torch.from_numpy(part).permute(2, 0, 1))
    grid = np.asarray(Image.open(out / "layers/mix/units/0002-projection.png").convert("RGB")).astype(int)
    cell = fit_cell(expected, 64, inside).astype(int)
    assert np.abs(grid[:64, :64] - cell).max() <= 2


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_patches_past_the_border_show_what_a_padding_mode_gave_the_network(tmp_path, mode):
    """Every cell of the unit grids equals the box cut from ``F.pad(image, mode)`` (striped
    where it lies past the border), not the mean colour."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode=mode)).eval()
    write_images(tmp_path / "images", 8, 10, seed=4)
    preprocess = Preprocess(input_size=(10, 10), resize=None, mean=(0.5,) * 3, std=(0.25,) * 3)
    out = make_atlas(Network(model, "pad", preprocess), tmp_path / "images", tmp_path / "atlas", layers=["0"], k=4, progress=False, grids=True)
    images = find_images(tmp_path / "images")
    pixels = load_pixels(images, range(8), preprocess)  # uint8 (N, 3, 10, 10)
    padded = nn.functional.pad(pixels.float(), (1, 1, 1, 1), mode=mode).byte().permute(0, 2, 3, 1).numpy()
    border = 0
    for record in read_hits(out, "0")["units"]:
        grid = np.asarray(Image.open(out / f"layers/0/units/{record['unit']:04d}.png").convert("RGB"))
        for rank, hit in enumerate(record["hits"]):
            top, left, bottom, right = hit["box"]
            expected = padded[images.paths.index(hit["image"]), top + 1 : bottom + 1, left + 1 : right + 1]
            rows, cols = np.indices((3, 3))
            inside = (rows + top >= 0) & (rows + top < 10) & (cols + left >= 0) & (cols + left < 10)
            r, c = divmod(rank, 2)
            cell = grid[r * 66 : r * 66 + 64, c * 66 : c * 66 + 64]
            assert np.array_equal(cell, fit_cell(np.ascontiguousarray(expected), 64, inside))
            border += not inside.all()
    assert border > 0  # some hits do reach past the border
