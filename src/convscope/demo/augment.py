"""Random augmented crops, drawn from a caller-seeded ``torch.Generator``.

Each crop is one random similarity transform of one source image (scale,
position, small rotation, mirror, aspect jitter) sampled with ``grid_sample``,
followed by a colour jitter (brightness, contrast, saturation, channel gains)
applied to the whole batch at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """How strongly crops vary.

    Attributes:
        size: crops are ``size x size`` pixels.
        side: range of the crop's side as a fraction of the source's short side.
        aspect: largest width/height ratio (and its inverse) of a crop.
        rotate: largest rotation in degrees, either way.
        brightness, contrast, saturation: largest relative change, either way.
        gain: largest relative change of each colour channel alone.

    Example:
        >>> images = [torch.zeros(3, 40, 50, dtype=torch.uint8)]
        >>> g = torch.Generator().manual_seed(0)
        >>> Augment(size=16).crops(images, torch.tensor([0, 0]), g).shape
        torch.Size([2, 3, 16, 16])
    """

    size: int = 96
    side: tuple[float, float] = (0.3, 0.9)
    aspect: float = 1.25
    rotate: float = 15.0
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.4
    gain: float = 0.1

    def crops(
        self, images: Sequence[torch.Tensor], picks: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """One random crop of ``images[i]`` for every ``i`` in ``picks``.

        Args:
            images: ``uint8`` RGB sources ``(3, H, W)``, sizes may differ.
            picks: ``(N,)`` indices into ``images``.
            generator: the source of all randomness.

        Returns:
            ``uint8`` crops ``(N, 3, size, size)``.
        """
        n = len(picks)
        u = torch.rand(n, 9, generator=generator)
        side = self.side[0] + (self.side[1] - self.side[0]) * u[:, 0]
        log_aspect = math.log(self.aspect) * (2 * u[:, 1] - 1)
        angle = math.radians(self.rotate) * (2 * u[:, 2] - 1)
        mirror = torch.where(u[:, 3] < 0.5, -1.0, 1.0)
        out = []
        for i, index in enumerate(picks.tolist()):
            source = images[index].float().unsqueeze(0) / 255
            height, width = source.shape[-2:]
            short = min(height, width)
            half_w = 0.5 * short * side[i] * torch.exp(log_aspect[i] / 2)
            half_h = 0.5 * short * side[i] * torch.exp(-log_aspect[i] / 2)
            # The crop's centre lies where the crop (unrotated) fits inside the source.
            cx = half_w + (width - 2 * half_w).clamp(min=0) * u[i, 4]
            cy = half_h + (height - 2 * half_h).clamp(min=0) * u[i, 5]
            cos, sin = torch.cos(angle[i]), torch.sin(angle[i])
            theta = torch.stack(
                [
                    torch.stack([cos * half_w * mirror[i] * 2 / width, -sin * half_h * 2 / width, 2 * cx / width - 1]),
                    torch.stack([sin * half_w * mirror[i] * 2 / height, cos * half_h * 2 / height, 2 * cy / height - 1]),
                ]
            ).unsqueeze(0)
            grid = F.affine_grid(theta, [1, 3, self.size, self.size], align_corners=False)
            out.append(F.grid_sample(source, grid, mode="bilinear", padding_mode="reflection", align_corners=False))
        return (self._jitter(torch.cat(out), u[:, 6:], generator) * 255).round().to(torch.uint8)

    def _jitter(self, x: torch.Tensor, u: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Colour jitter of ``[0, 1]`` images ``(N, 3, H, W)``; ``u`` is ``(N, 3)`` uniform."""
        n = x.shape[0]

        def factor(strength: float, uniform: torch.Tensor) -> torch.Tensor:
            return (1 + strength * (2 * uniform - 1)).view(n, 1, 1, 1)

        x = x * factor(self.brightness, u[:, 0])
        grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
        mean = grey.mean(dim=(2, 3), keepdim=True)
        contrast = factor(self.contrast, u[:, 1])
        x = mean + (x - mean) * contrast
        grey = mean + (grey - mean) * contrast
        x = grey + (x - grey) * factor(self.saturation, u[:, 2])
        gains = 1 + self.gain * (2 * torch.rand(n, 3, 1, 1, generator=generator) - 1)
        return (x * gains).clamp(0, 1)
