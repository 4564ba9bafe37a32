"""What the atlas's viewer needs of an explanation, as data: the record, the heatmap overlays, the maps.

- :func:`explanation_record`: :meth:`Explanation.to_dict` plus the five most probable classes
  (``top_classes``) and per layer its ``shape`` and ``receptive_fields``.
- :func:`heatmap_overlay`: a unit's conditional heatmap as an RGBA overlay, ``uint8 (H_in, W_in, 4)``:
  red where the pixels raise the class logit through the unit, blue where they lower it, opacity
  ``|value| / scale`` up to 1, after the smoothing the PNG figure uses (``smooth`` over
  ``max(1, H_in // 75)`` pixels; ``scale`` its 99.5th percentile of ``|value|``). Composited over
  the greyed image it is :func:`~convscope.explain.overlays.unit_heat_overlay` of the figure.
- :func:`maps_payload`: every unit's activation map of every layer (``(C, H, W)``), as float16
  (float32 for a layer with a finite value past float16's range), little-endian, zlib-compressed,
  base64: ``{"layers": [{"layer", "shape", "dtype", "data"}]}``. The viewer's reverse lookup
  (a click on the image) reads them: exactly :func:`~convscope.explain.region.region_units` of
  the stored (float16-rounded) maps.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import numpy as np
import torch

from convscope.explain.explanation import Explanation
from convscope.explain.overlays import heat_colours, shown_heatmap

#: Classes listed with their probability.
TOP_CLASSES = 5
#: Largest finite float16.
FLOAT16_MAX = 65504.0


def top_classes(explanation: Explanation, count: int = TOP_CLASSES) -> list[dict[str, Any]]:
    """The ``count`` most probable classes (:meth:`Explanation.top_classes`) as
    ``[{"class", "name", "probability"}]``, ``name`` ``None`` where the model has no names.

    Example:
        >>> e = Explanation(np.zeros((1, 1, 3), np.uint8), 1, "b", 1, 2.0, torch.tensor([0.2, 0.5, 0.3]), ())
        >>> [(c["class"], c["name"]) for c in top_classes(e, 2)]
        [(1, None), (2, None)]
    """
    named = explanation.class_names is not None
    return [{"class": c, "name": name if named else None, "probability": p} for c, name, p in explanation.top_classes(count)]


def explanation_record(explanation: Explanation) -> dict[str, Any]:
    """:meth:`Explanation.to_dict` with ``top_classes`` and each layer's ``shape`` ``[C, H, W]``
    (``null`` where the activation is not kept) and ``receptive_fields`` (``UnitFields.to_list``, or ``null``)."""
    record = explanation.to_dict()
    record["top_classes"] = top_classes(explanation)
    for entry, layer in zip(record["layers"], explanation.layers):
        entry["shape"] = list(layer.activation.shape) if layer.activation is not None else None
        entry["receptive_fields"] = layer.fields.to_list() if layer.fields is not None else None
    return record


def heatmap_overlay(heat: torch.Tensor) -> tuple[np.ndarray, float]:
    """A conditional heatmap ``(H_in, W_in)`` as ``uint8 (H_in, W_in, 4)`` RGBA and its scale.

    Example:
        >>> heat = torch.zeros(8, 8); heat[:, :4] = 1.0; heat[:, 4:] = -2.0
        >>> rgba, scale = heatmap_overlay(heat)  # smoothed over 3 x 3 squares: 1 on the left, -2 on the right
        >>> rgba[0, 0].tolist(), rgba[0, 7].tolist(), scale
        ([255, 0, 0, 128], [0, 0, 255, 255], 2.0)
    """
    shown, scale = shown_heatmap(heat)
    alpha, colour = heat_colours(shown.double().numpy(), scale)
    out = np.concatenate([colour * 255, alpha[..., None] * 255], axis=2)
    return np.rint(out).astype(np.uint8), scale


def map_dtype(activation: torch.Tensor) -> str:
    """``"float16"``, or ``"float32"`` when a finite value lies past float16's range."""
    values = activation.detach().float()
    finite = values[torch.isfinite(values)]
    return "float32" if finite.numel() and float(finite.abs().max()) > FLOAT16_MAX else "float16"


def encode_map(activation: torch.Tensor) -> dict[str, Any]:
    """``(C, H, W)`` as ``{"shape", "dtype", "data"}`` (see the module docstring)."""
    dtype = map_dtype(activation)
    array = activation.detach().float().cpu().numpy().astype("<f2" if dtype == "float16" else "<f4")
    data = base64.b64encode(zlib.compress(np.ascontiguousarray(array).tobytes(), 6)).decode("ascii")
    return {"shape": list(array.shape), "dtype": dtype, "data": data}


def decode_map(entry: dict[str, Any]) -> torch.Tensor:
    """:func:`encode_map` read back: ``(C, H, W)`` float32 (the values the viewer computes with)."""
    raw = zlib.decompress(base64.b64decode(entry["data"]))
    array = np.frombuffer(raw, dtype="<f2" if entry["dtype"] == "float16" else "<f4").astype(np.float32)
    return torch.from_numpy(array.reshape(entry["shape"]).copy())


def maps_payload(explanation: Explanation) -> dict[str, Any]:
    """Every layer's ``(C, H, W)`` activation (layers without one are left out)."""
    return {"layers": [{"layer": layer.layer, **encode_map(layer.activation)} for layer in explanation.layers if layer.activation is not None]}
