"""A real atlas of a tiny net with a planted ``ATLAS/circuits/`` folder, for the circuits viewer's tests.

The atlas is a scan of tests/tiny_models.py ``tiny_alexnet`` (features.0: conv 3 -> 4, ReLU,
features.2: max pool, features.3: conv 4 -> 6) over random images at 40 px, with three layers:
features.0, features.2, features.3. Its ``circuits/`` folder follows the on-disk layout of the
circuits format (circuits.json, ``inputs-<i>.npz`` and ``viewer/inputs-<i>.js``,
``ablation-<j>.npz`` and ``viewer/ablation-<j>.js``), written here with json, numpy and
``js_register_call`` from planted numbers (:func:`write_circuits`, also usable on any atlas):

- pair 0: features.3 <- features.2, direct, kernels the conv's weights; unit 2's strongest
  excitatory input is features.2 unit 3 (share 0.5), its strongest inhibitory one unit 0;
- pair 1: features.2 <- features.0, not direct;
- ablation of features.3 over 4 classes, one of them named ``HOSTILE_CLASS``; unit 2 matters most
  for class 3 ("tiger shark"), then for the hostile class 1.

Example:
    >>> paths = make_circuits_atlas(tmp_path)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from convscope.atlas.viewer import js_register_call, write_viewer
from convscope.circuits.inputs import LayerInputs
from convscope.network.preprocess import Preprocess
from convscope.pipeline import make_atlas
from tiny_models import tiny_alexnet, write_images

TINY = str(Path(__file__).resolve().parents[1] / "tiny_models.py") + ":tiny_alexnet"
SIDE = 40
LAYERS = ("features.0", "features.2", "features.3")
HOSTILE_CLASS = "<img src=x onerror=alert(1)>"
CLASS_NAMES = ["tench", HOSTILE_CLASS, "white shark", "tiger shark"]
TOP, HITS = 8, 2
#: Unit 2 of features.3: its planted inputs from features.2 (contributions) and class drops.
PLANTED_UNIT = 2
PLANTED_INPUTS = [-2.5, 2.0, -0.5, 5.0]   # shares 1/4 each of 10: -0.25, 0.2, -0.05, 0.5
PLANTED_DROPS = [0.1, 1.5, -0.3, 2.0]     # class 3 most, then class 1 (hostile)


def top_rows(found: LayerInputs, unit: int, sign: int, top: int) -> list[list[float]]:
    return [[c, share, contribution] for c, share, contribution in found.top(unit, top, sign)]


def write_circuits(atlas: Path, pairs: list[dict], ablation: dict | None, *, top: int = TOP, hits: int = HITS) -> Path:
    """Write ``ATLAS/circuits/`` in the documented layout and refresh the viewer.

    Args:
        pairs: per pair ``layer``, ``below``, ``method``, ``contributions`` ``(units, below_units)``,
            ``activations`` ``(units,)``, ``hits`` ``(units,)`` and ``kernels`` ``(units, below_units, kh, kw)``
            or ``None`` (not direct).
        ablation: ``None``, or ``images``, ``seed``, ``class_by``, ``class_names`` and ``layers``:
            per layer ``layer``, ``drops`` ``(units, classes)``, ``ablated_accuracy`` ``(units, classes)``,
            ``accuracy`` ``(classes,)``, ``counts`` ``(classes,)`` and ``bau`` (a dict).
    """
    folder = Path(atlas) / "circuits"
    (folder / "viewer").mkdir(parents=True, exist_ok=True)
    manifest = json.loads((Path(atlas) / "manifest.json").read_text())
    listed = []
    for i, pair in enumerate(pairs):
        contributions = np.asarray(pair["contributions"], dtype=np.float64)
        found = LayerInputs(pair["layer"], pair["below"], contributions, np.asarray(pair["activations"], dtype=np.float64),
                            np.asarray(pair["hits"], dtype=np.int64), pair["method"])
        np.savez(folder / f"inputs-{i}.npz", contributions=contributions.astype(np.float32),
                 activations=found.activations.astype(np.float32), hits=found.hits)
        units = {}
        for u in range(contributions.shape[0]):
            entry = {"pos": top_rows(found, u, 1, top), "neg": top_rows(found, u, -1, top)}
            if pair["kernels"] is not None:
                entry["kernels"] = {str(int(c)): np.asarray(pair["kernels"][u, int(c)], dtype=np.float32).tolist() for c, _, _ in entry["pos"] + entry["neg"]}
            units[str(u)] = entry
        payload = {"layer": pair["layer"], "below": pair["below"], "direct": pair["kernels"] is not None,
                   "fields": ["unit", "share", "contribution"], "units": units}
        (folder / "viewer" / f"inputs-{i}.js").write_text(js_register_call("circuits-inputs", i, payload), encoding="ascii")
        listed.append({"layer": pair["layer"], "below": pair["below"], "method": pair["method"], "direct": pair["kernels"] is not None,
                       "units": contributions.shape[0], "below_units": contributions.shape[1], "file": f"inputs-{i}.npz",
                       "script": f"viewer/inputs-{i}.js"})
    record = {"format": "convscope-circuits", "version": 1, "model": manifest["model"], "top": top, "hits": hits, "pairs": listed, "ablation": None}
    if ablation is not None:
        layers = []
        for j, layer in enumerate(ablation["layers"]):
            drops = np.asarray(layer["drops"], dtype=np.float32)
            accuracy = np.asarray(layer["accuracy"], dtype=np.float32)
            ablated = np.asarray(layer["ablated_accuracy"], dtype=np.float32)
            classes_count = drops.shape[1]
            np.savez(folder / f"ablation-{j}.npz", drops=drops, ablated_accuracy=ablated, accuracy=accuracy,
                     counts=np.asarray(layer["counts"], dtype=np.int64), images=np.arange(ablation["images"], dtype=np.int64),
                     classes_of_images=np.arange(ablation["images"], dtype=np.int64) % classes_count,
                     base_logits=np.zeros((ablation["images"], classes_count), dtype=np.float32),
                     bau_top=np.zeros(classes_count, dtype=np.float32), bau_random=np.zeros(classes_count, dtype=np.float32))
            seen = np.isfinite(drops)   # NaN: a class without images
            by_unit = {str(u): [[int(k), float(drops[u, k]), float(ablated[u, k] - accuracy[k])]
                                for k in np.lexsort((np.arange(classes_count), -drops[u])) if seen[u, k]][:10]
                       for u in range(drops.shape[0])}
            by_class = {str(k): [[int(u), float(drops[u, k])] for u in np.lexsort((np.arange(drops.shape[0]), -drops[:, k])) if seen[u, k]][:10]
                        for k in range(classes_count) if seen[:, k].any()}
            payload = {"layer": layer["layer"], "fields": ["class", "drop", "accuracy_change"], "units": by_unit, "classes": by_class,
                       "class_names": ablation["class_names"]}
            (folder / "viewer" / f"ablation-{j}.js").write_text(js_register_call("circuits-ablation", j, payload), encoding="ascii")
            layers.append({"layer": layer["layer"], "units": drops.shape[0], "file": f"ablation-{j}.npz", "script": f"viewer/ablation-{j}.js", "bau": layer["bau"]})
        record["ablation"] = {"images": ablation["images"], "seed": ablation["seed"], "class_by": ablation["class_by"],
                              "class_names": ablation["class_names"], "layers": layers}
    (folder / "circuits.json").write_text(json.dumps(record))
    write_viewer(atlas)
    return folder


def make_circuits_atlas(root: Path) -> dict:
    """The tiny atlas with its planted circuits folder; returns its paths and the planted numbers."""
    write_images(root / "photos", 6, size=SIDE + 8)
    weights = root / "tiny.pth"
    model = tiny_alexnet()
    torch.save(model.state_dict(), weights)
    atlas = root / "atlas"
    make_atlas(TINY, root / "photos", atlas, weights=weights, layers=list(LAYERS), k=2,
               preprocess=Preprocess(input_size=(SIDE, SIDE), resize=SIDE), progress=False, workers=0)
    rng = np.random.default_rng(0)
    upper = rng.normal(size=(6, 4))
    upper[PLANTED_UNIT] = PLANTED_INPUTS
    lower = rng.normal(size=(4, 4))
    drops = rng.uniform(-0.2, 1.0, size=(6, 4))
    drops[PLANTED_UNIT] = PLANTED_DROPS
    accuracy = np.array([0.5, 0.75, 1.0, 0.25])
    ablated = np.clip(accuracy - 0.25 * np.clip(drops, 0, None), 0, 1)
    pairs = [
        {"layer": "features.3", "below": "features.2", "method": "crop", "contributions": upper, "activations": np.ones(6),
         "hits": np.full(6, HITS), "kernels": model.features[3].weight.detach().numpy()},
        {"layer": "features.2", "below": "features.0", "method": "full", "contributions": lower, "activations": np.ones(4),
         "hits": np.full(4, HITS), "kernels": None},
    ]
    ablation = {"images": 8, "seed": 0, "class_by": "label", "class_names": CLASS_NAMES, "layers": [
        {"layer": "features.3", "drops": drops, "ablated_accuracy": ablated, "accuracy": accuracy, "counts": np.full(4, 2),
         "bau": {"n": 2, "classes": 4, "top_beats_random": 0.75, "mean_drop_top": 1.25, "mean_drop_random": 0.5}}]}
    folder = write_circuits(atlas, pairs, ablation)
    return {"root": root, "atlas": atlas, "circuits": folder, "model": model}
