"""The losses of Gatys et al.'s style transfer: Gram matrices, content, style, total variation.

Every loss returns a scalar tensor ``()`` that gradients flow through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F


def gram(features: torch.Tensor) -> torch.Tensor:
    """The Gram matrix of a feature map, normalised by ``C * H * W``.

    ``G[n, i, j] = sum_{h, w} F[n, i, h, w] * F[n, j, h, w] / (C * H * W)``: the
    correlations between units, averaged over positions (and divided by ``C`` too, so
    that layers of different widths give losses of similar size).

    Args:
        features: ``(N, C, H, W)``.

    Returns:
        ``(N, C, C)``, symmetric.

    Example:
        >>> gram(torch.ones(1, 2, 3, 3))
        tensor([[[0.5000, 0.5000],
                 [0.5000, 0.5000]]])
    """
    if features.dim() != 4:
        raise ValueError(f"gram needs a feature map (N, C, H, W), got shape {tuple(features.shape)}")
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between a content layer's features ``(N, C, H, W)`` and its target (same shape)."""
    return F.mse_loss(features, target)


def style_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the Gram matrix of ``features`` ``(N, C, H, W)`` and ``target_gram`` ``(1 or N, C, C)``."""
    g = gram(features)
    return F.mse_loss(g, target_gram.expand_as(g))


def blend_grams(grams: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> torch.Tensor:
    """The weighted mean ``(1, C, C)`` of several style images' Gram matrices (each ``(1, C, C)``).

    Minimising ``sum_s w_s * ||G - G_s||^2`` and ``||G - sum_s w_s G_s / sum_s w_s||^2``
    give the same gradients (up to the factor ``sum_s w_s``), so several style images
    become one target per layer.
    """
    if weights is None:
        weights = [1.0] * len(grams)
    if len(weights) != len(grams) or not grams:
        raise ValueError(f"{len(grams)} Gram matrices but {len(weights)} weights")
    total = float(sum(weights))
    if total <= 0 or min(weights) < 0:
        raise ValueError(f"style weights must be non-negative with a positive sum, got {list(weights)}")
    return sum(w * g for w, g in zip(weights, grams)) / total  # type: ignore[return-value]


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation of ``image`` ``(N, 3, H, W)``: the mean squared difference of neighbouring pixels."""
    dh = image[:, :, 1:, :] - image[:, :, :-1, :]
    dw = image[:, :, :, 1:] - image[:, :, :, :-1]
    return dh.pow(2).mean() + dw.pow(2).mean()


def relative(loss: torch.Tensor, scale: float) -> torch.Tensor:
    """``loss / scale`` where ``scale`` is above zero, else ``loss`` (a per-layer normalisation)."""
    return loss / scale if scale > 0 else loss


def weighted_sum(values: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> torch.Tensor:
    """``sum_l weights[l] * values[l]`` over the keys of ``values``."""
    return sum(weights[k] * v for k, v in values.items())  # type: ignore[return-value]
