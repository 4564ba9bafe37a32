"""One layer of an atlas: its units, read from its records (``hits.js``) on first use, its statistics as arrays, and its grid of units in Jupyter."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NoReturn

import numpy as np

from convscope.atlas.format import read_layer_hits
from convscope.errors import AtlasError, ConvscopeError
from convscope.notebook.cards import BOX, SMALL, THUMB_CELL, unit_tile
from convscope.notebook.columns import field_text, unit_statistics, unit_table
from convscope.notebook.html import MUTED, esc, number, percent
from convscope.notebook.parents import ParentAtlas, no_stats
from convscope.notebook.patches import cut, padding_fill, padding_mode, thumbnail
from convscope.notebook.table import Table
from convscope.notebook.unit import Unit

#: Units a layer shows inline by default (each as a small grid of its top patches).
SHOWN_UNITS = 32


@dataclass(frozen=True, eq=False)
class Layer:
    """A layer of an atlas. Its ``hits.json`` is read the first time units, hits or statistics
    are asked for, and kept on this object (``atlas[name]`` returns the same object each time).

    Attributes:
        atlas: the :class:`~convscope.notebook.atlas.Atlas` it belongs to.
        entry: the layer's entry in the manifest, as stored (read it, do not change it).

    ``len(layer)`` is its number of units; ``layer[7]`` is unit 7 (negative numbers count
    from the end); iterating gives every :class:`~convscope.notebook.unit.Unit`.

    Example:
        >>> layer = open_atlas("atlas/")["layer3.2"]  # doctest: +SKIP
        >>> layer.units, layer.stats["quantiles"].shape, len(layer.filter(dead=True))  # doctest: +SKIP
        (64, (64, 9), 0)
    """

    atlas: ParentAtlas = field(repr=False)
    entry: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        """PyTorch's dotted module name of the layer."""
        return str(self.entry.get("name"))

    @property
    def type(self) -> str:
        """The module's class name (``Conv2d``, ``BasicBlock``)."""
        return str(self.entry.get("type", "?"))

    @property
    def shape(self) -> tuple[int, int, int] | None:
        """``(units, rows, cols)`` of the layer's output, or ``None`` when not stored."""
        shape = self.entry.get("shape")
        return tuple(int(v) for v in shape) if isinstance(shape, list) and len(shape) == 3 else None  # type: ignore[return-value]

    @property
    def units(self) -> int:
        """The number of units (from the manifest: reads no ``hits.json``)."""
        return int(self.entry.get("units") or 0)

    @property
    def receptive_field(self) -> str | None:
        """The receptive field in short (``"81 s4 o-40"``; per run of units where they differ)."""
        return field_text(self.entry)

    @property
    def has_stats(self) -> bool:
        """Whether the atlas keeps this layer's statistics (format version 3; reads no ``hits.json``)."""
        return isinstance(self.entry.get("summary"), dict)

    @property
    def summary(self) -> dict[str, Any]:
        """The manifest's summary over the layer's units: shares ``dead``, ``always_on``, mean
        ``firing_rate``, and with labels ``selectivity``, ``purity``, ``label_agreement``,
        ``confident_labels`` (see docs/atlas-format.md)."""
        if not self.has_stats:
            self._no_stats("a summary")
        return dict(self.entry["summary"])

    @property
    def loaded(self) -> bool:
        """Whether ``hits.json`` has been read (opening an atlas reads none)."""
        return "data" in self.__dict__

    @cached_property
    def data(self) -> dict[str, Any]:
        """The parsed ``hits.json`` (read on first use, then kept)."""
        data = read_layer_hits(self.atlas.path, self.entry)
        if data.get("layer", self.name) != self.name:
            raise AtlasError(
                f"the hits file of layer {self.name!r} belongs to layer {data.get('layer')!r}",
                hint="the atlas was edited or corrupted; rebuild it with `convscope atlas`",
            )
        return data

    @cached_property
    def _records(self) -> dict[int, dict[str, Any]]:
        records = {}
        for record in self.data["units"]:
            if not isinstance(record, dict) or not isinstance(record.get("unit"), int):
                raise AtlasError(f"a unit record of layer {self.name!r} has no unit number", hint="rebuild the atlas with `convscope atlas`")
            records[record["unit"]] = record
        return records

    @property
    def k(self) -> int:
        """Hits kept per unit."""
        return int(self.data.get("k", self.atlas.manifest.get("k", 9)))

    @property
    def quantile_levels(self) -> np.ndarray:
        """``(Q,)`` the levels of every unit's quantiles."""
        if not self.has_stats:
            self._no_stats("quantiles")
        return np.asarray(self.data.get("quantile_levels", ()), dtype=np.float64)

    @property
    def exact(self) -> bool:
        """Whether quantiles and histograms are exact (else within 0.1% rank error)."""
        return bool(self.data.get("exact", False))

    @cached_property
    def stats(self) -> dict[str, np.ndarray]:
        """Every unit's statistics as read-only arrays over the ``U`` units, in unit order:
        ``quantiles`` ``(U, Q)`` at ``quantile_levels`` ``(Q,)``, ``histogram`` ``(U, bins)``,
        ``mean``, ``std``, ``min``, ``max``, ``firing_rate``, ``dead``, ``always_on``,
        ``selectivity``, ``top_class`` / ``top_class_name``, ``purity``, ``label`` (the suggested
        name), ``label_confidence``, ... (see :func:`convscope.notebook.columns.unit_statistics`;
        NaN, -1 or ``None`` where the atlas has no value, e.g. class columns without labels).

        Raises:
            AtlasError: a version 1 or 2 atlas (no statistics; see :attr:`has_stats`).
        """
        if not self.has_stats:
            self._no_stats("statistics")
        records = [self._records[u] for u in sorted(self._records)]
        return unit_statistics(records, self.data.get("quantile_levels", ()), self.atlas.class_names)

    def table(self) -> Table:
        """:attr:`stats` as a :class:`Table`, one row per unit (a column ``q<level>`` per quantile,
        no histogram); ``.to_pandas()`` gives a DataFrame where pandas is installed."""
        return unit_table(self.stats)

    def filter(self, **conditions: Any) -> list[Unit]:
        """The units whose :attr:`stats` columns meet every condition, in unit order: a value
        (``dead=True``, ``label="deer"``, ``label_confidence="high"``) or a function of the whole
        column giving a boolean mask (``selectivity=lambda s: s > 0.5``).

        Raises:
            ConvscopeError: a condition names no 1-D statistics column.
        """
        stats = self.stats
        keep = np.ones(len(stats["unit"]), dtype=bool)
        for name, wanted in conditions.items():
            column = stats.get(name)
            if column is None or column.ndim != 1 or name == "quantile_levels":
                names = ", ".join(n for n, c in stats.items() if c.ndim == 1 and n != "quantile_levels")
                raise ConvscopeError(f"layer {self.name!r} has no statistics column {name!r}", hint=f"filter by one of: {names}")
            mask = wanted(column) if callable(wanted) else column == wanted
            keep &= np.asarray(mask, dtype=bool)
        return [self[int(u)] for u in stats["unit"][keep]]

    def __getitem__(self, index: int) -> Unit:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise ConvscopeError(f"units are numbered, got {index!r}", hint=f"use layer[0] .. layer[{self.units - 1}]")
        number = int(index) + self.units if index < 0 else int(index)
        if number not in self._records:
            raise AtlasError(f"layer {self.name!r} has no unit {index}", hint=f"its units are 0 .. {self.units - 1}")
        return Unit(self, number, self._records[number])

    def __len__(self) -> int:
        return self.units

    def __iter__(self) -> Iterator[Unit]:
        return (self[u] for u in sorted(self._records))

    def to_html(self, units: Iterable[int] | None = None, limit: int = SHOWN_UNITS) -> str:
        """The layer's summary and a grid of units (``units``, default all, the first ``limit``
        shown; a note says how many are left out), each with its top patches and label."""
        chosen = list(range(self.units)) if units is None else [int(u) for u in units]
        shape = "×".join(map(str, self.shape)) if self.shape else "?"
        parts = [f'<div style="{BOX}">']
        parts.append(
            f'<div><span style="font-size: 15px; font-weight: 600">{esc(self.name)}</span> '
            f'<span style="{SMALL}">{esc(self.type)} · {self.units} units · output {esc(shape)} · field {esc(self.receptive_field or "?")}</span></div>'
        )
        if self.has_stats:
            summary = self.summary
            facts = [("dead", percent(summary.get("dead"))), ("always on", percent(summary.get("always_on"))), ("firing rate", percent(summary.get("firing_rate")))]
            if summary.get("selectivity") is not None or summary.get("purity") is not None:
                facts += [("selectivity", number(summary.get("selectivity"))), ("purity", percent(summary.get("purity"))), ("label agreement", percent(summary.get("label_agreement")))]
            if summary.get("confident_labels") is not None:
                facts.append(("confident labels", f"{summary['confident_labels']} of {self.units}"))
            parts.append('<div style="margin: 4px 0 10px 0">' + " · ".join(f'<span style="color: {MUTED}">{esc(n)}</span> {esc(v)}' for n, v in facts) + "</div>")
        shown = chosen[: max(limit, 0)]
        fill = padding_fill(self.atlas.manifest)
        tiles = [self._tile(self[u], fill) for u in shown]
        parts.append(f'<div style="display: flex; flex-wrap: wrap; gap: 10px">{"".join(tiles)}</div>')
        hidden = len(chosen) - len(shown)
        if hidden > 0:
            parts.append(
                f'<div style="{SMALL}; margin-top: 8px">{len(shown)} of {len(chosen)} units shown, {hidden} hidden: '
                f"<code>layer.to_html(units=..., limit=...)</code> shows others, <code>layer[i]</code> one unit's card</div>"
            )
        parts.append("</div>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.shape)) if self.shape else "?"
        return f"Layer({self.name!r}, {self.type}, {self.units} units, {shape})"

    def _tile(self, unit: Unit, fill: np.ndarray) -> str:
        """``unit`` in the layer's grid: its top patches (padding ``fill``) as one small grid, its number and label."""
        pieces = cut(self.atlas.path, unit.hits, fill, padding_mode(self.entry, unit.index))
        label = unit.label if unit.has_stats else None
        dead = bool(unit.has_stats and unit.stats.get("dead"))
        return unit_tile(thumbnail(pieces, self.k, THUMB_CELL), unit.index, label, dead, unit.class_name)

    def _no_stats(self, what: str) -> NoReturn:
        """Raise the error for asking a layer without statistics for ``what``."""
        no_stats(what, self.name, self.atlas)
