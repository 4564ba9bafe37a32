"""Write :class:`~convscope.circuits.result.Circuits` into an atlas as ``ATLAS/circuits/``, atomically; read it back.

The folder (format ``convscope-circuits``, version 1; documented in ``docs/atlas-format.md``,
"Circuits"; names in :mod:`convscope.atlas.circuits_data`):

- ``circuits.json``: ``{"format", "version", "model", "top", "hits", "pairs": [{"layer", "below",
  "method", "direct", "units", "below_units", "file", "script"}], "ablation": null | {"images",
  "seed", "class_by", "class_names", "layers": [{"layer", "units", "file", "script", "bau": {"n",
  "classes", "top_beats_random", "mean_drop_top", "mean_drop_random"}}]}}``;
- ``inputs-<i>.npz`` and ``ablation-<j>.npz``: the arrays, float32 (counts, images and classes int64);
- ``viewer/inputs-<i>.js``, ``viewer/ablation-<j>.js``: what the viewer shows of them, one
  ``convscopeRegister`` call each (:func:`~convscope.atlas.viewer.js_register_call`).

Everything shown (the data scripts, :func:`read_circuits`) is computed from the stored float32
arrays, so Python and the page give the same numbers. The folder is built under a temporary
name beside ``ATLAS/circuits`` and swapped into place; a ``circuits`` folder that is not ours is
refused before anything is written. The atlas's viewer is rewritten after, so that it lists it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from convscope.atlas.circuits_data import (
    ABLATION_FIELDS,
    ABLATION_KIND,
    ABLATION_TOP,
    FOLDER,
    FORMAT,
    INPUT_FIELDS,
    INPUTS_KIND,
    RECORD,
    VERSION,
    VIEWER_FOLDER,
    CircuitsRecord,
    StoredAblation,
    StoredInputs,
    ablation_file,
    ablation_script,
    inputs_file,
    inputs_script,
    read_circuits,
)
from convscope.atlas.format import read_manifest
from convscope.atlas.viewer import js_register_call, write_viewer
from convscope.atlas.writer import atomic_folder, check_out, write_json
from convscope.circuits.result import Circuits

__all__ = ["CircuitsRecord", "check_circuits_out", "circuits_record", "read_circuits", "stored_ablation", "stored_inputs", "write_circuits"]


def check_circuits_out(out: Path) -> None:
    """Refuse ``out`` unless it is missing, empty or a circuits folder.

    Raises:
        AtlasError: ``out`` is a link, a file, or another kind of folder.
    """
    check_out(out, record=RECORD, format=FORMAT, what="a circuits folder")


def stored_inputs(found: Any, direct: bool) -> StoredInputs:
    """A :class:`~convscope.circuits.inputs.LayerInputs` as it is stored (float32 arrays)."""
    return StoredInputs(
        found.layer, found.below, np.asarray(found.contributions, dtype=np.float32), np.asarray(found.activations, dtype=np.float32),
        np.asarray(found.hits, dtype=np.int64), str(found.method), bool(direct),
    )


def stored_ablation(found: Any, class_names: tuple[str, ...] | None = None) -> StoredAblation:
    """A :class:`~convscope.circuits.ablation.LayerAblation` as it is stored."""
    as32 = {name: np.asarray(getattr(found, name), dtype=np.float32) for name in ("drops", "ablated_accuracy", "accuracy", "base_logits", "bau_top", "bau_random")}
    as64 = {name: np.asarray(getattr(found, name), dtype=np.int64) for name in ("counts", "images", "classes_of_images")}
    return StoredAblation(found.layer, **as32, **as64, class_names=class_names)


def _number(value: float) -> float | None:
    """A float for JSON: 6 significant digits, ``None`` for NaN or an infinity."""
    value = float(value)
    return float(f"{value:.6g}") if math.isfinite(value) else None


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return _number(float(finite.mean())) if finite.size else None


def inputs_payload(stored: StoredInputs, top: int, kernels: dict[int, dict[int, np.ndarray]] | None = None) -> dict[str, Any]:
    """The data script's payload of one pair: per unit its ``top`` excitatory (``pos``) and
    inhibitory (``neg``) inputs as ``[unit, share, contribution]`` rows, and for a direct pair the
    kernel (rows of floats) of each listed input found in ``kernels[unit]``.

    Example:
        >>> stored = StoredInputs("b", "a", np.array([[2.0, -3.0]], np.float32), np.ones(1, np.float32), np.ones(1, np.int64), "full", False)
        >>> inputs_payload(stored, 8)["units"]
        {'0': {'pos': [[0, 0.4, 2.0]], 'neg': [[1, -0.6, -3.0]]}}
    """
    units: dict[str, Any] = {}
    for unit in range(stored.contributions.shape[0]):
        entry: dict[str, Any] = {
            sign_name: [[c, _number(share), _number(value)] for c, share, value in stored.top(unit, top, sign)]
            for sign_name, sign in (("pos", 1), ("neg", -1))
        }
        if stored.direct:
            own = (kernels or {}).get(unit, {})
            listed = [row[0] for row in entry["pos"] + entry["neg"]]
            entry["kernels"] = {str(c): [[_number(v) for v in line] for line in np.asarray(own[c], dtype=np.float64)] for c in listed if c in own}
        units[str(unit)] = entry
    return {"layer": stored.layer, "below": stored.below, "direct": stored.direct, "fields": list(INPUT_FIELDS), "units": units}


def ablation_payload(stored: StoredAblation) -> dict[str, Any]:
    """The data script's payload of one ablation layer: per unit its top :data:`ABLATION_TOP`
    classes ``[class, drop, accuracy_change]``, per class with images its top units ``[unit, drop]``."""
    units = {str(u): [[k, _number(d), _number(a)] for k, d, a in stored.matters_for(u)] for u in range(stored.drops.shape[0])}
    classes = {str(k): [[u, _number(d)] for u, d in stored.units_for(k)] for k in np.flatnonzero(stored.counts > 0).tolist()}
    names = list(stored.class_names) if stored.class_names is not None else None
    return {"layer": stored.layer, "fields": list(ABLATION_FIELDS), "top": ABLATION_TOP, "units": units, "classes": classes, "class_names": names}


def circuits_record(circuits: Circuits, ablations: list[tuple[Any, StoredAblation]]) -> dict[str, Any]:
    """The ``circuits.json`` object (see the module's docstring)."""
    pairs = [
        {"layer": found.layer, "below": found.below, "method": str(found.method), "direct": bool(direct),
         "units": int(found.contributions.shape[0]), "below_units": int(found.contributions.shape[1]),
         "file": inputs_file(i), "script": inputs_script(i)}
        for i, (found, direct) in enumerate(zip(circuits.inputs, circuits.direct))
    ]
    ablation = None
    info = circuits.ablation_info
    if ablations:
        layers = []
        for j, (found, stored) in enumerate(ablations):
            valid = (stored.counts > 0)
            layers.append({
                "layer": stored.layer, "units": int(stored.drops.shape[0]), "file": ablation_file(j), "script": ablation_script(j),
                "bau": {"n": int(found.bau_n), "classes": int(valid.sum()), "top_beats_random": _number(stored.top_beats_random),
                        "mean_drop_top": _mean(stored.bau_top[valid]), "mean_drop_random": _mean(stored.bau_random[valid])},
            })
        ablation = {
            "images": int(info.images) if info else int(len(ablations[0][1].images)), "seed": int(info.seed) if info else 0,
            "class_by": info.class_by if info else str(ablations[0][0].class_by),
            "class_names": list(info.class_names) if info and info.class_names is not None else None, "layers": layers,
        }
    return {"format": FORMAT, "version": VERSION, "model": circuits.model, "top": int(circuits.top), "hits": int(circuits.hits), "pairs": pairs, "ablation": ablation}


def write_circuits(atlas_dir: str | Path, circuits: Circuits) -> Path:
    """Write ``circuits`` to ``ATLAS/circuits/`` (replacing an earlier one whole) and rewrite the
    atlas's viewer, which then lists it; returns the folder, absolute.

    Raises:
        AtlasError: ``atlas_dir`` is not an atlas, or ``ATLAS/circuits`` is not a circuits folder
            (a file, a link, a folder of the user's): then nothing is written.

    Example:
        >>> write_circuits("atlas", make_circuits("atlas"))  # doctest: +SKIP
        PosixPath('/home/me/atlas/circuits')
    """
    atlas_dir = Path(atlas_dir)
    read_manifest(atlas_dir)  # not an atlas: AtlasError, before anything is written
    out = (atlas_dir / FOLDER).absolute()
    check_circuits_out(out)
    names = circuits.ablation_info.class_names if circuits.ablation_info else None
    inputs = [stored_inputs(found, direct) for found, direct in zip(circuits.inputs, circuits.direct)]
    ablations = [(found, stored_ablation(found, names)) for found in circuits.ablations]
    record = circuits_record(circuits, ablations)
    with atomic_folder(out, check_circuits_out) as tmp:
        (tmp / VIEWER_FOLDER).mkdir()
        for i, stored in enumerate(inputs):
            np.savez(tmp / inputs_file(i), contributions=stored.contributions, activations=stored.activations, hits=stored.hits)
            payload = inputs_payload(stored, circuits.top, circuits.kernels.get(i))
            (tmp / inputs_script(i)).write_text(js_register_call(INPUTS_KIND, i, payload), encoding="ascii")
        for j, (_, stored) in enumerate(ablations):
            np.savez(tmp / ablation_file(j), **{name: getattr(stored, name) for name in (
                "drops", "ablated_accuracy", "accuracy", "counts", "images", "classes_of_images", "base_logits", "bau_top", "bau_random")})
            (tmp / ablation_script(j)).write_text(js_register_call(ABLATION_KIND, j, ablation_payload(stored)), encoding="ascii")
        write_json(tmp / RECORD, record)
    write_viewer(atlas_dir)
    return out
