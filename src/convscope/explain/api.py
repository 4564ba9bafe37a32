"""``explain(network_or_atlas, image)``: one image through its units, for one class (gradient x activation or LRP).

The pieces it is made of can be called alone: :func:`~convscope.explain.relevance.class_gradients`
(one forward, one backward), :func:`~convscope.explain.heatmaps.conditional_heatmaps` (one layer's
units down to the pixels), :func:`~convscope.explain.region.region_units` (reverse lookup).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from convscope.data import failure_reason, open_rgb
from convscope.errors import ConvscopeError, DataError
from convscope.explain.atlas_source import AtlasSource, network_and_layers
from convscope.explain.explanation import Explanation, FiringUnit, LayerExplanation, UnitRelevance
from convscope.explain.heatmaps import conditional_heatmaps
from convscope.explain.region import region_units
from convscope.explain.relevance import METHODS, LayerGradient, Method, check_method, class_gradients
from convscope.network.geometry import Box, UnitFields
from convscope.network.layers import LayerInfo
from convscope.network.network import Network


def resolve_class(target: int | str | None, class_names: Sequence[str] | None) -> int | None:
    """A class index from an index, a digit string or a class name (``None`` stays ``None``).

    Raises:
        ConvscopeError: a name the model does not have (with the closest names).

    Example:
        >>> resolve_class("tabby", ["tench", "tabby cat", "tabby"]), resolve_class("3", None)
        (2, 3)
    """
    if target is None or isinstance(target, int):
        return target
    text = str(target).strip()
    if text.isdigit():
        return int(text)
    names = list(class_names or ())
    if text in names:
        return names.index(text)
    lowered = [n.lower() for n in names]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if not names:
        raise ConvscopeError(f"the model has no class names, so {text!r} cannot be looked up", hint="give the class index, e.g. --class 207")
    close = difflib.get_close_matches(text, names, n=5, cutoff=0.5)
    close += [n for n in names if text.lower() in n.lower() and n not in close][: 5 - len(close)]
    raise ConvscopeError(
        f"the model has no class named {text!r}",
        hint=(f"did you mean {', '.join(repr(c) for c in close)}? " if close else "") + "or give the class index",
    )


def load_image(image: str | Path | Image.Image | np.ndarray, network: Network) -> np.ndarray:
    """``uint8 (H, W, 3)`` in the model-input frame: a file or PIL image is resized and cropped;
    an array must already be that frame.

    Raises:
        DataError: the file cannot be read, or an array of the wrong shape or dtype.
    """
    if isinstance(image, np.ndarray):
        expected = (*network.preprocess.input_size, 3)
        if image.dtype != np.uint8 or image.shape != expected:
            raise DataError(f"an image array must be uint8 {expected} (the model-input frame), got {image.dtype} {image.shape}",
                            hint="pass the image file instead; it is resized and cropped as the model expects")
        return image
    if not isinstance(image, Image.Image):
        path = Path(image)
        try:
            image = open_rgb(path)
        except Exception as exc:
            raise DataError(f"cannot read image {path}: {failure_reason(exc)}", hint="give a readable image file (JPEG, PNG, ...)") from None
    return np.array(network.preprocess.to_model_frame(image.convert("RGB")), dtype=np.uint8)


def explain(
    network_or_atlas: Network | AtlasSource | str | Path,
    image: str | Path | Image.Image | np.ndarray,
    *,
    layers: Sequence[str] | Sequence[LayerInfo] | None = None,
    target: int | str | None = None,
    top: int = 10,
    region: Box | tuple[int, int, int, int] | None = None,
    heatmaps: bool = True,
    weights: str | Path | None = None,
    method: Method = "gradient",
) -> Explanation:
    """Explain one image's class through the units of some layers; returns data, writes nothing.

    Per layer, every unit's relevance to the class logit is gradient x activation summed over
    positions (signed), or with ``method="lrp"`` its LRP epsilon-plus-flat relevance (refused with
    :class:`~convscope.explain.lrp.LrpRuleError` where a module has no rule), and its share that over the layer's ``sum |relevance|``
    (:mod:`convscope.explain.relevance`); the ``top`` most relevant units (relevance not 0) get their activation
    map and (``heatmaps``) their conditional heatmap. Also per layer: the ``top`` units that fire
    most on the image whatever the class, and with a ``region`` the units whose fields cover it.

    Args:
        network_or_atlas: a :class:`Network`, or an atlas folder (its model, weights, checked by
            SHA-256, preprocessing and layers), or one already opened (:func:`atlas_source`).
        image: an image file, a PIL image, or ``uint8 (H, W, 3)`` already in the model-input frame.
        layers: layer names (default: the atlas's layers, or the network's default layers),
            or :class:`LayerInfo` records (from :func:`select_layers`, saving its dry runs).
        target: a class index or name; ``None``: the predicted class.
        top: units kept per layer.
        region: ``(top, left, bottom, right)`` in model-input pixels, for the reverse lookup.
        heatmaps: compute the conditional heatmaps of the top units.
        weights: with an atlas, where its weights file is now (if it moved).
        method: ``"gradient"`` (gradient x activation, any network) or ``"lrp"``.

    Example:
        >>> net = load_network("torchvision:squeezenet1_0", "squeezenet.pth")  # doctest: +SKIP
        >>> result = explain(net, "dog.jpg", layers=["features.12"], top=5)  # doctest: +SKIP
        >>> [(u.unit, round(u.share, 3)) for u in result.layer("features.12").units]  # doctest: +SKIP
        [(97, 0.061), ...]
    """
    check_method(method)
    if top < 1:
        raise ConvscopeError(f"top must be at least 1, got {top}", hint="e.g. top=10")
    network, infos, atlas = network_and_layers(network_or_atlas, layers, weights)
    chosen = resolve_class(target, network.class_names)
    box = Box(*region) if region is not None else None
    pixels = load_image(image, network)
    x = network.model_input(torch.from_numpy(pixels).permute(2, 0, 1)[None])
    dims = {info.name: info.dims for info in infos}
    found = class_gradients(network.model, x, [info.name for info in infos], chosen, dims, method)
    explained = []
    for info in infos:
        grad = found.layers[info.name]
        units = _top_units(grad, top)
        if not heatmaps:
            heat = None
        elif info.name == found.output_layer and units == [found.target]:  # the logits themselves: no pass needed
            heat = found.input_heatmap(x)[None]
        else:
            heat = conditional_heatmaps(network.model, x, info.name, grad.gradient, units, info.dims, method).cpu()
        explained.append(_layer(info, grad, units, heat, top, box))
    logits = found.logits.float().cpu()
    names = network.class_names
    return Explanation(
        image=pixels, target=found.target, class_name=names[found.target] if names and found.target < len(names) else None,
        predicted=int(logits.argmax()), logit=float(logits[found.target]), probabilities=torch.softmax(logits, 0),
        layers=tuple(explained), region=box, atlas=atlas, class_names=tuple(names) if names else None,
        method=METHODS[method],
    )


def _top_units(grad: LayerGradient, top: int) -> list[int]:
    """The ``top`` units of highest relevance (ties: the lower unit first); units of relevance 0
    (the class does not depend on them) are left out."""
    relevance = grad.relevance.cpu()
    order = sorted((u for u in range(len(relevance)) if float(relevance[u]) != 0), key=lambda u: (-float(relevance[u]), u))
    return order[:top]


def _peak(act: torch.Tensor) -> tuple[float, int, int]:
    """The largest value of a ``(H, W)`` map and its ``(row, col)``."""
    flat = int(act.flatten().argmax())
    row, col = divmod(flat, act.shape[1])
    return float(act[row, col]), row, col


def _box(fields: UnitFields | None, unit: int, row: int, col: int) -> Box | None:
    return fields.field(unit).box(row, col) if fields is not None else None


def _layer(info: LayerInfo, grad: LayerGradient, units: list[int], heat: torch.Tensor | None, top: int, region: Box | None) -> LayerExplanation:
    act = grad.activation.float().cpu()
    relevance, shares = grad.relevance.cpu(), grad.shares.cpu()
    fields = info.fields if info.fields is not None and info.fields.units == act.shape[0] else None
    records = []
    for i, unit in enumerate(units):
        _, row, col = _peak(act[unit])
        records.append(UnitRelevance(
            unit=unit, relevance=float(relevance[unit]), share=float(shares[unit]), activation_map=act[unit],
            heatmap=heat[i] if heat is not None else None, peak=(row, col), box=_box(fields, unit, row, col),
        ))
    maxima = act.flatten(1).max(dim=1).values
    firing = []
    for unit in sorted(range(act.shape[0]), key=lambda u: (-float(maxima[u]), u))[:top]:
        value, row, col = _peak(act[unit])
        firing.append(FiringUnit(unit, value, (row, col), _box(fields, unit, row, col)))
    under = tuple(region_units(act, fields, region, top)) if region is not None and fields is not None else None
    return LayerExplanation(
        layer=info.name, units=tuple(records), firing=tuple(firing), region=under,
        total=float(relevance.sum()), total_abs=float(relevance.abs().sum()), fields=fields, activation=act,
    )
