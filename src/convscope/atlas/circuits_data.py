"""An atlas's ``circuits/`` folder as data: its names, and reading it back as numpy arrays.

``convscope circuits ATLAS`` (:mod:`convscope.circuits.folder`) writes the folder; this module is
what every reader shares (the circuits package, :func:`convscope.notebook.open_atlas`), so it
lives in the atlas layer, below both. The layout is documented in ``docs/atlas-format.md``,
"Circuits"::

    ATLAS/circuits/
      circuits.json           the record: model, top, hits, pairs, ablation
      inputs-<i>.npz          pair i: contributions (units, below_units), activations (units,), hits (units,)
      viewer/inputs-<i>.js    pair i's top inputs per unit (and kernels of a direct convolution)
      ablation-<j>.npz        ablation layer j: drops, ablated_accuracy, accuracy, counts, images, ...
      viewer/ablation-<j>.js  per unit its top classes, per class its top units

:func:`read_circuits` reads ``circuits.json`` at once and each ``.npz`` file the first time it is
asked for. :class:`StoredInputs` and :class:`StoredAblation` answer the questions the viewer asks
(a unit's top inputs; the classes a unit matters for, the units a class needs) from the arrays,
so the data scripts and Python give the same answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from convscope.errors import AtlasError

#: The folder inside an atlas, its record file and the record's ``"format"`` and ``"version"``.
FOLDER = "circuits"
RECORD = "circuits.json"
FORMAT = "convscope-circuits"
VERSION = 1
#: The data scripts' folder inside ``circuits/`` and their kinds (``convscopeRegister(kind, i, ...)``).
VIEWER_FOLDER = "viewer"
INPUTS_KIND = "circuits-inputs"
ABLATION_KIND = "circuits-ablation"
#: The fields of the rows of the data scripts.
INPUT_FIELDS = ("unit", "share", "contribution")
ABLATION_FIELDS = ("class", "drop", "accuracy_change")
#: Rows per unit and per class in an ablation data script.
ABLATION_TOP = 10
#: The arrays of each ``.npz`` file, in order.
INPUT_ARRAYS = ("contributions", "activations", "hits")
ABLATION_ARRAYS = ("drops", "ablated_accuracy", "accuracy", "counts", "images", "classes_of_images", "base_logits", "bau_top", "bau_random")


def inputs_file(index: int) -> str:
    """Pair ``index``'s arrays, relative to ``circuits/``.

    Example:
        >>> inputs_file(2), inputs_script(2), ablation_file(0), ablation_script(0)
        ('inputs-2.npz', 'viewer/inputs-2.js', 'ablation-0.npz', 'viewer/ablation-0.js')
    """
    return f"inputs-{int(index)}.npz"


def inputs_script(index: int) -> str:
    """Pair ``index``'s data script, relative to ``circuits/``."""
    return f"{VIEWER_FOLDER}/inputs-{int(index)}.js"


def ablation_file(index: int) -> str:
    """Ablation layer ``index``'s arrays, relative to ``circuits/``."""
    return f"ablation-{int(index)}.npz"


def ablation_script(index: int) -> str:
    """Ablation layer ``index``'s data script, relative to ``circuits/``."""
    return f"{VIEWER_FOLDER}/ablation-{int(index)}.js"


def shares_of(contributions: np.ndarray) -> np.ndarray:
    """``(units, below_units)``: each row over the sum of its absolute values (zeros where that is 0).

    Example:
        >>> shares_of(np.array([[2.0, -3.0], [0.0, 0.0]])).tolist()
        [[0.4, -0.6], [0.0, 0.0]]
    """
    total = np.abs(contributions).sum(axis=1, keepdims=True)
    return np.divide(contributions, total, out=np.zeros_like(contributions), where=total > 0)


def top_inputs(contributions: np.ndarray, unit: int, n: int = 8, sign: int = 1) -> list[tuple[int, float, float]]:
    """Unit ``unit``'s strongest ``n`` inputs of one sign (``1`` excitatory, ``-1`` inhibitory) as
    ``(below_unit, share, contribution)``, strongest first, lower unit first on ties; inputs of the
    other sign or zero are left out (as :meth:`convscope.circuits.inputs.LayerInputs.top`).

    Example:
        >>> top_inputs(np.array([[2.0, -3.0, 0.0]]), 0), top_inputs(np.array([[2.0, -3.0, 0.0]]), 0, sign=-1)
        ([(0, 0.4, 2.0)], [(1, -0.6, -3.0)])
    """
    row = np.asarray(contributions[unit], dtype=np.float64)
    total = float(np.abs(row).sum())
    signed = row * sign
    order = np.lexsort((np.arange(len(row)), -signed))
    return [(int(c), float(row[c] / total) if total > 0 else 0.0, float(row[c])) for c in order[:n] if signed[c] > 0]


def classes_of_unit(drops: np.ndarray, accuracy: np.ndarray, ablated_accuracy: np.ndarray, counts: np.ndarray, unit: int, n: int = ABLATION_TOP) -> list[tuple[int, float, float]]:
    """The ``n`` classes whose logit zeroing ``unit`` lowers most, as ``(class, drop, accuracy_change)``
    (``accuracy_change``: the class's accuracy with the unit zeroed minus without), largest drop
    first, lower class first on ties; classes without an image (``counts`` 0) are left out.

    Example:
        >>> drops = np.array([[0.5, 2.0, 9.0]])
        >>> classes_of_unit(drops, np.array([1.0, 1.0, 0.5]), np.array([[1.0, 0.5, 0.0]]), np.array([3, 2, 0]), 0)
        [(1, 2.0, -0.5), (0, 0.5, 0.0)]
    """
    row = np.asarray(drops[unit], dtype=np.float64)
    present = np.flatnonzero((np.asarray(counts) > 0) & np.isfinite(row))
    order = present[np.lexsort((present, -row[present]))][:n]
    return [(int(k), float(row[k]), float(ablated_accuracy[unit, k] - accuracy[k])) for k in order]


def units_of_class(drops: np.ndarray, counts: np.ndarray, class_index: int, n: int = ABLATION_TOP) -> list[tuple[int, float]]:
    """The ``n`` units whose zeroing lowers class ``class_index``'s logit most, as ``(unit, drop)``,
    largest first, lower unit first on ties (none for a class without an image).

    Example:
        >>> units_of_class(np.array([[0.5, 1.0], [2.0, 1.0], [0.5, 0.0]]), np.array([4, 1]), 0, n=2)
        [(1, 2.0), (0, 0.5)]
    """
    if counts[class_index] <= 0:
        return []
    column = np.asarray(drops[:, class_index], dtype=np.float64)
    units = np.flatnonzero(np.isfinite(column))
    order = units[np.lexsort((units, -column[units]))][:n]
    return [(int(u), float(column[u])) for u in order]


@dataclass(frozen=True, eq=False)
class StoredInputs:
    """One pair's inputs as stored (``inputs-<i>.npz``): every unit of ``layer`` and its inputs from ``below``.

    Attributes:
        layer, below: the upper and the lower layer.
        contributions: ``(units, below_units)`` float32: each unit's mean contribution (gradient x
            activation at its hits) of every lower unit.
        activations: ``(units,)`` float32: each unit's mean value at those hits.
        hits: ``(units,)`` int64: hits averaged per unit.
        method: ``"crop"`` or ``"full"``; direct: whether ``below`` feeds ``layer`` through one convolution.
    """

    layer: str
    below: str
    contributions: np.ndarray
    activations: np.ndarray
    hits: np.ndarray
    method: str
    direct: bool

    @cached_property
    def shares(self) -> np.ndarray:
        """``(units, below_units)`` float32: :func:`shares_of` the contributions."""
        return shares_of(self.contributions)

    def top(self, unit: int, n: int = 8, sign: int = 1) -> list[tuple[int, float, float]]:
        """:func:`top_inputs` of ``unit``: ``(below_unit, share, contribution)``, strongest first."""
        return top_inputs(self.contributions, unit, n, sign)


@dataclass(frozen=True, eq=False)
class StoredAblation:
    """One layer's ablation as stored (``ablation-<j>.npz``): each unit zeroed on a sample of images.

    Attributes:
        layer: the layer whose units were zeroed, one at a time.
        drops: ``(units, classes)`` float32: per unit, each class's mean logit drop over the class's images.
        ablated_accuracy: ``(units, classes)`` float32: each class's accuracy with the unit zeroed.
        accuracy: ``(classes,)`` float32: each class's accuracy without ablation (NaN: no image).
        counts: ``(classes,)`` int64: images per class in the sample.
        images: ``(N,)`` int64: the sample (indices into the data set's image list).
        classes_of_images: ``(N,)`` int64: each sampled image's class.
        base_logits: ``(N, classes)`` float32: the logits without ablation.
        bau_top, bau_random: ``(classes,)`` float32: the mean logit drop with the class's ``bau_n``
            top units zeroed together, and with as many random units (NaN where a class has no image).
        class_names: the classes' names, or ``None``.
    """

    layer: str
    drops: np.ndarray
    ablated_accuracy: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray
    images: np.ndarray
    classes_of_images: np.ndarray
    base_logits: np.ndarray
    bau_top: np.ndarray
    bau_random: np.ndarray
    class_names: tuple[str, ...] | None = None

    def matters_for(self, unit: int, n: int = ABLATION_TOP) -> list[tuple[int, float, float]]:
        """:func:`classes_of_unit`: ``(class, drop, accuracy_change)``, largest drop first."""
        return classes_of_unit(self.drops, self.accuracy, self.ablated_accuracy, self.counts, unit, n)

    def units_for(self, class_index: int, n: int = ABLATION_TOP) -> list[tuple[int, float]]:
        """:func:`units_of_class`: ``(unit, drop)``, largest drop first."""
        return units_of_class(self.drops, self.counts, class_index, n)

    @property
    def top_beats_random(self) -> float:
        """The share of classes with images where zeroing their top units lowers the logit more
        than zeroing as many random units (NaN without such a class)."""
        valid = (self.counts > 0) & np.isfinite(self.bau_top) & np.isfinite(self.bau_random)
        return float(np.mean(self.bau_top[valid] > self.bau_random[valid])) if valid.any() else float("nan")


@dataclass(frozen=True, eq=False)
class CircuitsRecord:
    """A ``circuits/`` folder: its record (``circuits.json``) now, its arrays when asked for.

    Attributes:
        path: the folder (``ATLAS/circuits``).
        record: the parsed ``circuits.json`` (read it, do not change it).
    """

    path: Path
    record: dict[str, Any] = field(repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """``(layer, below)`` of every pair, in the record's order."""
        return [(str(p["layer"]), str(p["below"])) for p in self._pairs]

    @property
    def ablation_layers(self) -> list[str]:
        """The layers whose units were zeroed (none without an ablation)."""
        ablation = self.record.get("ablation")
        return [str(entry["layer"]) for entry in ablation["layers"]] if isinstance(ablation, dict) else []

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The names of the classes of the ablation, or ``None``."""
        ablation = self.record.get("ablation")
        names = ablation.get("class_names") if isinstance(ablation, dict) else None
        return tuple(str(n) for n in names) if isinstance(names, list) else None

    def inputs(self, layer: str, below: str | None = None) -> StoredInputs:
        """The inputs of ``layer``'s units (from ``below``; default: the pair's only lower layer).

        Raises:
            AtlasError: no such pair, or its file is missing or damaged.
        """
        matches = [(i, p) for i, p in enumerate(self._pairs) if p["layer"] == layer and (below is None or p["below"] == below)]
        if not matches:
            known = ", ".join(f"{a} <- {b}" for a, b in self.pairs) or "none"
            raise AtlasError(f"the circuits at {self.path} have no pair for layer {layer!r}" + (f" from {below!r}" if below else ""), hint=f"its pairs (layer <- below): {known}")
        index, entry = matches[0]
        key = f"inputs-{index}"
        if key not in self._cache:
            arrays = self._arrays(entry, INPUT_ARRAYS)
            self._cache[key] = StoredInputs(str(entry["layer"]), str(entry["below"]), arrays["contributions"], arrays["activations"], arrays["hits"], str(entry.get("method", "")), bool(entry.get("direct")))
        return self._cache[key]

    def ablation(self, layer: str) -> StoredAblation:
        """The ablation of ``layer``'s units.

        Raises:
            AtlasError: the layer was not ablated, or its file is missing or damaged.
        """
        ablation = self.record.get("ablation")
        entries = [e for e in (ablation["layers"] if isinstance(ablation, dict) else []) if e.get("layer") == layer]
        if not entries:
            raise AtlasError(f"the circuits at {self.path} hold no ablation of layer {layer!r}", hint=f"ablated layers: {', '.join(self.ablation_layers) or 'none'}; add one with `convscope circuits ATLAS --ablation N --ablation-layers {layer}`")
        key = f"ablation-{layer}"
        if key not in self._cache:
            arrays = self._arrays(entries[0], ABLATION_ARRAYS)
            self._cache[key] = StoredAblation(layer, **arrays, class_names=self.class_names)
        return self._cache[key]

    @property
    def _pairs(self) -> list[dict[str, Any]]:
        pairs = self.record.get("pairs")
        return [p for p in pairs if isinstance(p, dict)] if isinstance(pairs, list) else []

    def _arrays(self, entry: dict[str, Any], names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The arrays ``names`` of the ``.npz`` file ``entry["file"]`` (kept inside the folder)."""
        name = entry.get("file")
        root = self.path.resolve()
        path = (self.path / str(name)).resolve()
        if not isinstance(name, str) or not path.is_relative_to(root):
            raise AtlasError(f"an entry of {self.path / RECORD} points outside the folder: {name!r}", hint="rerun `convscope circuits ATLAS`")
        try:
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in names}
        except (OSError, KeyError, ValueError) as error:
            raise AtlasError(f"cannot read {path}: {error}", hint="the circuits folder is damaged; rerun `convscope circuits ATLAS`") from error


def read_circuits(atlas_dir: str | Path) -> CircuitsRecord | None:
    """The ``circuits/`` folder of the atlas at ``atlas_dir``, or ``None`` where it has none (or
    the folder's record is not a circuits record: as the viewer, which then does not list it).

    Example:
        >>> found = read_circuits("atlas")  # doctest: +SKIP
        >>> found.inputs("features.4").top(3)  # doctest: +SKIP
        [(17, 0.12, 41.5), ...]
    """
    folder = Path(atlas_dir) / FOLDER
    path = folder / RECORD
    if folder.is_symlink() or path.is_symlink() or not path.is_file():
        return None
    try:
        record = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    return CircuitsRecord(folder, record)
