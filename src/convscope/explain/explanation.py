"""What :func:`~convscope.explain.api.explain` returns: frozen records of one image's explanation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convscope.explain.region import RegionUnit
from convscope.network.geometry import Box, UnitFields


@dataclass(frozen=True)
class UnitRelevance:
    """One of a layer's most relevant units.

    Attributes:
        unit: the channel.
        relevance: ``sum_{h, w} activation * gradient``, or the LRP relevance reaching the unit
            (signed; the logit's units).
        share: ``relevance / sum over the layer's units of |relevance|``, in ``[-1, 1]``.
        activation_map: ``(H, W)`` its activation on the image.
        heatmap: ``(H_in, W_in)`` its conditional heatmap in model-input pixels (``None``
            when heatmaps were not asked for).
        peak: ``(row, col)`` of its largest activation; ``box`` that position's receptive
            field (``None`` where the layer's fields are unknown).
    """

    unit: int
    relevance: float
    share: float
    activation_map: torch.Tensor
    heatmap: torch.Tensor | None
    peak: tuple[int, int]
    box: Box | None

    def to_dict(self) -> dict[str, Any]:
        d = {"unit": self.unit, "relevance": self.relevance, "share": self.share,
             "max_activation": float(self.activation_map.max()), "peak": list(self.peak),
             "box": list(self.box) if self.box is not None else None}
        if self.heatmap is not None:
            d["heatmap_sum"] = float(self.heatmap.double().sum())
        return d


@dataclass(frozen=True)
class FiringUnit:
    """A unit that fires strongly on the image, whatever the class: its largest activation and where."""

    unit: int
    activation: float
    peak: tuple[int, int]
    box: Box | None

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "activation": self.activation, "peak": list(self.peak),
                "box": list(self.box) if self.box is not None else None}


@dataclass(frozen=True)
class LayerExplanation:
    """One layer of an explanation.

    Attributes:
        layer: dotted name.
        units: the most relevant units, highest relevance first.
        firing: the units with the largest activations, largest first.
        region: with a region, the units whose fields cover it (strongest there first);
            ``None`` without a region or where the layer's fields are unknown.
        total: ``sum_c R_c`` over all units; ``total_abs``: ``sum_c |R_c|``.
        fields: the receptive fields of the units (``None`` where unknown).
        activation: ``(C, H, W)`` the activation of every unit on the image (what the viewer's
            reverse lookup reads; ``None`` where not kept).
    """

    layer: str
    units: tuple[UnitRelevance, ...]
    firing: tuple[FiringUnit, ...]
    region: tuple[RegionUnit, ...] | None
    total: float
    total_abs: float
    fields: UnitFields | None
    activation: torch.Tensor | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "total_relevance": self.total,
            "total_abs_relevance": self.total_abs,
            "units": [u.to_dict() for u in self.units],
            "firing": [f.to_dict() for f in self.firing],
            "region": None if self.region is None else [
                {"unit": r.unit, "activation": r.activation, "row": r.row, "col": r.col, "box": list(r.box)} for r in self.region
            ],
        }


@dataclass(frozen=True)
class Explanation:
    """One image explained through the units of some layers (gradient x activation or LRP).

    Attributes:
        image: ``uint8 (H, W, 3)``, the image in the model-input frame (resized, cropped).
        target: the explained class; ``class_name`` its name where known.
        predicted: the class with the largest logit.
        logit: the target's logit; ``probabilities`` ``(classes,)`` the softmax of the logits.
        layers: per layer, its :class:`LayerExplanation`, in the order asked.
        region: the region looked up (model-input pixels) or ``None``.
        method: how relevance was computed: ``"gradient x activation"`` or ``"LRP epsilon-plus-flat"``.
        atlas: the atlas folder the network and layers came from (its unit cards,
            :func:`~convscope.explain.cards.unit_cards`), or ``None``.
        class_names: the model's class names, where known.
    """

    image: np.ndarray
    target: int
    class_name: str | None
    predicted: int
    logit: float
    probabilities: torch.Tensor
    layers: tuple[LayerExplanation, ...]
    region: Box | None = None
    method: str = "gradient x activation"
    atlas: Path | None = None
    class_names: tuple[str, ...] | None = None

    def name_of(self, index: int) -> str:
        """Class ``index``'s name where the model has names, else ``"class <index>"``."""
        names = self.class_names
        return names[index] if names is not None and 0 <= index < len(names) else f"class {index}"

    def top_classes(self, n: int = 5) -> list[tuple[int, str, float]]:
        """The ``n`` most probable classes: ``(index, name, probability)``, most probable first."""
        probs = self.probabilities.double().cpu()
        order = sorted(range(len(probs)), key=lambda c: (-float(probs[c]), c))[:n]
        return [(c, self.name_of(c), float(probs[c])) for c in order]

    def to_html(self, cards: bool = True) -> str:
        """This explanation as one self-contained HTML fragment (Jupyter shows it inline); with
        ``cards`` and an atlas, each unit also shows its top patches and label from the atlas."""
        from convscope.explain.cards import atlas_cards
        from convscope.explain.display import explanation_html

        return explanation_html(self, atlas_cards(self) if cards else None)

    def _repr_html_(self) -> str:
        return self.to_html()

    def layer(self, name: str) -> LayerExplanation:
        """The explanation of the layer called ``name`` (KeyError if not explained)."""
        for layer in self.layers:
            if layer.layer == name:
                return layer
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: numbers and boxes, no maps (the figure draws those)."""
        return {
            "method": self.method,
            "target": self.target,
            "class_name": self.class_name,
            "predicted": self.predicted,
            "logit": self.logit,
            "probability": float(self.probabilities[self.target]),
            "input_size": list(self.image.shape[:2]),
            "region": list(self.region) if self.region is not None else None,
            "layers": [layer.to_dict() for layer in self.layers],
        }
