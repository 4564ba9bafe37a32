"""The pictures an explanation is drawn with: a signed heatmap and an activation map over the
image, a box outline (numpy + PIL, on ``uint8 (H, W, 3)`` images in the model-input frame).

A heatmap is red where the pixels raise the class logit through the unit and blue where they
lower it; an activation map is drawn in model-input pixels through the unit's receptive field
(each pixel shows the position whose box centre is nearest; warmer is stronger).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from convscope.network.geometry import Box, ReceptiveField


def grey(image: np.ndarray) -> np.ndarray:
    """``uint8 (H, W, 3)`` as a light grey ``float (H, W, 3)`` background in [0, 1]."""
    lum = image.astype(np.float64).mean(axis=2, keepdims=True) / 255.0
    return np.repeat(0.35 + 0.5 * lum, 3, axis=2)


def smooth(heat: torch.Tensor, radius: int) -> torch.Tensor:
    """``(H, W)`` averaged over ``(2 radius + 1)^2`` squares (for display: gradient x input is speckled)."""
    if radius < 1:
        return heat
    k = 2 * radius + 1
    return torch.nn.functional.avg_pool2d(heat[None, None].float(), k, 1, radius, count_include_pad=False)[0, 0]


#: How a conditional heatmap is shown (the figure, the notebook, the viewer): smoothed over
#: ``max(1, H_in // SMOOTH_PER_ROWS)`` pixels, full opacity at the ``HEAT_PERCENTILE`` of ``|value|``.
SMOOTH_PER_ROWS, HEAT_PERCENTILE = 75, 99.5


def shown_heatmap(heat: torch.Tensor) -> tuple[torch.Tensor, float]:
    """A conditional heatmap ``(H_in, W_in)`` as it is shown: smoothed, and the value drawn at full opacity."""
    shown = smooth(heat.float(), max(1, heat.shape[0] // SMOOTH_PER_ROWS))
    return shown, float(np.percentile(shown.abs().double().numpy(), HEAT_PERCENTILE))


def heat_colours(values: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """A signed map ``(H, W)`` as opacity ``|value| / scale`` up to 1 ``(H, W)`` and colour
    ``(H, W, 3)`` in [0, 1]: red where positive, blue where negative."""
    alpha = np.clip(np.abs(values) / scale, 0, 1) if scale > 0 else np.zeros_like(values)
    colour = np.where(values[..., None] >= 0, np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]))
    return alpha, colour


def heat_overlay(image: np.ndarray, heat: torch.Tensor | np.ndarray, percentile: float = 100.0) -> np.ndarray:
    """A signed map ``(H, W)`` over the greyed image: red positive, blue negative, opacity
    ``|value| / scale`` up to 1, the scale the ``percentile`` of ``|value|`` (100: the max).
    Returns ``uint8 (H, W, 3)``.

    Example:
        >>> out = heat_overlay(np.zeros((2, 2, 3), np.uint8), np.array([[1.0, 0.0], [0.0, -1.0]]))
        >>> out[0, 0].tolist(), out[1, 1].tolist()
        ([255, 0, 0], [0, 0, 255])
    """
    values = np.asarray(heat.detach().cpu() if isinstance(heat, torch.Tensor) else heat, dtype=np.float64)
    alpha, colour = heat_colours(values, np.percentile(np.abs(values), percentile))
    out = (1 - alpha[..., None]) * grey(image) + alpha[..., None] * colour
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def unit_heat_overlay(image: np.ndarray, heat: torch.Tensor) -> np.ndarray:
    """A unit's conditional heatmap ``(H_in, W_in)`` over the greyed image, as it is shown
    (:func:`shown_heatmap`): ``uint8 (H_in, W_in, 3)``."""
    return heat_overlay(image, smooth(heat, max(1, image.shape[0] // SMOOTH_PER_ROWS)), HEAT_PERCENTILE)


def positions(length: int, count: int, field: ReceptiveField | None, axis: int) -> np.ndarray:
    """For each input pixel along one axis, the map position whose box centre is nearest."""
    pixels = np.arange(length) + 0.5
    if field is None:
        index = np.floor(pixels * count / length)
    elif field.stride[axis] == 0:
        index = np.zeros(length)
    else:
        index = np.rint((pixels - field.offset[axis] - field.size[axis] / 2) / field.stride[axis])
    return np.clip(index, 0, count - 1).astype(int)


def activation_overlay(image: np.ndarray, act: torch.Tensor, field: ReceptiveField | None) -> np.ndarray:
    """An activation map ``(h, w)`` drawn in model-input pixels through its receptive field:
    opacity grows with the activation (0 at or below zero, 1 at the map's max), in orange."""
    values = act.detach().cpu().double().numpy()
    rows = positions(image.shape[0], values.shape[0], field, 0)
    cols = positions(image.shape[1], values.shape[1], field, 1)
    per_pixel = values[rows[:, None], cols[None, :]]
    peak = per_pixel.max()
    alpha = (np.clip(per_pixel, 0, None) / peak if peak > 0 else np.zeros_like(per_pixel))[..., None]
    out = (1 - alpha) * grey(image) * 0.6 + alpha * np.array([1.0, 0.6, 0.0])
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)


def outline(image: np.ndarray, box: Box, colour=(255, 220, 0), width: int = 2) -> np.ndarray:
    """``image`` with ``box`` outlined (clipped to the image)."""
    out = image.copy()
    h, w = out.shape[:2]
    top, left, bottom, right = max(box.top, 0), max(box.left, 0), min(box.bottom, h), min(box.right, w)
    if top >= bottom or left >= right:
        return out
    out[top : min(top + width, bottom), left:right] = colour
    out[max(bottom - width, top) : bottom, left:right] = colour
    out[top:bottom, left : min(left + width, right)] = colour
    out[top:bottom, max(right - width, left) : right] = colour
    return out


def fit(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` ``(h, w, 3)`` scaled (bilinear) so that its longer side is ``side``."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    return np.asarray(Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR))
