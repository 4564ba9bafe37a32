"""Contract: cell r of a unit's projection grid in the atlas is the projection of that unit's hit
of rank r (the one listed r-th in hits.json), computed here independently with Captum on the
hit's full image."""

from __future__ import annotations


import numpy as np
import torch
from PIL import Image

from convscope.atlas.format import unit_file
from convscope.data import find_images, load_pixels
from convscope.network.geometry import Box
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess
from convscope.pipeline import make_atlas
from convscope.project import projection_to_image
from convscope.render.figures import CELL_GAP
from convscope.render.grid import fit_cell, grid_shape
from convscope.render.patch import crop
from convscope.atlas.format import read_hits
from oracles import need_module
from project_helpers import SingleActivation, tiny_pool_net
from tiny_models import write_images

captum_attr = need_module("captum.attr")
CELL = 64


def test_every_projection_cell_shows_the_hit_of_its_rank(tmp_path):
    torch.manual_seed(0)
    model = tiny_pool_net().eval()
    preprocess = Preprocess(input_size=(16, 16), resize=None, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    write_images(tmp_path / "images", 14, 16, seed=5)
    network = Network(model, "tiny_pool_net", preprocess)
    out = make_atlas(network, tmp_path / "images", tmp_path / "atlas", layers=["3"], k=4, projection="deconvnet", progress=False)
    images = find_images(tmp_path / "images")
    hits = read_hits(out, "3")["units"]
    rows, cols = grid_shape(4)
    checked = 0
    for record in hits[:6]:
        unit = record["unit"]
        grid = np.asarray(Image.open(out / unit_file("3", unit, "projection")).convert("RGB"))
        expected = []
        for hit in record["hits"]:
            index = images.paths.index(hit["image"])
            x = network.model_input(load_pixels(images, [index], preprocess))
            signal = captum_attr.Deconvolution(SingleActivation(model, "3", unit, hit["row"], hit["col"])).attribute(x)
            part, inside = crop(signal[0].permute(1, 2, 0).detach().numpy(), Box(*hit["box"]), 0.0)
            picture = projection_to_image(torch.from_numpy(part).permute(2, 0, 1))
            expected.append(fit_cell(picture, CELL, inside).astype(int))
        assert len({e.tobytes() for e in expected}) == len(expected)  # the hits' pictures differ
        for rank in range(len(expected)):
            r, c = divmod(rank, cols)
            cell = grid[r * (CELL + CELL_GAP) : r * (CELL + CELL_GAP) + CELL, c * (CELL + CELL_GAP) : c * (CELL + CELL_GAP) + CELL]
            distances = [np.abs(cell.astype(int) - e).mean() for e in expected]
            assert int(np.argmin(distances)) == rank, distances
            assert np.abs(cell.astype(int) - expected[rank]).max() <= 2  # crops vs full image: rounding only
            checked += 1
    assert checked == 24
