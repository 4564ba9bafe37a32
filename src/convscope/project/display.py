"""Contrast normalisation of a projection for display, in the style of Zeiler & Fergus.

The rule: zero (no signal) is mid-grey 128; each value ``v`` becomes
``128 + 127 * v / s``, clipped to ``[0, 255]``, where the scale ``s`` is the
99th percentile of ``|v|`` over the non-zero values of all three channels (a
robust max: a few extreme pixels saturate instead of washing the rest out).
All channels share ``s``, so the colour balance of the signal is kept. A picture
with no signal is plain grey.
"""

from __future__ import annotations

import numpy as np
import torch

from convscope.errors import ConvscopeError

#: Fraction of the non-zero ``|v|`` that stays below the scale (the rest saturates).
ROBUST_QUANTILE = 0.99


def projection_to_image(p: torch.Tensor) -> np.ndarray:
    """A ``(3, h, w)`` projection as a ``(h, w, 3)`` uint8 picture around grey 128.

    Example:
        >>> img = projection_to_image(torch.tensor([[[0.0, 1.0]], [[0.0, -1.0]], [[0.0, 0.5]]]))
        >>> img[0].tolist()
        [[128, 128, 128], [255, 1, 192]]
    """
    if p.dim() != 3 or p.shape[0] != 3:
        raise ConvscopeError(
            f"a projection is (3, h, w), not {tuple(p.shape)}",
            hint="pass one picture of project_hits' output, e.g. projections[i]",
        )
    v = p.detach().to("cpu", torch.float64)
    magnitude = v.abs()
    nonzero = magnitude[magnitude > 0]
    scale = float(torch.quantile(nonzero, ROBUST_QUANTILE)) if len(nonzero) else 1.0
    grey = (128.0 + 127.0 * v / scale).clamp(0, 255).round()
    return grey.permute(1, 2, 0).numpy().astype(np.uint8)
