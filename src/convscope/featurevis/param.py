"""The image being optimised: a Fourier-space parameterisation with 1/f scaling and decorrelated colour.

Following Olah, Mordvintsev & Schubert ("Feature Visualization", Distill 2017): the
free parameters are the coefficients of each image's 2-D real FFT, scaled by ``1/f``
so that every frequency band starts with about the same energy (natural images have
a ``1/f`` spectrum; a plain pixel parameterisation is dominated by high-frequency
noise). The three channels are mixed by a colour matrix, the square root of the
RGB covariance of natural images (of the user's own images when given), so that the
optimiser moves along decorrelated colour directions; a sigmoid maps to ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

#: The square root of the RGB covariance of ImageNet photos (pixels in [0, 1]), as Lucid uses it;
#: the fallback when no images of the user's are given.
IMAGENET_COLOUR_SQRT = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))


def colour_matrix(pixels: Iterable[np.ndarray] | None = None) -> torch.Tensor:
    """``(3, 3)`` the symmetric square root of the RGB covariance of ``pixels``, scaled so
    that its largest column has norm 1; Lucid's ImageNet matrix scaled so without pixels.

    Args:
        pixels: images ``uint8 (H, W, 3)`` (e.g. a sample of the user's data set).

    Example:
        >>> grey = [np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)]
        >>> m = colour_matrix(grey)  # every channel equal: one direction carries all colour
        >>> torch.linalg.matrix_rank(m).item()
        1
    """
    if pixels is None:
        root = torch.tensor(IMAGENET_COLOUR_SQRT, dtype=torch.float64)
    else:
        flat = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 3) / 255 for p in pixels])
        cov = np.cov(flat, rowvar=False)
        values, vectors = np.linalg.eigh(cov)
        root = torch.from_numpy(vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T)
    norms = root.norm(dim=0).max()
    return (root / norms if norms > 0 else torch.eye(3, dtype=torch.float64)).float()


class FourierImage(nn.Module):
    """``count`` images ``(count, 3, height, width)`` in ``[0, 1]`` from scaled FFT coefficients.

    Args:
        count, height, width: how many images and their size.
        colour: ``(3, 3)`` the colour matrix (:func:`colour_matrix`).
        generator: seeds the initial coefficients (normal, standard deviation ``sd``).
        decay: the spectrum's scaling ``1 / f ** decay``.

    Example:
        >>> image = FourierImage(2, 16, 12, colour_matrix(), torch.Generator().manual_seed(0))
        >>> x = image()
        >>> tuple(x.shape), bool(x.min() >= 0), bool(x.max() <= 1)
        ((2, 3, 16, 12), True, True)
    """

    def __init__(
        self, count: int, height: int, width: int, colour: torch.Tensor, generator: torch.Generator,
        *, sd: float = 0.01, decay: float = 1.0,
    ) -> None:
        super().__init__()
        self.size = (height, width)
        fy = torch.fft.fftfreq(height)[:, None]
        fx = torch.fft.rfftfreq(width)[None, :]
        frequency = torch.sqrt(fx * fx + fy * fy)
        scale = 1.0 / torch.clamp(frequency, min=1.0 / max(height, width)) ** decay
        self.register_buffer("scale", scale * np.sqrt(height * width), persistent=False)
        self.register_buffer("colour", colour.float(), persistent=False)
        shape = (count, 3, height, width // 2 + 1, 2)
        self.spectrum = nn.Parameter(torch.randn(shape, generator=generator) * sd)

    def forward(self) -> torch.Tensor:
        """``(count, 3, height, width)`` pixels in ``[0, 1]``."""
        coefficients = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(coefficients, s=self.size) / 4.0
        mixed = torch.einsum("ij,njhw->nihw", self.colour, image)
        return torch.sigmoid(mixed)
