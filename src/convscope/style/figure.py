"""The picture of an :class:`~convscope.style.explain.Explanation`: Gatys et al.'s Figure 1 layout.

Two rows of equal-height cells, each with its caption: the content image, then its
reconstruction from each content layer; the style image, then its reconstruction from
the first style layer, the first two, ... all of them. Nothing is written here.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from convscope.render.grid import caption, stack
from convscope.style.explain import Explanation

GAP = 8


def _height(image: np.ndarray, height: int) -> np.ndarray:
    """``image`` ``uint8 (H, W, 3)`` scaled to ``height`` rows, aspect ratio kept."""
    if image.shape[0] == height:
        return image
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))


def explain_figure(explanation: Explanation, content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """The figure ``uint8 (H, W, 3)``: the content row above the style row.

    Args:
        explanation: what :func:`~convscope.style.explain.explain` returned.
        content, style: the content image and the (first) style image, ``uint8 (H, W, 3)``.
    """
    height = max(r.result.image.shape[0] for r in explanation.content + explanation.style)
    content_row = [caption(_height(content, height), "content image")]
    content_row += [caption(_height(r.result.image, height), f"content of {r.layers[0]}") for r in explanation.content]
    style_row = [caption(_height(style, height), "style image")]
    for r in explanation.style:
        label = f"style of {r.layers[0]}" if len(r.layers) == 1 else f"style up to {r.layers[-1]}"
        style_row.append(caption(_height(r.result.image, height), label))
    return stack([stack(content_row, GAP), stack(style_row, GAP)], 2 * GAP, vertical=True)
