"""A real atlas of a tiny padded net with explanations inside it, for the explanation viewer's tests.

The net (tests/tiny_models.py ``tiny_alexnet``: a padded 3x3 conv, a pool, a padded 3x3 conv;
4 classes) is scanned over random images at 40 px; its manifest then gets class names, one of
them hostile (``<script>`` and ``&``), and ``convscope explain ATLAS IMAGE`` (the CLI function)
writes ``ATLAS/explain/<name>/`` and refreshes the viewer.

Example:
    >>> atlas = make_explained_atlas(tmp_path)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from convscope.analysis.in_atlas import refresh_viewer
from convscope.cli import main
from convscope.network.preprocess import Preprocess
from convscope.pipeline import make_atlas
from tiny_models import tiny_alexnet, write_images

TINY = str(Path(__file__).resolve().parents[1] / "tiny_models.py") + ":tiny_alexnet"
SIDE = 40
LAYERS = ("features.0", "features.3")
HOSTILE_CLASS = "<script>window.__pwned=1</script> & <b>co</b>"
CLASS_NAMES = ["tench", "goldfish", "white shark", "tiger shark"]


def build_atlas(root: Path, count: int = 6) -> dict:
    """The atlas (``root/atlas``) without explanations; returns its paths."""
    write_images(root / "photos", count, size=SIDE + 8)
    weights = root / "tiny.pth"
    torch.save(tiny_alexnet().state_dict(), weights)
    atlas = root / "atlas"
    make_atlas(TINY, root / "photos", atlas, weights=weights, layers=list(LAYERS), k=2,
               preprocess=Preprocess(input_size=(SIDE, SIDE), resize=SIDE), progress=False, workers=0)
    return {"root": root, "atlas": atlas, "weights": weights, "image": root / "photos" / "img000.png",
            "images": sorted((root / "photos").glob("*.png"))}


def name_classes(atlas: Path, hostile_class: int) -> None:
    """Give the atlas's model class names, ``HOSTILE_CLASS`` at ``hostile_class``."""
    manifest = json.loads((atlas / "manifest.json").read_text())
    names = list(CLASS_NAMES)
    names[hostile_class] = HOSTILE_CLASS
    manifest["model"]["class_names"] = names
    (atlas / "manifest.json").write_text(json.dumps(manifest))
    refresh_viewer(atlas)


def make_explained_atlas(root: Path) -> dict:
    """The atlas with ``img000`` explained (its predicted class named ``HOSTILE_CLASS``, region
    ``8,8,14,14``) and ``img001`` explained with ``--no-heatmaps``."""
    paths = build_atlas(root)
    atlas = paths["atlas"]
    from convscope import explain

    predicted = explain(atlas, paths["image"], top=1, heatmaps=False).predicted
    name_classes(atlas, predicted)
    assert main(["explain", str(atlas), str(paths["image"]), "--top", "3", "--region", "8,8,14,14"]) == 0
    assert main(["explain", str(atlas), str(paths["images"][1]), "--top", "2", "--no-heatmaps"]) == 0
    return paths
