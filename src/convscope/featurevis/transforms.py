"""Transformation robustness: a random pad-jitter-scale-rotate, drawn anew for every image and step.

Lucid's standard transforms (pad 12 px, jitter 8, scale 0.9-1.1, rotate -10..10 degrees,
jitter 4 at 224 px) as one affine resampling of the whole batch: each image gets its own
draw (Lucent draws one for the whole batch). Shifts and pads are given as fractions of
the image size, so a 32-pixel CIFAR image is jittered by a pixel or two, not by a
quarter of its width. Pixels pulled in from outside the image are mid-grey (0.5), as
Lucid's constant padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Robustness:
    """The ranges of the random transforms.

    Attributes:
        pad: mid-grey border, as a fraction of the image side (Lucid: 12 / 224).
        jitter: the largest shift, as a fraction of the side (Lucid: (8 + 4) / 224).
        scale: the smallest and largest zoom.
        rotate: the largest rotation in degrees, either way.
    """

    pad: float = 12 / 224
    jitter: float = 12 / 224
    scale: tuple[float, float] = (0.9, 1.1)
    rotate: float = 10.0

    def apply(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``images`` ``(N, 3, H, W)`` each moved by its own random draw (same shape).

        Example:
            >>> x = torch.rand(4, 3, 16, 16)
            >>> Robustness(0, 0, (1, 1), 0).apply(x, torch.Generator()).sub(x).abs().max() < 1e-5
            tensor(True)
        """
        n, _, h, w = images.shape
        draw = torch.rand((n, 4), generator=generator).to(images.device, images.dtype)
        zoom = self.scale[0] + (self.scale[1] - self.scale[0]) * draw[:, 0]
        angle = math.radians(self.rotate) * (2 * draw[:, 1] - 1)
        shift = self.jitter * 2 * (2 * draw[:, 2:] - 1)  # in grid units: the image spans 2
        # Where each output pixel samples the image: the output grid rotated, spread by the pad
        # (the image shrinks inside a grey border) and the zoom, then shifted.
        cos, sin = torch.cos(angle), torch.sin(angle)
        spread = (1 + 2 * self.pad) / zoom
        theta = torch.stack(
            [torch.stack([cos * spread, -sin * spread, shift[:, 0]], 1), torch.stack([sin * spread, cos * spread, shift[:, 1]], 1)], 1
        )
        grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
        moved = F.grid_sample(images - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return moved + 0.5
