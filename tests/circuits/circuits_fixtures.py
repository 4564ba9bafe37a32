"""Shared pieces of the circuits writer's tests: a tiny real atlas, a LayerAblation-shaped record,
stand-ins for the circuits modules other workers write (used only while those are missing), and
a decoder of the data scripts that does not share the encoder's code."""

from __future__ import annotations

import ast
import importlib.util
import json
import random
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from convscope import make_atlas
from convscope.circuits.inputs import LayerInputs
from convscope.circuits.result import AblationInfo, Circuits
from convscope.errors import ConvscopeError
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


@dataclass(frozen=True)
class FakeAblation:
    """The fields and methods of ``convscope.circuits.ablation.LayerAblation``, for tests of the writer."""

    layer: str
    images: np.ndarray
    classes_of_images: np.ndarray
    class_by: str
    base_logits: np.ndarray
    drops: np.ndarray
    accuracy: np.ndarray
    ablated_accuracy: np.ndarray
    counts: np.ndarray
    bau_top: np.ndarray
    bau_random: np.ndarray
    bau_n: int
    method: str

    def matters_for(self, unit: int, n: int = 10) -> list[tuple[int, float, float]]:
        rows = [(k, float(self.drops[unit, k]), float(self.ablated_accuracy[unit, k] - self.accuracy[k])) for k in range(len(self.counts)) if self.counts[k] > 0]
        return sorted(rows, key=lambda r: (-r[1], r[0]))[:n]

    def units_for(self, k: int, n: int = 10) -> list[tuple[int, float]]:
        return sorted(((u, float(self.drops[u, k])) for u in range(len(self.drops))), key=lambda r: (-r[1], r[0]))[:n] if self.counts[k] > 0 else []

    @property
    def top_beats_random(self) -> float:
        valid = self.counts > 0
        return float(np.mean(self.bau_top[valid] > self.bau_random[valid]))


def fake_ablation(layer: str, units: int, classes: int, images: int, seed: int = 0) -> FakeAblation:
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
    return FakeAblation(
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


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def use_stand_ins(monkeypatch) -> None:
    """Where ``circuit_inputs``, ``convscope.circuits.weights`` or ``convscope.circuits.ablation``
    are not written yet, stand-ins with their signatures (the real ones are used once they exist)."""
    from convscope.circuits import inputs

    if not hasattr(inputs, "circuit_inputs"):
        def circuit_inputs(model, pairs, hits, load, *, batch_size=64, progress=False):
            return [inputs.layer_inputs(model, below, upper, hits[upper.name], load, batch_size=batch_size, method="full") for below, upper in pairs]

        monkeypatch.setattr(inputs, "circuit_inputs", circuit_inputs, raising=False)
    if not _module_exists("convscope.circuits.weights"):
        weights = types.ModuleType("convscope.circuits.weights")

        def direct_conv(model, below, upper, x):  # a conv right after a layer whose units are its input channels
            module = dict(model.named_modules())[upper.name]
            return module if isinstance(module, nn.Conv2d) and module.in_channels == below.units else None

        weights.direct_conv = direct_conv
        weights.kernels = lambda conv, unit, listed: conv.weight[unit, list(listed)].detach().double().numpy()
        monkeypatch.setitem(sys.modules, "convscope.circuits.weights", weights)
    if not _module_exists("convscope.circuits.ablation"):
        ablation = types.ModuleType("convscope.circuits.ablation")

        def sample_images(count, n, seed):
            if n > count:
                raise ConvscopeError(f"cannot sample {n} of {count} images")
            return sorted(random.Random(seed).sample(range(count), n))

        def ablate(model, layer, load, images, classes_of_images, *, batch_size, bau_n=5, repeats=3, seed=0, progress=None):
            record = fake_ablation(layer.name, layer.units, 4, len(images), seed)
            classes = np.asarray(classes_of_images) if classes_of_images is not None else record.classes_of_images
            return FakeAblation(**{**record.__dict__, "images": np.asarray(images, dtype=np.int64), "classes_of_images": classes,
                                   "class_by": "label" if classes_of_images is not None else "predicted"})

        ablation.sample_images, ablation.ablate = sample_images, ablate
        monkeypatch.setitem(sys.modules, "convscope.circuits.ablation", ablation)


def decode_register_call(js: str) -> tuple[str, int | None, object]:
    """Kind, index and payload of a ``convscopeRegister`` line, read with Python's own string-literal rules."""
    match = re.fullmatch(r"window\.convscopeRegister\(\"([\w-]+)\", (null|\d+), JSON\.parse\('(.*)'\)\);\n", js, re.S)
    assert match is not None, js[:200]
    kind, index, literal = match.groups()
    return kind, None if index == "null" else int(index), json.loads(ast.literal_eval("'" + literal + "'"))
