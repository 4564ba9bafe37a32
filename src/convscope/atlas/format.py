"""The atlas on disk, version 5: names, paths and reading (see docs/atlas-format.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from convscope.atlas.records import expand, parse_data_script
from convscope.errors import AtlasError

FORMAT = "convscope-atlas"
VERSION = 5
#: Versions this convscope reads: version 1 is version 2 with every unit grid and mosaic written;
#: version 4 stores each layer's records once, compact, in ``hits.js`` (:mod:`~convscope.atlas.records`);
#: version 5 is version 4 that may hold a ``circuits/`` folder (:mod:`~convscope.atlas.circuits_data`).
READABLE = (1, 2, 3, 4, 5)

#: The figure of the layers' statistics over depth (version 3, when the scan kept statistics).
STATISTICS_FIGURE = "statistics.png"


def layer_dir(layer: str) -> str:
    """The folder of a layer inside the atlas, ``layers/<layer>``."""
    return f"layers/{layer}"


def hits_file(layer: str) -> str:
    """A layer's records (version 4): the data script the viewer loads and tools read, ``layers/<layer>/hits.js``."""
    return f"{layer_dir(layer)}/hits.js"


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
        AtlasError: the folder or its manifest is missing, unreadable or of a version not in
            :data:`READABLE`.
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
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise AtlasError(
            f"{path} is not a convscope atlas manifest",
            hint="pass the folder that `convscope atlas` wrote",
        )
    if manifest.get("version") not in READABLE:
        raise AtlasError(
            f"{path} has atlas format version {manifest.get('version')!r}; this convscope reads versions "
            + ", ".join(map(str, READABLE[:-1])) + " and " + str(READABLE[-1]),
            hint="rebuild the atlas with this convscope version, or upgrade convscope",
        )
    if not isinstance(manifest.get("layers"), list):
        raise AtlasError(f"{path} has no layer list", hint="rebuild the atlas with `convscope atlas MODEL IMAGES --out DIR`")
    return manifest


def read_hits(atlas: Path, layer: str) -> dict[str, Any]:
    """The records of the layer named ``layer`` (:func:`read_layer_hits`), checked like the viewer checks them."""
    for entry in read_manifest(atlas)["layers"]:
        if isinstance(entry, dict) and entry.get("name") == layer:
            return read_layer_hits(Path(atlas), entry)
    raise AtlasError(f"the atlas {atlas} has no layer {layer!r}", hint="its manifest.json lists the layers it has")


def read_layer_hits(atlas_dir: Path, layer: Any) -> dict[str, Any]:
    """The records a manifest layer entry points to, kept inside the atlas, each hit a dict (the
    version-3 shape of docs/atlas-format.md, whichever version is stored: a version-4 ``hits.js``
    is expanded by :func:`~convscope.atlas.records.expand`, an older ``hits.json`` read as it is)."""
    if not isinstance(layer, dict) or not isinstance(layer.get("hits"), str):
        raise AtlasError(
            f"a layer entry of {atlas_dir / 'manifest.json'} has no 'hits' path",
            hint="rebuild the atlas with `convscope atlas`",
        )
    root = atlas_dir.resolve()
    path = (atlas_dir / layer["hits"]).resolve()
    if not path.is_relative_to(root):
        raise AtlasError(
            f"layer {layer.get('name')!r} points its hits outside the atlas: {layer['hits']!r}",
            hint="the manifest was edited or corrupted; rebuild the atlas with `convscope atlas`",
        )
    if not path.is_file():
        raise AtlasError(
            f"layer {layer.get('name')!r} has no hits file at {path}",
            hint="the atlas is incomplete; rebuild it with `convscope atlas`",
        )
    hits = read_json(path) if path.suffix == ".json" else _read_data_script(path)
    if not isinstance(hits, dict) or not isinstance(hits.get("units"), list):
        raise AtlasError(f"{path} has no unit list", hint="rebuild the atlas with `convscope atlas`")
    return hits


def _read_data_script(path: Path) -> Any:
    """A version-4 ``hits.js``, expanded."""
    try:
        return expand(parse_data_script(path.read_text(encoding="ascii")))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError) as error:
        raise AtlasError(
            f"cannot read {path}: {error}",
            hint="the atlas is damaged; rebuild it with `convscope atlas`",
        ) from error


def read_json(path: Path) -> Any:
    """``json.load`` of a file, with unreadable or malformed files as AtlasError."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AtlasError(
            f"cannot read {path}: {error}",
            hint="the atlas is damaged; rebuild it with `convscope atlas`",
        ) from error
