"""Colour preservation (Gatys et al. 2016, "Preserving colour in neural artistic style transfer").

The luminance-only variant applied after the transfer: the result keeps the stylised
image's luminance (Y of YIQ) and takes its chrominance (I, Q) from the content image.
"""

from __future__ import annotations

import numpy as np

_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def preserve_colour(stylised: np.ndarray, content: np.ndarray) -> np.ndarray:
    """``uint8 (H, W, 3)`` with the luminance of ``stylised`` and the colours of ``content`` (same shape).

    Example:
        >>> grey = np.full((2, 2, 3), 128, np.uint8); red = np.zeros((2, 2, 3), np.uint8); red[..., 0] = 255
        >>> preserve_colour(grey, red)[0, 0].tolist()
        [255, 52, 52]
    """
    if stylised.shape != content.shape:
        raise ValueError(f"shapes differ: {stylised.shape} vs {content.shape}")
    s = stylised.astype(np.float64) / 255 @ _RGB_TO_YIQ.T
    c = content.astype(np.float64) / 255 @ _RGB_TO_YIQ.T
    yiq = np.concatenate([s[..., :1], c[..., 1:]], axis=-1)
    rgb = yiq @ np.linalg.inv(_RGB_TO_YIQ).T
    return (rgb * 255).round().clip(0, 255).astype(np.uint8)
