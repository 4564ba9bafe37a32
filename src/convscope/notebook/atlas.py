"""An atlas opened for interactive work: :func:`open_atlas` reads the manifest, the rest on demand."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from convscope.atlas.circuits_data import CircuitsRecord, read_circuits
from convscope.atlas.format import read_manifest
from convscope.errors import AtlasError, ConvscopeError
from convscope.notebook.cards import BOX, SMALL
from convscope.notebook.columns import layer_summary
from convscope.notebook.html import esc
from convscope.notebook.layer import Layer
from convscope.notebook.table import Table


def open_atlas(path: str | Path) -> "Atlas":
    """Open the atlas folder ``path`` (format version 1, 2 or 3) for reading in Python.

    Only ``manifest.json`` is read now; a layer's records (``hits.js``) the first time its units are
    asked for, and images when pictures are. In Jupyter an atlas, a layer and a unit display
    themselves (a summary table, a grid of units, a unit card); no server is started.
    :func:`convscope.read_manifest` and :func:`convscope.read_hits` stay for scripts that want
    the JSON.

    Raises:
        AtlasError: the folder is missing, is not an atlas, or is of an unknown version.

    Example:
        >>> atlas = open_atlas("atlas/")  # doctest: +SKIP
        >>> atlas.layers[-1], atlas["layer3.2"].stats["firing_rate"].shape  # doctest: +SKIP
        ('layer3.2', (64,))
        >>> atlas["layer3.2"][5]  # in Jupyter: the unit card  # doctest: +SKIP
    """
    root = Path(path).expanduser()
    manifest = read_manifest(root)
    names = []
    for entry in manifest["layers"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise AtlasError(f"{root / 'manifest.json'} has a layer entry without a name", hint="rebuild the atlas with `convscope atlas`")
        names.append(entry["name"])
    if len(set(names)) != len(names):
        raise AtlasError(f"{root / 'manifest.json'} lists a layer twice", hint="rebuild the atlas with `convscope atlas`")
    return Atlas(root, manifest)


@dataclass(frozen=True, eq=False)
class Atlas:
    """An atlas folder and its manifest; its layers by name or position.

    Build it with :func:`open_atlas`. ``atlas["layer3.2"]`` or ``atlas[0]`` is a
    :class:`~convscope.notebook.layer.Layer` (the same object each time, so what it has read
    stays read); ``len(atlas)`` is the number of layers, iteration gives them in order.

    Attributes:
        path: the atlas folder.
        manifest: the parsed ``manifest.json`` (read it, do not change it).
    """

    path: Path
    manifest: dict[str, Any] = field(repr=False)

    @cached_property
    def _layers(self) -> dict[str, Layer]:
        return {entry["name"]: Layer(self, entry) for entry in self.manifest["layers"]}

    @property
    def version(self) -> int:
        """The atlas format version (1, 2 or 3; statistics from 3 on)."""
        return int(self.manifest["version"])

    @property
    def layers(self) -> tuple[str, ...]:
        """The layer names, in the order of the network."""
        return tuple(self._layers)

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The classes of the scanned images (``dataset.labels``: what ``top_class`` and a
        label's ``index`` count in), or ``None`` without labels. A classifier's own output
        names are ``manifest["model"]["class_names"]``."""
        labels = (self.manifest.get("dataset") or {}).get("labels")
        return tuple(str(n) for n in labels) if isinstance(labels, list) else None

    @property
    def model(self) -> str:
        """The model source the atlas was made from."""
        return str((self.manifest.get("model") or {}).get("source", "?"))

    @property
    def image_count(self) -> int | None:
        """How many images were scanned."""
        count = (self.manifest.get("dataset") or {}).get("image_count")
        return None if count is None else int(count)

    @cached_property
    def circuits(self) -> CircuitsRecord | None:
        """The atlas's circuits (``convscope circuits ATLAS``), or ``None`` where it has none:
        ``.pairs``, ``.inputs(layer)`` (each unit's inputs from the layer below, numpy arrays
        with ``shares`` and ``top(unit, n, sign)``), ``.ablation(layer)`` (``drops``, ``accuracy``,
        ... with ``matters_for(unit)`` and ``units_for(class)``); read when first asked for.

        Example:
            >>> open_atlas("atlas/").circuits.inputs("features.4").top(7, n=2)  # doctest: +SKIP
            [(12, 0.21, 40.5), (3, 0.08, 15.2)]
        """
        return read_circuits(self.path)

    def summary(self) -> Table:
        """One row per layer: name, type, units, rows, cols, receptive field, and the shares of
        dead and always-on units, mean firing rate, selectivity, purity, label agreement and
        confident labels (NaN where the atlas has none). From the manifest alone."""
        return layer_summary(self.manifest["layers"])

    def __getitem__(self, key: str | int) -> Layer:
        if isinstance(key, str):
            if key not in self._layers:
                raise AtlasError(f"the atlas at {self.path} has no layer {key!r}", hint=f"its layers: {', '.join(self.layers)}")
            return self._layers[key]
        if isinstance(key, int) and not isinstance(key, bool):
            if not -len(self) <= key < len(self):
                raise AtlasError(f"the atlas at {self.path} has {len(self)} layers, no layer {key}", hint="count from 0, or name the layer")
            return self._layers[self.layers[key]]
        raise ConvscopeError(f"a layer is named or numbered, got {key!r}", hint=f"atlas[{self.layers[0]!r}] or atlas[0]" if self.layers else None)

    def __contains__(self, name: object) -> bool:
        return name in self._layers

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._layers.values())

    def to_html(self) -> str:
        """The atlas's facts and its per-layer summary table (from the manifest alone)."""
        dataset = self.manifest.get("dataset") or {}
        classes = f" · {len(self.class_names)} classes" if self.class_names else ""
        facts = (
            f"{self.image_count if self.image_count is not None else '?'} images from {dataset.get('root', '?')}{classes} · "
            f"k {self.manifest.get('k', '?')} · projection {self.manifest.get('projection') or 'none'} · format version {self.version}"
        )
        return (
            f'<div style="{BOX}"><div><span style="font-size: 15px; font-weight: 600">{esc(self.model)}</span></div>'
            f'<div style="{SMALL}; margin-bottom: 6px">{esc(facts)}</div>'
            f"{self.summary().to_html()}"
            f'<div style="{SMALL}; margin-top: 6px"><code>atlas[name]</code> shows a layer, <code>atlas[name][i]</code> a unit</div></div>'
        )

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"Atlas({str(self.path)!r}, version {self.version}, {len(self)} layers, model {self.model!r})"
