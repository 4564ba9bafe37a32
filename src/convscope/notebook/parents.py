"""What a layer reads from its atlas and a unit from its layer, as protocols.

A :class:`~convscope.notebook.layer.Layer` holds its atlas and a
:class:`~convscope.notebook.unit.Unit` its layer. Typing those references with the protocols
here instead of the classes keeps the imports one way (``atlas`` -> ``layer`` -> ``unit``
-> ``parents``), not even a type-checking import going back up. :func:`no_stats` is the one
error both raise when asked for statistics that the atlas does not keep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn, Protocol

import numpy as np

from convscope.atlas.circuits_data import CircuitsRecord
from convscope.errors import AtlasError


class ParentAtlas(Protocol):
    """What a layer reads from its :class:`~convscope.notebook.atlas.Atlas`."""

    @property
    def path(self) -> Path:
        """The atlas folder."""

    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed ``manifest.json``."""

    @property
    def version(self) -> int:
        """The atlas format version."""

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """The classes of the scanned images, or ``None`` without labels."""

    @property
    def image_count(self) -> int | None:
        """How many images were scanned."""

    @property
    def circuits(self) -> CircuitsRecord | None:
        """The atlas's circuits, or ``None``."""


class ParentLayer(Protocol):
    """What a unit reads from its :class:`~convscope.notebook.layer.Layer`."""

    @property
    def atlas(self) -> ParentAtlas:
        """The atlas the layer belongs to."""

    @property
    def entry(self) -> dict[str, Any]:
        """The layer's entry in the manifest."""

    @property
    def name(self) -> str:
        """PyTorch's dotted module name of the layer."""

    @property
    def type(self) -> str:
        """The module's class name."""

    @property
    def receptive_field(self) -> str | None:
        """The receptive field in short."""

    @property
    def k(self) -> int:
        """Hits kept per unit."""

    @property
    def quantile_levels(self) -> np.ndarray:
        """``(Q,)`` the levels of every unit's quantiles."""

    @property
    def exact(self) -> bool:
        """Whether quantiles and histograms are exact."""


def no_stats(what: str, layer: str, atlas: ParentAtlas) -> NoReturn:
    """Raise the error for asking layer ``layer`` of ``atlas``, which keeps no statistics, for ``what``.

    Example:
        >>> from types import SimpleNamespace
        >>> no_stats("quantiles", "conv1", SimpleNamespace(version=2, path=Path("atlas")))
        Traceback (most recent call last):
        convscope.errors.AtlasError: no quantiles for layer 'conv1': the atlas at atlas is atlas format version 2, which keeps no statistics or bottom hits
          hint: rebuild it with `convscope atlas MODEL IMAGES --out DIR` (format version 3); hits, patches and projections are there; `has_stats` tells before asking
    """
    version = atlas.version
    old = f"is atlas format version {version}, which keeps" if version < 3 else "keeps"
    raise AtlasError(
        f"no {what} for layer {layer!r}: the atlas at {atlas.path} {old} no statistics or bottom hits",
        hint="rebuild it with `convscope atlas MODEL IMAGES --out DIR` (format version 3); "
        "hits, patches and projections are there; `has_stats` tells before asking",
    )
