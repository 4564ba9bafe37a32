"""One unit of an atlas layer: its hits, statistics and pictures, and its card in Jupyter."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from convscope.atlas.format import unit_file
from convscope.notebook.cards import unit_card
from convscope.notebook.patches import cut_patches, inside, padding_fill, padding_mode
from convscope.notebook.records import Hit, Label

if TYPE_CHECKING:
    from convscope.notebook.layer import Layer


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

    layer: "Layer" = field(repr=False)
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
        return unit_card(self)

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

    def _need_stats(self, what: str) -> None:
        if not self.has_stats:
            self.layer._no_stats(what)
