"""What an optimised image maximises: a unit's activation at the centre or over its map, its
negative, and the diversity of several images of the same unit.

All functions take a layer's output ``(N, C, H, W)`` for a batch of images and the unit
each image is for, ``(N,)``, and return one value per image ``(N,)`` to maximise.
"""

from __future__ import annotations

import torch

#: Where the unit's activation is read: the centre position, or the mean over the whole map.
WHERE = ("centre", "map")


def unit_values(output: torch.Tensor, units: torch.Tensor, where: str) -> torch.Tensor:
    """``(N,)`` each image's unit at the centre of the map (``(H // 2, W // 2)``) or its map's mean.

    Example:
        >>> out = torch.arange(2 * 2 * 3 * 3, dtype=torch.float).view(2, 2, 3, 3)
        >>> unit_values(out, torch.tensor([0, 1]), "centre").tolist(), unit_values(out, torch.tensor([0, 1]), "map").tolist()
        ([4.0, 31.0], [4.0, 31.0])
    """
    maps = output[torch.arange(output.shape[0], device=output.device), units.to(output.device)]  # (N, H, W)
    if where == "centre":
        return maps[:, maps.shape[1] // 2, maps.shape[2] // 2]
    return maps.mean(dim=(1, 2))


def spatial_max(output: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """``(N,)`` each image's unit at its strongest position: the statistic the scan ranks hits by."""
    maps = output[torch.arange(output.shape[0], device=output.device), units.to(output.device)]
    return maps.flatten(1).amax(dim=1)


def diversity(output: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """``(N,)`` minus each image's mean cosine similarity to the other images of its group, over
    the layer's Gram matrices (Olah et al. 2017's diversity term): higher when the images differ.

    Args:
        output: ``(N, C, H, W)``.
        groups: ``(N,)`` images with the same value belong together (several images of one unit).

    Example:
        >>> same = torch.ones(2, 3, 4, 4)
        >>> diversity(same, torch.tensor([0, 0])).round(decimals=4).tolist()  # identical images: similarity 1
        [-1.0, -1.0]
    """
    n, c = output.shape[:2]
    flat = output.reshape(n, c, -1)
    grams = torch.bmm(flat, flat.transpose(1, 2)).reshape(n, -1)
    grams = grams / grams.norm(dim=1, keepdim=True).clamp_min(1e-12)
    similarity = grams @ grams.t()  # (N, N)
    together = (groups[:, None] == groups[None, :]).to(similarity) - torch.eye(n, device=similarity.device)
    others = together.sum(dim=1).clamp_min(1)
    return -(similarity * together).sum(dim=1) / others
