"""Which units a figure shows: clear ones, different from each other.

The rule (documented in docs/guides/atlas.md, "Which units the overview shows"):

1. *Clarity* of a unit: how far its top hits stand above a typical image,
   ``(mean of its k hit activations - mean over images) / std over images`` of
   each image's strongest activation (images: the scan's signature sample, a
   seeded sample spread over the whole data set; non-finite values left out).
   Dead units (constant over the sample) have no clarity and come last.
2. The candidates are the clearest ``max(2n, units / 2)`` units.
3. Greedy max-min diversity: start from the clearest unit; then repeatedly add
   the candidate least correlated (Pearson, over the signature images) with its
   most similar already-chosen unit, ties going to the clearer unit.
"""

from __future__ import annotations

import numpy as np
import torch


def clarity(values: torch.Tensor, signature: torch.Tensor) -> torch.Tensor:
    """``(units,)`` z-score of each unit's mean top-k activation; ``-inf`` for dead units.

    Args:
        values: ``(units, k)`` each unit's hit activations (``-inf`` where it has fewer).
        signature: ``(M, units)`` each sample image's strongest activation of each unit.
    """
    values = values.double()
    valid = torch.isfinite(values)
    top_mean = torch.where(valid, values, 0).sum(1) / valid.sum(1).clamp(min=1)
    if signature.shape[0] < 2:
        return torch.where(valid.any(1), top_mean, float("-inf")).float()
    centred, count, mean = _centred(signature)
    std = ((centred**2).sum(0) / (count - 1).clamp(min=1)).sqrt()
    z = (top_mean - mean) / std
    return torch.where((std > 1e-12) & (count >= 2) & valid.any(1), z, float("-inf")).float()


def choose_units(values: torch.Tensor, signature: torch.Tensor, n: int = 9) -> list[int]:
    """Up to ``n`` clear, mutually different units, in the order chosen.

    Args:
        values: ``(units, k)`` each unit's hit activations.
        signature: ``(M, units)`` each sample image's strongest activation of each unit.

    Example:
        >>> sig = torch.tensor([[1., 1., 0.], [2., 2., 5.], [3., 3., 1.]])
        >>> choose_units(torch.tensor([[3.], [3.], [5.]]), sig, n=2)
        [2, 0]
    """
    score = clarity(values, signature).double()
    n = min(n, score.numel())
    if n == 0:
        return []
    order = torch.sort(-score, stable=True).indices  # clearest first, the lower unit on ties
    candidates = order[: max(2 * n, (score.numel() + 1) // 2)]
    corr = _correlation(signature[:, candidates]).numpy()
    unit, clear = candidates.numpy(), score[candidates].numpy()
    dead = ~np.isfinite(clear)
    nearest = np.full(len(unit), -np.inf)  # each candidate's correlation with its most similar chosen unit
    free = np.ones(len(unit), dtype=bool)
    chosen = [0]
    while True:
        free[chosen[-1]] = False
        nearest = np.maximum(nearest, corr[:, chosen[-1]])
        if len(chosen) == n:
            return [int(unit[i]) for i in chosen]
        # Live units first; then the least similar to its nearest chosen unit; clearer first on ties.
        rest = np.flatnonzero(free)
        chosen.append(int(rest[np.lexsort((unit[rest], -clear[rest], np.round(nearest[rest], 6), dead[rest]))[0]]))


def _centred(signature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``signature`` ``(M, units)`` minus each column's mean over its finite entries, with the
    non-finite entries (images where a unit had no finite activation) set to 0, so they
    change no mean, spread or correlation; also each column's finite count and mean ``(units,)``."""
    x = signature.double()
    finite = torch.isfinite(x)
    count = finite.sum(0)
    mean = torch.where(finite, x, 0.0).sum(0) / count.clamp(min=1)
    return torch.where(finite, x - mean, 0.0), count, mean


def _correlation(signature: torch.Tensor) -> torch.Tensor:
    """``(units, units)`` Pearson correlation of the columns of ``signature`` ``(M, units)``
    (over the finite entries of each column)."""
    if signature.shape[0] < 2:
        return torch.zeros(signature.shape[1], signature.shape[1], dtype=torch.float64)
    x = _centred(signature)[0]
    norm = x.norm(dim=0)
    x = x / torch.where(norm > 1e-12, norm, 1.0)
    return x.t() @ x
