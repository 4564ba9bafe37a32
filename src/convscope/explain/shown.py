"""What drawing an explanation reads of it, as protocols.

:class:`~convscope.explain.explanation.Explanation` shows itself in Jupyter
(:meth:`~convscope.explain.explanation.Explanation.to_html`) through
:mod:`convscope.explain.display` and :mod:`convscope.explain.cards`; these read the
explanation through the protocols here, so no module imports back the one that imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from convscope.network.geometry import Box, UnitFields


class ShownUnit(Protocol):
    """A top unit (:class:`~convscope.explain.explanation.UnitRelevance`)."""

    @property
    def unit(self) -> int: ...
    @property
    def relevance(self) -> float: ...
    @property
    def share(self) -> float: ...
    @property
    def activation_map(self) -> torch.Tensor: ...
    @property
    def heatmap(self) -> torch.Tensor | None: ...


class ShownFiring(Protocol):
    """A unit that fires most (:class:`~convscope.explain.explanation.FiringUnit`)."""

    @property
    def unit(self) -> int: ...
    @property
    def activation(self) -> float: ...


class ShownRegionUnit(Protocol):
    """A unit under the region (:class:`~convscope.explain.region.RegionUnit`)."""

    @property
    def unit(self) -> int: ...
    @property
    def activation(self) -> float: ...


class ShownLayer(Protocol):
    """One layer of an explanation (:class:`~convscope.explain.explanation.LayerExplanation`)."""

    @property
    def layer(self) -> str: ...
    @property
    def units(self) -> Sequence[ShownUnit]: ...
    @property
    def firing(self) -> Sequence[ShownFiring]: ...
    @property
    def region(self) -> Sequence[ShownRegionUnit] | None: ...
    @property
    def total_abs(self) -> float: ...
    @property
    def fields(self) -> UnitFields | None: ...


class ShownExplanation(Protocol):
    """An explanation (:class:`~convscope.explain.explanation.Explanation`)."""

    @property
    def image(self) -> np.ndarray: ...
    @property
    def target(self) -> int: ...
    @property
    def class_name(self) -> str | None: ...
    @property
    def predicted(self) -> int: ...
    @property
    def logit(self) -> float: ...
    @property
    def probabilities(self) -> torch.Tensor: ...
    @property
    def layers(self) -> Sequence[ShownLayer]: ...
    @property
    def region(self) -> Box | None: ...
    @property
    def method(self) -> str: ...
    @property
    def atlas(self) -> Path | None: ...
    def top_classes(self, n: int = 5) -> list[tuple[int, str, float]]: ...
