"""A real atlas with analyses inside it, like the demo's, for the viewer's analysis tests.

A two-conv net (zero padding, so deep boxes reach past the image) is scanned over smooth
images (JPEG keeps them within a few levels); its evolution over three checkpoints, with deconvnet projections (the second
with the convs' weights negated, so top images change; the third equal to the second, so none
change) goes to ``ATLAS/evolution`` (:func:`write_evolution`), a copy with hostile names to a
hostile folder, a copy as version 1 wrote it (no images) to ``ATLAS/version-1``, and a hand-built
invariance record to ``ATLAS/invariance``; then the viewer is refreshed.

Example:
    >>> atlas = make_evolved_atlas(tmp_path)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from convscope.analysis.evolve import evolve
from convscope.analysis.evolve_folder import write_evolution
from convscope.analysis.in_atlas import refresh_viewer
from convscope.analysis.invariance import Curves, ImageInvariance, Invariance
from convscope.analysis.invariance_run import write_invariance
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess
from convscope.pipeline import make_atlas
from make_atlas import HOSTILE_IMAGE, HOSTILE_LAYER

SIDE = 20
MEAN = (0.2, 0.4, 0.6)
#: Original images are larger than the model input: the model-input frame is a resize and a crop.
ORIGINAL = (26, 30)
HOSTILE_FOLDER = "evo<img src=x onerror=window.__pwned=1>"
HOSTILE_CHECKPOINT = '<img src=x onerror="window.__pwned=1">'
LAYERS = ("0", "2")


def smooth_images(folder: Path, count: int = 8) -> list[Path]:
    """Smooth RGB PNGs of ``ORIGINAL`` (rows, cols): gradients at different angles with a soft blob."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[0 : ORIGINAL[0], 0 : ORIGINAL[1]].astype(np.float32)
    paths = []
    for i in range(count):
        angle = 2 * np.pi * i / count
        ramp = (np.cos(angle) * rows / ORIGINAL[0] + np.sin(angle) * cols / ORIGINAL[1] + 1) / 2
        blob = np.exp(-(((rows - 4 - 2 * i) / 9) ** 2 + ((cols - 25 + 2 * i) / 9) ** 2))
        rgb = 0.25 + 0.4 * np.stack([ramp, 0.5 * ramp + 0.5 * blob, blob * (1 + i % 3) / 3], axis=-1)
        path = folder / f"img{i:02d}.png"
        Image.fromarray(np.clip(255 * rgb, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def padded_net() -> nn.Sequential:
    """Two zero-padded convs, seeded (the global generator is left as it was); the second strides by 2 and pads by 2."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, stride=2, padding=2)).eval()


def checkpoints(folder: Path) -> list[Path]:
    """Three state dicts: the seeded net, its convs negated, and the negated net again."""
    model = padded_net()
    paths = [folder / "step-1.pt", folder / "step-2.pt", folder / "step-3.pt"]
    torch.save(model.state_dict(), paths[0])
    with torch.no_grad():
        for conv in (model[0], model[2]):
            conv.weight.neg_()
    torch.save(model.state_dict(), paths[1])
    shutil.copy(paths[1], paths[2])
    return paths


def network() -> Network:
    return Network(padded_net(), "padded", Preprocess(input_size=(SIDE, SIDE), resize=SIDE, mean=MEAN, std=(0.25,) * 3))


def invariance_result() -> Invariance:
    """Two images, two sweeps, the second image without a label."""
    curves = (
        Curves("translation", (-2.0, 0.0, 2.0), (0.5, 0.0, 0.7), (0.2, 0.0, 0.1), (0.3, 0.9, 0.6)),
        Curves("rotation", (0.0, 90.0), (0.0, 1.0), (0.0, 0.4), (0.8, 0.2)),
    )
    unlabelled = tuple(Curves(c.kind, c.values, c.late, c.first) for c in curves)
    return Invariance("0", "2", None, 2, (ImageInvariance("img00.png", 1, curves, 0.8), ImageInvariance(HOSTILE_IMAGE, None, unlabelled, 0.5)))


def make_evolved_atlas(root: Path) -> Path:
    """The atlas (``root/atlas``) with ``evolution/``, the hostile copy and ``invariance/``, viewer refreshed."""
    images = root / "images"
    smooth_images(images)
    net = network()
    atlas = make_atlas(net, images, root / "atlas", layers=list(LAYERS), k=4, progress=False)
    steps = evolve(network(), images, checkpoints(root), layers=list(LAYERS), n_units=3, k=4, names=["one", "two", "three"], projection="deconvnet", progress=False)
    write_evolution(atlas / "evolution", steps, net.describe())
    hostile = atlas / HOSTILE_FOLDER
    shutil.copytree(atlas / "evolution", hostile)
    record = json.loads((hostile / "evolution.json").read_text())
    record["checkpoints"][0]["name"] = HOSTILE_CHECKPOINT
    record["layers"][0]["layer"] = HOSTILE_LAYER
    record["layers"][0]["units"][0]["checkpoints"][0]["image"] = HOSTILE_IMAGE
    (hostile / "evolution.json").write_text(json.dumps(record))
    old = atlas / "version-1"  # as evolve wrote it before the viewer showed evolutions: figures only
    shutil.copytree(atlas / "evolution", old, ignore=shutil.ignore_patterns("images"))
    record = json.loads((old / "evolution.json").read_text())
    record["version"] = 1
    for layer in record["layers"]:
        for unit in layer["units"]:
            del unit["padding"]
            for cell in unit["checkpoints"]:
                del cell["image_file"]
    (old / "evolution.json").write_text(json.dumps(record))
    write_invariance(invariance_result(), atlas / "invariance", model="padded")
    refresh_viewer(atlas)
    return atlas
