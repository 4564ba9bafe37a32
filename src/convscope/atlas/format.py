"""The atlas on disk, version 1: names, paths and reading (see docs/atlas-format.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from convscope.errors import AtlasError

FORMAT = "convscope-atlas"
VERSION = 1


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


def read_manifest(atlas_dir: Path) -> dict[str, Any]:
    """The parsed ``manifest.json`` of an atlas, checked for format and version.

    Raises:
        AtlasError: the folder or its manifest is missing, unreadable or not version 1.
    """
    atlas_dir = Path(atlas_dir)
    path = atlas_dir / "manifest.json"
    if not atlas_dir.is_dir():
        raise AtlasError(
            f"no atlas folder at {atlas_dir}",
            hint="check the path, or build one with `convscope atlas MODEL IMAGES --out DIR`",
        )
    if not path.is_file():
        raise AtlasError(
            f"{atlas_dir} has no manifest.json, so it is not a convscope atlas",
            hint="pass the folder that `convscope atlas` wrote (the one holding manifest.json)",
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AtlasError(f"cannot read {path}: {exc}", hint="rebuild the atlas") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise AtlasError(
            f"{path} is not a convscope atlas manifest",
            hint="pass the folder that `convscope atlas` wrote",
        )
    if manifest.get("version") != VERSION:
        raise AtlasError(
            f"{path} has atlas format version {manifest.get('version')!r}; this convscope reads version {VERSION}",
            hint="rebuild the atlas with this convscope version, or upgrade convscope",
        )
    if not isinstance(manifest.get("layers"), list):
        raise AtlasError(f"{path} has no layer list", hint="rebuild the atlas with `convscope atlas MODEL IMAGES --out DIR`")
    return manifest


def read_hits(atlas: Path, layer: str) -> dict[str, Any]:
    """The ``hits.json`` of one layer."""
    return json.loads((Path(atlas) / layer_dir(layer) / "hits.json").read_text(encoding="utf-8"))
