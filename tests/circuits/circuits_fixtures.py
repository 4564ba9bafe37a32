"""Shared pieces of the circuits writer's tests: a tiny real atlas, a LayerAblation-shaped record,
stand-ins for the circuits modules other workers write (used only while those are missing), and
a decoder of the data scripts that does not share the encoder's code."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import torch

from convscope import make_atlas
from convscope.circuits.ablation import LayerAblation
from convscope.circuits.inputs import LayerInputs
from convscope.circuits.result import AblationInfo, Circuits
from tiny_models import tiny_alexnet, write_images

TINY = str(Path(__file__).resolve().parents[1] / "tiny_models.py") + ":tiny_alexnet"
#: The tiny atlas's layers: two convs (a max pool between them) and the 4 logits.
LAYERS = ["features.0", "features.3", "classifier"]


def build_tiny_atlas(root: Path, out_name: str = "atlas") -> dict:
    """9 labelled 20 x 20 photos (classes x, y, z) and tiny_alexnet's atlas of :data:`LAYERS`, k = 2."""
    photos = root / "photos"
    if not photos.exists():
        write_images(photos, 9, size=20, classes=("x", "y", "z"))
    weights = root / "tiny.pth"
    if not weights.exists():
        torch.save(tiny_alexnet().state_dict(), weights)
    out = root / out_name
    make_atlas(TINY, photos, out, weights=weights, layers=LAYERS, k=2, progress=False, workers=0)
    return {"root": root, "atlas": out, "weights": weights, "photos": photos}


def fake_ablation(layer: str, units: int, classes: int, images: int, seed: int = 0) -> LayerAblation:
    """A record with every array of its shape; class ``classes - 1`` has no image (NaN where that shows)."""
    rng = np.random.default_rng(seed)
    classes_of = np.arange(images) % max(classes - 1, 1)
    counts = np.bincount(classes_of, minlength=classes).astype(np.int64)
    accuracy = np.where(counts > 0, rng.random(classes), np.nan).astype(np.float32)
    drops = rng.normal(size=(units, classes)).astype(np.float32)
    drops[:, counts == 0] = np.nan
    ablated = np.where(counts > 0, rng.random((units, classes)), np.nan).astype(np.float32)
    bau_top = np.where(counts > 0, rng.random(classes) + 0.5, np.nan).astype(np.float32)
    bau_random = np.where(counts > 0, rng.random(classes), np.nan).astype(np.float32)
    return LayerAblation(
        layer, np.arange(images, dtype=np.int64) * 2, classes_of.astype(np.int64), "label", rng.normal(size=(images, classes)).astype(np.float32),
        drops, accuracy, ablated, counts, bau_top, bau_random, 5, "zero",
    )


def sample_circuits(seed: int = 0) -> Circuits:
    """Two pairs (the first direct, with kernels of every listed input), one ablation layer."""
    rng = np.random.default_rng(seed)
    first = LayerInputs("features.3", "features.0", rng.normal(size=(6, 4)), rng.random(6) * 3, np.array([2, 2, 1, 2, 0, 2]), "crop")
    contributions = rng.normal(size=(4, 6))
    contributions[1] = 0.0  # a unit without inputs
    contributions[2] = [1.0, 1.0, -1.0, 0.5, 0.0, -2.0]  # ties
    second = LayerInputs("classifier", "features.3", contributions, rng.random(4), np.array([2, 2, 2, 2]), "full")
    kernels = {0: {u: {c: rng.normal(size=(3, 3)) for c in range(4)} for u in range(6)}}
    return Circuits(
        inputs=(first, second), kernels=kernels, direct=(True, False), ablations=(fake_ablation("features.3", 6, 4, 9, seed),),
        top=3, hits=2, ablation_info=AblationInfo(9, 7, "label", ("a", "b<script>", "c", "d")), model={"source": "tiny"},
    )


def decode_register_call(js: str) -> tuple[str, int | None, object]:
    """Kind, index and payload of a ``convscopeRegister`` line, read with Python's own string-literal rules."""
    match = re.fullmatch(r"window\.convscopeRegister\(\"([\w-]+)\", (null|\d+), JSON\.parse\('(.*)'\)\);\n", js, re.S)
    assert match is not None, js[:200]
    kind, index, literal = match.groups()
    return kind, None if index == "null" else int(index), json.loads(ast.literal_eval("'" + literal + "'"))
