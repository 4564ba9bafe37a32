"""Explanations kept inside an atlas: ``convscope explain ATLAS IMAGE...`` writes ``ATLAS/explain/<name>/``.

One folder per image, named from the image file's stem (:func:`safe_name`), each replaced
atomically (:func:`~convscope.atlas.writer.atomic_folder`); every image is explained before any
folder is written, and the atlas's viewer is refreshed after the last. A folder holds what the
standalone explanation folder holds (:mod:`convscope.explain.folder`: ``explanation.json``,
``explanation.png``) and what the viewer draws from:

    ATLAS/explain/<name>/
      explanation.json      {"format": "convscope-explanation", "version": 2, ..., "explanations": [one]}
      explanation.png       the figure
      image.png             the image in the model-input frame (PNG: exact)
      heatmaps/<l>-<unit>.png   layer l's (its place in the record) unit's conditional heatmap overlay
      activations.js        every unit's activation map of every layer, as a data script

``ATLAS/explain/classes/`` is kept for a class's most relevant units over a folder
(``convscope-classes``): an image is never given that name. A name taken by a folder that is not
an explanation (or by another image's explanation) moves on to ``<name>-2``, ``<name>-3``, ...;
an explanation of the same image file is replaced.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convscope.atlas.format import read_manifest
from convscope.atlas.viewer import _read_record, js_register_call, write_viewer
from convscope.atlas.writer import atomic_folder, write_json, write_png
from convscope.errors import AtlasError
from convscope.explain.cards import atlas_cards
from convscope.explain.explanation import Explanation
from convscope.explain.figure import explanation_figure
from convscope.explain.folder import FORMAT, VERSION, check_explanation_out
from convscope.explain.viewer_data import explanation_record, heatmap_overlay, maps_payload

#: The folder inside an atlas that holds its explanations.
EXPLAIN = "explain"
#: Names an image's folder never takes (the per-class folder).
RESERVED = frozenset({"classes"})
IMAGE_FILE = "image.png"
MAPS_FILE = "activations.js"
#: The data script's kind (``convscopeRegister(kind, null, payload)``).
MAPS_KIND = "explanation-maps"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(image: str | Path) -> str:
    """A folder name from the image file's stem: letters, digits, ``.``, ``_``, ``-`` (other runs
    become ``-``), at most 60 characters, not starting with ``.`` or ``-``; ``image`` if nothing is left.

    Example:
        >>> safe_name("photos/n02085620_Chihuahua.jpg"), safe_name("../<b>é.png"), safe_name(".jpg")
        ('n02085620_Chihuahua', 'b', 'jpg')
    """
    stem = Path(str(image)).stem or Path(str(image)).name
    name = _UNSAFE.sub("-", stem).strip(".-")[:60].strip(".-")
    return name or "image"


def explanations_home(atlas: str | Path) -> Path:
    """``ATLAS/explain``, after checking that ``atlas`` is an atlas and that ``explain`` there is
    missing or a real folder.

    Raises:
        AtlasError: not an atlas, or ``ATLAS/explain`` is a link or a file (never followed).
    """
    read_manifest(Path(atlas))  # not an atlas: AtlasError
    home = (Path(atlas) / EXPLAIN).absolute()
    if home.is_symlink() or (home.exists() and not home.is_dir()):
        raise AtlasError(
            f"{home} is {'a symbolic link' if home.is_symlink() else 'a file'}, not a folder of explanations; convscope does not write there",
            hint="move it away, or write the explanation elsewhere with --out DIR",
        )
    return home


def _explains(folder: Path, image: str) -> bool:
    """``folder`` is an explanation folder of ``image`` (the same path as recorded)."""
    record = _read_record(folder / "explanation.json")
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return False
    entries = record.get("explanations")
    return isinstance(entries, list) and len(entries) == 1 and isinstance(entries[0], dict) and entries[0].get("image") == image


def choose_names(home: Path, images: Sequence[str]) -> list[str]:
    """A folder name per image (:func:`safe_name`, unique among them, not :data:`RESERVED`):
    an existing folder is taken over only if it explains the same image path."""
    names: list[str] = []
    for image in images:
        base = safe_name(image)
        for n in range(1, 10_000):
            name = base if n == 1 else f"{base}-{n}"
            folder = home / name
            if name in RESERVED or name in names:
                continue
            if not (folder.exists() or folder.is_symlink()) or (not folder.is_symlink() and _explains(folder, image)):
                names.append(name)
                break
        else:  # pragma: no cover - ten thousand folders of one name
            raise AtlasError(f"no free folder name for {image} in {home}", hint="remove old explanations")
    return names


def write_explanation_folder(
    out: Path, explanation: Explanation, image: str, model: dict[str, Any] | None) -> Path:
    """Write one explanation with everything the viewer draws to the folder ``out`` (atomically)."""
    out = Path(out).absolute()
    with atomic_folder(out, check_explanation_out) as tmp:
        record: dict[str, Any] = {"image": str(image), "figure": "explanation.png", "image_file": IMAGE_FILE,
                                  "activations_file": MAPS_FILE, **explanation_record(explanation)}
        for index, (entry, layer) in enumerate(zip(record["layers"], explanation.layers)):
            for unit_entry, unit in zip(entry["units"], layer.units):
                if unit.heatmap is None:
                    continue
                rgba, scale = heatmap_overlay(unit.heatmap)
                path = f"heatmaps/{index}-{unit.unit:04d}.png"
                write_png(tmp / path, rgba)
                unit_entry["heatmap_file"] = path
                unit_entry["heatmap_scale"] = scale
        write_png(tmp / "explanation.png", explanation_figure(explanation, cards=atlas_cards(explanation)))
        write_png(tmp / IMAGE_FILE, explanation.image)
        (tmp / MAPS_FILE).write_text(js_register_call(MAPS_KIND, None, maps_payload(explanation)), encoding="ascii")
        write_json(tmp / "explanation.json", {
            "format": FORMAT, "version": VERSION, "model": model, "method": explanation.method, "explanations": [record],
        })
    return out


def write_in_atlas(
    atlas: str | Path, explanations: Sequence[Explanation], images: Sequence[str], model: dict[str, Any] | None = None
) -> list[Path]:
    """Write each explanation to ``ATLAS/explain/<name>/`` and refresh the atlas's viewer;
    returns the folders written, in order.

    Example:
        >>> folders = write_in_atlas("atlas", [explain("atlas", "dog.jpg")], ["dog.jpg"])  # doctest: +SKIP
    """
    home = explanations_home(atlas)
    names = choose_names(home, [str(image) for image in images])
    written = [write_explanation_folder(home / name, e, str(image), model) for name, e, image in zip(names, explanations, images)]
    write_viewer(Path(atlas))
    return written
