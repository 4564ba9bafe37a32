"""The atlas on disk, version 1: names, paths and reading (see docs/atlas-format.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from convscope.errors import AtlasError

FORMAT = "convscope-atlas"
VERSION = 1
MANIFEST = "manifest.json"


def layer_dir(layer: str) -> str:
    """The folder of a layer inside the atlas, ``layers/<layer>``."""
    return f"layers/{layer}"


def unit_file(layer: str, unit: int, kind: str = "") -> str:
    """A unit's grid PNG: ``kind`` is ``""`` (patches), ``"projection"`` or ``"occlusion"``."""
    suffix = f"-{kind}" if kind else ""
    return f"{layer_dir(layer)}/units/{unit:04d}{suffix}.png"


def image_file(index: int) -> str:
    """A winning image, stored once in the model-input frame."""
    return f"images/{index:06d}.jpg"


def read_manifest(atlas: Path) -> dict[str, Any]:
    """The manifest of the atlas folder ``atlas``, checked for format and version."""
    path = Path(atlas) / MANIFEST
    if not path.is_file():
        raise AtlasError(f"{atlas} is not a convscope atlas (no {MANIFEST})", hint="build one with `convscope atlas MODEL IMAGES --out DIR`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AtlasError(f"cannot read {path}: {exc}", hint="rebuild the atlas") from None
    if manifest.get("format") != FORMAT:
        raise AtlasError(f"{path} is not a convscope atlas manifest", hint="point at the folder `convscope atlas` wrote")
    if manifest.get("version") != VERSION:
        raise AtlasError(
            f"{atlas} is atlas format version {manifest.get('version')}; this convscope reads version {VERSION}",
            hint="rebuild the atlas with this convscope, or use the convscope that wrote it",
        )
    return manifest


def read_hits(atlas: Path, layer: str) -> dict[str, Any]:
    """The ``hits.json`` of one layer."""
    return json.loads((Path(atlas) / layer_dir(layer) / "hits.json").read_text(encoding="utf-8"))
