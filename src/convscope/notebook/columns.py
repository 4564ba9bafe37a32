"""Records of ``hits.json`` and the manifest as numpy columns: one row per unit or per layer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from convscope.errors import AtlasError
from convscope.network.geometry import UnitFields
from convscope.notebook.table import Table

#: The manifest's per-layer summary numbers (version 3), in table order.
SUMMARY_KEYS = ("dead", "always_on", "firing_rate", "selectivity", "purity", "label_agreement", "confident_labels")


def unit_statistics(records: Sequence[dict[str, Any]], levels: Sequence[float], class_names: Sequence[str] | None) -> dict[str, np.ndarray]:
    """Every unit's ``stats`` record as arrays over the ``U`` units of one layer.

    Args:
        records: the layer's unit records of ``hits.json``, each with ``"stats"``.
        levels: the layer's ``quantile_levels`` ``(Q,)``.
        class_names: the data's classes (the manifest's ``dataset.labels``), or ``None``.

    Returns:
        ``unit`` ``(U,)`` int64; ``mean``, ``std``, ``min``, ``max``, ``firing_rate``,
        ``selectivity``, ``purity``, ``label_chance`` ``(U,)`` float64 (NaN where not stored);
        ``quantiles`` ``(U, Q)`` float64 at ``quantile_levels`` ``(Q,)``; ``histogram``
        ``(U, bins)`` int64; ``dead``, ``always_on`` ``(U,)`` bool; ``top_class``,
        ``label_class``, ``label_agreeing`` ``(U,)`` int64 (-1 where none); ``top_class_name``,
        ``label``, ``label_confidence``, ``label_text``, ``bottom_kind``, ``class_name``
        ``(U,)`` object (``None`` where none). The class columns stay NaN / -1 / ``None``
        for an atlas scanned without labels.

    Example:
        >>> record = {"unit": 0, "bottom_kind": "max", "stats": {"mean": 1.0, "std": 0.5, "min": 0.0, "max": 2.0,
        ...     "quantiles": [0.0, 1.0, 2.0], "histogram": [1, 2], "firing_rate": 0.5, "dead": False, "always_on": False}}
        >>> stats = unit_statistics([record], [0.0, 0.5, 1.0], None)
        >>> stats["quantiles"].shape, stats["histogram"].tolist(), stats["top_class"].tolist()
        ((1, 3), [[1, 2]], [-1])
    """
    stats = [_stats_of(r) for r in records]
    labels = [s.get("label") or {} for s in stats]
    number = _column(stats, np.float64, np.nan)
    columns: dict[str, np.ndarray] = {
        "unit": np.array([int(r["unit"]) for r in records], dtype=np.int64),
        "mean": number(lambda s: s.get("mean")),
        "std": number(lambda s: s.get("std")),
        "min": number(lambda s: s.get("min")),
        "max": number(lambda s: s.get("max")),
        "quantiles": _matrix([s.get("quantiles") for s in stats], len(levels), "quantiles", np.float64),
        "quantile_levels": np.asarray(levels, dtype=np.float64),
        "histogram": _matrix([s.get("histogram") for s in stats], None, "histogram", np.int64),
        "firing_rate": number(lambda s: s.get("firing_rate")),
        "dead": np.array([bool(s.get("dead")) for s in stats], dtype=bool),
        "always_on": np.array([bool(s.get("always_on")) for s in stats], dtype=bool),
        "selectivity": number(lambda s: s.get("selectivity")),
        "top_class": _column(stats, np.int64, -1)(lambda s: s.get("top_class")),
        "top_class_name": _objects([_name(class_names, s.get("top_class")) for s in stats]),
        "purity": number(lambda s: s.get("purity")),
        "label": _objects([lab.get("name") for lab in labels]),
        "label_class": _column(labels, np.int64, -1)(lambda lab: lab.get("class")),
        "label_confidence": _objects([lab.get("confidence") for lab in labels]),
        "label_agreeing": _column(labels, np.int64, -1)(lambda lab: lab.get("agreeing")),
        "label_chance": _column(labels, np.float64, np.nan)(lambda lab: lab.get("chance")),
        "label_text": _objects([lab.get("text") for lab in labels]),
        "bottom_kind": _objects([r.get("bottom_kind") for r in records]),
        "class_name": _objects([r.get("class_name") for r in records]),
    }
    for array in columns.values():
        array.flags.writeable = False
    return columns


def unit_table(stats: dict[str, np.ndarray]) -> Table:
    """:func:`unit_statistics` as a :class:`Table`: one row per unit, a column ``q<level>`` per
    quantile level (``q0.5``), the histogram left out."""
    flat = {name: column for name, column in stats.items() if column.ndim == 1 and name != "quantile_levels"}
    position = list(flat).index("firing_rate")
    quantiles = {f"q{level:g}": stats["quantiles"][:, i] for i, level in enumerate(stats["quantile_levels"])}
    items = list(flat.items())
    return Table(dict(items[:position] + list(quantiles.items()) + items[position:]))


def layer_summary(entries: Sequence[dict[str, Any]]) -> Table:
    """One row per manifest layer entry: ``layer``, ``type``, ``units``, ``rows``, ``cols``,
    ``field`` (the receptive field as text) and the summary numbers of :data:`SUMMARY_KEYS`
    (float64; NaN for a layer without them: a version 1 or 2 atlas, or no labels).

    Example:
        >>> entry = {"name": "conv1", "type": "Conv2d", "shape": [16, 32, 32], "units": 16, "summary": {"dead": 0.0},
        ...          "receptive_fields": [{"units": [0, 16], "size": [3, 3], "stride": [1, 1], "offset": [-1, -1]}]}
        >>> table = layer_summary([entry])
        >>> table.row(0)["field"], table["dead"].tolist(), bool(np.isnan(table["purity"][0]))
        ('3 s1 o-1', [0.0], True)
    """
    shapes = [e.get("shape") if isinstance(e.get("shape"), list) and len(e["shape"]) == 3 else [None] * 3 for e in entries]
    summaries = [e.get("summary") if isinstance(e.get("summary"), dict) else {} for e in entries]
    columns: dict[str, np.ndarray] = {
        "layer": _objects([e.get("name") for e in entries]),
        "type": _objects([e.get("type") for e in entries]),
        "units": _column(entries, np.int64, -1)(lambda e: e.get("units")),
        "rows": _column(shapes, np.int64, -1)(lambda s: s[1]),
        "cols": _column(shapes, np.int64, -1)(lambda s: s[2]),
        "field": _objects([field_text(e) for e in entries]),
    }
    for key in SUMMARY_KEYS:
        columns[key] = _column(summaries, np.float64, np.nan)(lambda s, key=key: s.get(key))
    return Table(columns)


def field_text(entry: dict[str, Any]) -> str | None:
    """A manifest layer's receptive field in short: ``"11 s4 o-2"``, per run of units, or
    ``"not local"`` when convscope could not compute it (``None`` for a malformed entry)."""
    runs = entry.get("receptive_fields")
    if runs is None and entry.get("receptive_field") is None:
        return "not local"
    try:
        if isinstance(runs, list) and runs:
            return UnitFields.from_list(runs).text()
        return UnitFields.from_list([{"units": [0, int(entry["units"])], **entry["receptive_field"]}]).text()
    except (KeyError, TypeError, ValueError):
        return None


def _stats_of(record: Any) -> dict[str, Any]:
    stats = record.get("stats") if isinstance(record, dict) else None
    if not isinstance(stats, dict):
        unit = record.get("unit") if isinstance(record, dict) else "?"
        raise AtlasError(f"unit {unit} of the atlas has no statistics record", hint="rebuild the atlas with `convscope atlas`")
    return stats


def _column(items: Sequence[Any], dtype: type, missing: Any) -> Callable[[Callable[[Any], Any]], np.ndarray]:
    """``(get) -> array`` of ``get(item)`` for every item, ``missing`` where it gives ``None``."""

    def build(get: Callable[[Any], Any]) -> np.ndarray:
        values = [get(item) for item in items]
        return np.array([missing if v is None else v for v in values], dtype=dtype)

    return build


def _matrix(rows: list[Any], width: int | None, name: str, dtype: type) -> np.ndarray:
    """Equal-length lists as a ``(len(rows), width)`` array; ``None`` entries become NaN."""
    if not rows:
        return np.zeros((0, width or 0), dtype=dtype)
    lengths = {len(r) if isinstance(r, list) else -1 for r in rows}
    if len(lengths) != 1 or -1 in lengths or (width is not None and lengths != {width}):
        raise AtlasError(f"the units' {name} lists are missing or of different lengths", hint="rebuild the atlas with `convscope atlas`")
    return np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=dtype)


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _name(class_names: Sequence[str] | None, index: Any) -> str | None:
    if class_names is None or index is None or not 0 <= int(index) < len(class_names):
        return None
    return str(class_names[int(index)])
