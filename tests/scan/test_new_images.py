"""What a worker sends rank 0 in pass 2: each winning image once, by the first chunk that shows it.

:class:`NewImages` against a brute-force walk of the written atlas's records (layers in
order, units in order, 64 to a chunk); :func:`_for_writer`'s JPEG bytes against the image
files one process wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

from convscope.atlas.format import read_hits
from convscope.atlas.build import RenderOptions, _chunk_results, _for_writer, plan_layer, views_for
from convscope.data import image_source
from convscope.network.layers import select_layers
from convscope.network.load import load_network
from convscope.pipeline import make_atlas
from convscope.scan.gather import UNITS_PER_CHUNK, NewImages, PixelCache, unit_chunks
from convscope.scan.job import ScanJob, run_scan
from tiny_models import write_images

NET = (
    "import torch\nfrom torch import nn\n\n"
    "def make():\n    torch.manual_seed(0)\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 130, 3, stride=2))\n"
)


def test_each_image_is_new_in_the_first_chunk_that_shows_it_and_sent_once_as_stored(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(NET)
    write_images(tmp_path / "images", 40, size=12)
    model = f"{tmp_path / 'net.py'}:make"
    atlas = make_atlas(model, tmp_path / "images", tmp_path / "atlas", progress=False, batch_size=8, resume=False)

    first: dict[str, tuple[int, int]] = {}  # image file -> (layer number, chunk number), brute force
    manifest = json.loads((atlas / "manifest.json").read_text())
    for number, layer in enumerate(manifest["layers"]):
        for unit in read_hits(atlas, layer["name"])["units"]:
            for hit in unit["hits"] + unit["bottom"]:
                first.setdefault(hit["image_file"], (number, unit["unit"] // UNITS_PER_CHUNK))

    network = load_network(model)
    images = image_source(tmp_path / "images")
    layers = select_layers(network.model, None, network.preprocess.input_size)
    result = run_scan(network, images, layers, tmp_path / "again", ScanJob(batch_size=8, progress=False, resume=False))
    assert [info.name for info in layers] == [layer["name"] for layer in manifest["layers"]]
    views = views_for(network, RenderOptions())
    cache = PixelCache(images, network.preprocess)
    new = NewImages()
    sent: dict[str, bytes] = {}
    for number, info in enumerate(layers):
        scan = result.layers[info.name]
        plan = plan_layer(info, scan, views, 9, RenderOptions(), False, new)
        assert plan.new_images is not None and len(plan.new_images) == len(unit_chunks(info.units))
        for chunk, units in enumerate(unit_chunks(info.units)):
            expected = {name for name, where in first.items() if where == (number, chunk)}
            assert {f"images/{index:06d}.jpg" for index in plan.new_images[chunk]} == expected
            packed = _for_writer(_chunk_results(info, scan, units, views, cache, plan, 9, RenderOptions()), plan.new_images[chunk])
            assert all(unit.pictures == {} for unit in packed)
            for unit in packed:
                for index, jpeg in unit.pixels.items():
                    name = f"images/{index:06d}.jpg"
                    assert name not in sent  # each image once in the whole atlas
                    sent[name] = jpeg
    assert len(first) > 40 // 2 and sent.keys() == first.keys()
    assert all((atlas / name).read_bytes() == jpeg for name, jpeg in sent.items())
