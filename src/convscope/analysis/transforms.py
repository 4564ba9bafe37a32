"""The image transformations of Zeiler & Fergus's Figure 5, in the model-input frame.

Each acts on float pixels ``(3, H, W)`` in ``[0, 1]`` and returns the same shape; pixels
that the transformation exposes are filled with ``fill`` (the normalisation mean, so the
model sees zeros there). Translation is vertical, by whole pixels (positive: down); scale
zooms about the image centre; rotation turns about the centre, positive angles counter-
clockwise as the picture is seen. Scale and rotation sample bilinearly.

The paper sweeps -60..+60 px of a 224-px input; :func:`default_sweeps` keeps that *fraction*
of the side (60/224 = 27%), so a 32-px CIFAR input shifts by at most 9 px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: The paper's translation reach as a share of the input side (60 px of 224).
SHIFT_FRACTION = 60 / 224


def translate(image: torch.Tensor, rows: int, fill: tuple[float, float, float] = (0.5, 0.5, 0.5), cols: int = 0) -> torch.Tensor:
    """``(3, H, W)`` shifted by ``rows`` down (and ``cols`` right); exposed pixels get ``fill``.

    Example:
        >>> x = torch.zeros(3, 5, 5); x[:, 1, 2] = 1
        >>> int(translate(x, 2, (0, 0, 0))[0].argmax())  # row 3, col 2
        17
    """
    out = torch.tensor(fill, dtype=image.dtype, device=image.device).view(3, 1, 1).expand_as(image).clone()
    h, w = image.shape[-2:]
    if abs(rows) >= h or abs(cols) >= w:
        return out
    src_r, dst_r = slice(max(0, -rows), h - max(0, rows)), slice(max(0, rows), h - max(0, -rows))
    src_c, dst_c = slice(max(0, -cols), w - max(0, cols)), slice(max(0, cols), w - max(0, -cols))
    out[:, dst_r, dst_c] = image[:, src_r, src_c]
    return out


def _resample(image: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, fill: tuple[float, float, float]) -> torch.Tensor:
    """Sample ``image`` (3, H, W) at pixel coordinates ``rows, cols`` (H, W); outside: ``fill``."""
    h, w = image.shape[-2:]
    grid = torch.stack([(2 * cols + 1) / w - 1, (2 * rows + 1) / h - 1], dim=-1)[None].to(image.dtype)
    base = torch.tensor(fill, dtype=image.dtype, device=image.device).view(3, 1, 1)
    sampled = F.grid_sample((image - base)[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return sampled[0] + base


def _centred_grid(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    h, w = image.shape[-2:]
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    return rows, cols, (h - 1) / 2, (w - 1) / 2


def scale(image: torch.Tensor, factor: float, fill: tuple[float, float, float] = (0.5, 0.5, 0.5)) -> torch.Tensor:
    """``(3, H, W)`` zoomed by ``factor`` about the centre: a pixel at distance d from it moves to ``factor * d``.

    Example:
        >>> scale(torch.ones(3, 4, 4), 1.5).shape
        torch.Size([3, 4, 4])
    """
    rows, cols, cr, cc = _centred_grid(image)
    return _resample(image, cr + (rows - cr) / factor, cc + (cols - cc) / factor, fill)


def rotate(image: torch.Tensor, degrees: float, fill: tuple[float, float, float] = (0.5, 0.5, 0.5)) -> torch.Tensor:
    """``(3, H, W)`` turned by ``degrees`` counter-clockwise about the centre.

    Example:
        >>> x = torch.zeros(3, 5, 5); x[:, 2, 4] = 1  # right of the centre
        >>> int(rotate(x, 90, (0, 0, 0))[0].argmax())  # now above it: row 0, col 2
        2
    """
    rows, cols, cr, cc = _centred_grid(image)
    t = math.radians(degrees)
    dr, dc = rows - cr, cols - cc
    return _resample(image, cr + dc * math.sin(t) + dr * math.cos(t), cc + dc * math.cos(t) - dr * math.sin(t), fill)


@dataclass(frozen=True)
class Sweep:
    """One transformation and the values it is swept over.

    Attributes:
        kind: ``"translation"`` (rows, px), ``"scale"`` (factor) or ``"rotation"`` (degrees).
        values: the swept values; the identity (0, 1.0, 0) is among them.
    """

    kind: str
    values: tuple[float, ...]

    def apply(self, image: torch.Tensor, value: float, fill: tuple[float, float, float]) -> torch.Tensor:
        """``image`` (3, H, W) transformed by ``value``."""
        if self.kind == "translation":
            return translate(image, int(value), fill)
        if self.kind == "scale":
            return scale(image, value, fill)
        return rotate(image, value, fill)


def max_shift(input_size: tuple[int, int]) -> int:
    """The paper's 60 px of 224 as pixels of this input height (9 for 32, 60 for 224)."""
    return max(1, round(SHIFT_FRACTION * input_size[0]))


def default_sweeps(input_size: tuple[int, int], shift: int | None = None) -> tuple[Sweep, Sweep, Sweep]:
    """The paper's three sweeps: translation -shift..+shift in 13 steps, scale 1.0..1.8 by 0.1, rotation 0..350 by 10.

    Example:
        >>> [s.values[-1] for s in default_sweeps((224, 224))]
        [60.0, 1.8, 350.0]
    """
    shift = max_shift(input_size) if shift is None else shift
    steps = torch.linspace(-shift, shift, 13).round().tolist()
    rows = tuple(sorted({float(v) for v in steps} | {0.0}))
    return (
        Sweep("translation", rows),
        Sweep("scale", tuple(round(1 + 0.1 * i, 2) for i in range(9))),
        Sweep("rotation", tuple(float(d) for d in range(0, 360, 10))),
    )
