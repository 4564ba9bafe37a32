"""One unit of an atlas layer: its hits, statistics and pictures, and its card in Jupyter."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

from convscope.atlas.circuits_data import CircuitsRecord
from convscope.atlas.format import unit_file
from convscope.errors import AtlasError
from convscope.notebook.cards import BOTTOM_SIDE, BOX, PATCH_SIDE, SMALL, grid_width, name_of_class, patch_grid, row, section
from convscope.notebook.html import CONFIDENCE, MUTED, badge, bars, esc, histogram_svg, img, number, percent
from convscope.notebook.parents import ParentLayer, no_stats
from convscope.notebook.patches import cut, cut_patches, inside, padding_fill, padding_mode
from convscope.notebook.records import Hit, Label


@dataclass(frozen=True, eq=False)
class Unit:
    """Unit ``index`` of ``layer``, over its record in the layer's ``hits.json``.

    Got from a layer, ``atlas["layer3.2"][5]``; everything is read from the atlas when asked
    for. Statistics and bottom hits exist from atlas format version 3 on: on an older atlas
    (``has_stats`` False) :attr:`stats`, :attr:`bottom`, :attr:`label`, :meth:`histogram` and
    :meth:`bottom_patches` raise :class:`~convscope.errors.AtlasError`.

    Attributes:
        layer: the :class:`~convscope.notebook.layer.Layer` the unit belongs to.
        index: the unit's channel number in the layer.
        record: the unit's record of ``hits.json`` as stored (read it, do not change it).

    Example:
        >>> unit = open_atlas("atlas/")["layer3.2"][5]  # doctest: +SKIP
        >>> unit.hits[0].image, unit.label.text, unit.patches()[0].size  # doctest: +SKIP
        ('deer/0840.jpg', 'deer: 9 of 9 hits, selectivity 0.29', (81, 81))
    """

    layer: ParentLayer = field(repr=False)
    index: int
    record: dict[str, Any] = field(repr=False)

    @cached_property
    def hits(self) -> tuple[Hit, ...]:
        """The unit's top hits, strongest first (``k`` of them, fewer with fewer images)."""
        return tuple(Hit.from_record(r) for r in self.record.get("hits") or ())

    @property
    def has_stats(self) -> bool:
        """Whether the atlas keeps this unit's statistics and bottom hits (format version 3)."""
        return isinstance(self.record.get("stats"), dict)

    @cached_property
    def bottom(self) -> tuple[Hit, ...]:
        """The unit's bottom hits, weakest first (see :attr:`bottom_kind`)."""
        self._need_stats("bottom hits")
        return tuple(Hit.from_record(r) for r in self.record.get("bottom") or ())

    @property
    def bottom_kind(self) -> str:
        """``"min"``: the most negative activations; ``"max"``: a unit never below zero, the
        images whose strongest activation is lowest."""
        self._need_stats("bottom hits")
        return str(self.record.get("bottom_kind"))

    @property
    def stats(self) -> dict[str, Any]:
        """The unit's statistics record (a copy): ``mean``, ``std``, ``min``, ``max``,
        ``quantiles`` (at ``layer.quantile_levels``), ``histogram``, ``firing_rate``, ``dead``,
        ``always_on`` and with labels ``classes``, ``selectivity``, ``top_class``, ``purity``,
        ``label`` (see docs/atlas-format.md)."""
        self._need_stats("statistics")
        return copy.deepcopy(self.record["stats"])

    @property
    def label(self) -> Label | None:
        """The suggested label, or ``None`` when the scan had no labelled hits for it."""
        self._need_stats("a suggested label")
        return Label.from_record(self.record["stats"].get("label"))

    @property
    def class_name(self) -> str | None:
        """For a classifier's output unit, the class it scores; else ``None``."""
        name = self.record.get("class_name")
        return None if name is None else str(name)

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """``counts`` ``(bins,)`` int64 of each image's strongest activation and the bins'
        ``edges`` ``(bins + 1,)``: equal bins from the unit's min to its max (``+-0.5`` around
        a constant; NaN edges for a unit that never had a finite activation)."""
        stats = self.stats
        counts = np.asarray(stats["histogram"], dtype=np.int64)
        low, high = stats.get("min"), stats.get("max")
        if low is None or high is None:
            return counts, np.full(len(counts) + 1, np.nan)
        if low == high:
            low, high = low - 0.5, high + 0.5
        return counts, np.linspace(low, high, len(counts) + 1)

    def inputs(self, n: int = 8, sign: int = 1) -> list[tuple[int, float, float]]:
        """The unit's strongest ``n`` inputs from the layer below (``convscope circuits``): of
        ``sign`` ``1`` excitatory, ``-1`` inhibitory, as ``(below_unit, share, contribution)``,
        strongest first.

        Raises:
            AtlasError: the atlas has no circuits, or none for this layer.

        Example:
            >>> atlas["features.4"][7].inputs(n=2)  # doctest: +SKIP
            [(12, 0.21, 40.5), (3, 0.08, 15.2)]
        """
        return self._circuits("inputs").inputs(self.layer.name).top(self.index, n, sign)

    def matters_for(self, n: int = 10) -> list[tuple[int, float, float]]:
        """The ``n`` classes whose logit zeroing this unit lowers most (``convscope circuits
        --ablation``), as ``(class, drop, accuracy_change)``, largest drop first.

        Raises:
            AtlasError: the atlas has no circuits, or no ablation of this layer.
        """
        return self._circuits("an ablation").ablation(self.layer.name).matters_for(self.index, n)

    def patches(self) -> list[Image.Image]:
        """The top hits' patches, strongest first: each box cut from its stored image with the
        padding the network saw, striped grey past the border, as the viewer draws it.
        RGB images ``(box.height, box.width)``, sampled down to 512 pixels at most per side."""
        return self._cut(self.hits)

    def bottom_patches(self) -> list[Image.Image]:
        """The bottom hits' patches, weakest first, cut like :meth:`patches`."""
        return self._cut(self.bottom)

    def projections(self) -> Image.Image | None:
        """The stored grid of the top hits' projections (deconvnet or guided backprop; rank 0
        top left, ``render.grid`` cells), or ``None`` when the atlas has none."""
        return self._picture("projection") if self.layer.atlas.manifest.get("projection") else None

    def featurevis(self) -> Image.Image | None:
        """The image optimised for this unit (``--featurevis``), or ``None`` when the atlas has none;
        ``record["featurevis"]`` holds what it reached and its ratio to the top dataset activation."""
        return self._picture("featurevis") if self.layer.atlas.manifest.get("featurevis") else None

    def occlusion(self) -> Image.Image | None:
        """The stored occlusion map of the top hit, or ``None`` when the atlas has none."""
        return self._picture("occlusion") if self.layer.atlas.manifest.get("occlusion") else None

    def to_html(self) -> str:
        """The unit card: patches, projections, bottom patches, histogram, quantiles, firing
        rate, class means and suggested label, as one self-contained HTML fragment."""
        layer, atlas = self.layer, self.layer.atlas
        label = self.label if self.has_stats else None
        title = f"{layer.name} · unit {self.index}"
        head = [f'<span style="font-size: 15px; font-weight: 600">{esc(title)}</span>']
        head.append(f'<span style="{SMALL}">{esc(layer.type)} · field {esc(layer.receptive_field or "?")}</span>')
        if self.class_name is not None:
            head.append(f'<span style="{SMALL}">output for class <b>{esc(self.class_name)}</b></span>')
        if label is not None:
            head.append(badge(f"{label.name} · {label.confidence}", CONFIDENCE.get(label.confidence, MUTED)))
        parts = [f'<div style="{BOX}; display: inline-block; max-width: 920px">']
        parts.append(f'<div style="display: flex; align-items: center; gap: 10px; flex-wrap: wrap">{"".join(head)}</div>')
        if label is not None:
            parts.append(f'<div style="color: {MUTED}; margin-top: 2px">suggested label: {esc(label.text)}</div>')
        pictures = []
        optimised = self.featurevis()
        if optimised is not None:
            reached = self.record.get("featurevis") or {}
            ratio = reached.get("ratio")
            note = "" if ratio is None else f" · {ratio:.2f}x the top hit" + (" (below it)" if reached.get("below_top") else "")
            pictures.append(section(f"optimised image{note}", img(optimised, side=grid_width(layer.k, PATCH_SIDE), title=f"{title}: feature visualisation")))
        pictures.append(section(f"top {len(self.hits)} hits", patch_grid(self._pieces(self.hits), self.hits, layer.k, PATCH_SIDE)))
        projection = self.projections()
        if projection is not None:
            kind = atlas.manifest.get("projection")
            pictures.append(section(f"{kind} projections", img(projection, side=grid_width(layer.k, PATCH_SIDE), title=f"{title}: {kind} projections of the top hits")))
        if self.has_stats and self.bottom:
            which = "most negative" if self.bottom_kind == "min" else "lowest maximum"
            pictures.append(section(f"bottom hits ({which})", patch_grid(self._pieces(self.bottom), self.bottom, layer.k, BOTTOM_SIDE)))
        parts.append(row(pictures, gap=22))
        if self.has_stats:
            parts.append(row(self._statistics(), gap=28))
        else:
            parts.append(f'<div style="{SMALL}; margin-top: 10px">atlas format version {atlas.version} keeps no statistics or bottom hits; rebuild with this convscope for them</div>')
        parts.append("</div>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        label = self.label if self.has_stats else None
        named = f", label {label.name!r} ({label.confidence})" if label is not None else ""
        return f"Unit({self.layer.name!r}, {self.index}, {len(self.hits)} hits{named})"

    def _cut(self, hits: tuple[Hit, ...]) -> list[Image.Image]:
        atlas = self.layer.atlas
        return cut_patches(atlas.path, hits, padding_fill(atlas.manifest), padding_mode(self.layer.entry, self.index))

    def _picture(self, kind: str) -> Image.Image | None:
        path = inside(self.layer.atlas.path, unit_file(self.layer.name, self.index, kind))
        if not path.is_file():
            return None
        with Image.open(path) as image:
            return image.convert("RGB")

    def _circuits(self, what: str) -> CircuitsRecord:
        found = self.layer.atlas.circuits
        if found is None:
            raise AtlasError(
                f"no {what} for unit {self.index} of layer {self.layer.name!r}: the atlas at {self.layer.atlas.path} has no circuits",
                hint=f"compute them with `convscope circuits {self.layer.atlas.path}`" + (" --ablation 500" if what == "an ablation" else ""),
            )
        return found

    def _need_stats(self, what: str) -> None:
        if not self.has_stats:
            no_stats(what, self.layer.name, self.layer.atlas)

    def _pieces(self, hits: Sequence[Hit]) -> list[tuple[np.ndarray, np.ndarray]]:
        """The unmarked patches of ``hits`` and where they are image content."""
        atlas = self.layer.atlas
        return cut(atlas.path, hits, padding_fill(atlas.manifest), padding_mode(self.layer.entry, self.index))

    def _statistics(self) -> list[str]:
        """The card's sections of statistics: the histogram with quantiles, the numbers, the class means."""
        stats, layer = self.stats, self.layer
        counts, edges = self.histogram()
        levels = layer.quantile_levels
        quantiles = stats.get("quantiles") or []
        median = next((q for level, q in zip(levels, quantiles) if level == 0.5), None)
        images = layer.atlas.image_count
        heading = f"strongest activation per image{f' ({images} images)' if images else ''}"
        histogram = histogram_svg(counts, float(edges[0]), float(edges[-1]), [("median", median)] if median is not None else [], title=f"{layer.name} unit {self.index}: {heading}")
        cell = "padding: 1px 5px; text-align: right; font-variant-numeric: tabular-nums"
        table = (
            '<table style="border-collapse: collapse; margin-top: 6px; font-size: 11px"><tr>'
            + "".join(f'<td style="{cell}; color: {MUTED}">{esc(f"{100 * level:g}%")}</td>' for level in levels)
            + "</tr><tr>"
            + "".join(f'<td style="{cell}">{esc(number(q))}</td>' for q in quantiles)
            + "</tr></table>"
        )
        exact = "" if layer.exact else f'<div style="{SMALL}">quantiles and histogram from a sketch (within 0.1% rank)</div>'
        sections = [section(heading, histogram + table + exact)]
        numbers = [
            ("mean ± std", f"{number(stats.get('mean'))} ± {number(stats.get('std'))}"),
            ("min · max", f"{number(stats.get('min'))} · {number(stats.get('max'))}"),
            ("firing rate", f"{percent(stats.get('firing_rate'))} of images"),
        ]
        flags = [name for name, on in (("dead: never above zero", stats.get("dead")), ("always on", stats.get("always_on"))) if on]
        if flags:
            numbers.append(("note", ", ".join(flags)))
        names = layer.atlas.class_names
        if stats.get("top_class") is not None:
            top = name_of_class(names, stats["top_class"])
            numbers += [("selectivity", number(stats.get("selectivity"))), ("top class", top), ("purity", percent(stats.get("purity")))]
        label = self.label
        if label is not None:
            numbers += [("label", f"{label.name}: {label.agreeing} of {label.hits} hits"), ("chance", number(label.chance, 2))]
        rows = "".join(f'<tr><td style="padding: 1px 10px 1px 0; color: {MUTED}">{esc(n)}</td><td style="padding: 1px 0">{esc(v)}</td></tr>' for n, v in numbers)
        sections.append(section("unit", f'<table style="border-collapse: collapse">{rows}</table>'))
        classes = stats.get("classes") or []
        if classes:
            marked = label.index if label is not None else stats.get("top_class")
            rows_ = [(name_of_class(names, c), float(m) if m is not None else float("nan"), c == marked) for c, m in classes]
            sections.append(section(f"mean by class (top {len(classes)})", bars(rows_)))
        return sections
