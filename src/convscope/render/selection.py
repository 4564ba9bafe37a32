"""Which units a figure shows: clear ones, different from each other.

The rule (documented in the README):

1. *Clarity* of a unit: how far its top hits stand above a typical image,
   ``(mean of its k hit activations - mean over images) / std over images`` of
   each image's strongest activation (images: the scan's signature sample).
   Dead units (constant over the sample) have no clarity and come last.
2. The candidates are the clearest ``max(2n, units / 2)`` units.
3. Greedy max-min diversity: start from the clearest unit; then repeatedly add
   the candidate least correlated (Pearson, over the signature images) with its
   most similar already-chosen unit, ties going to the clearer unit.
"""

from __future__ import annotations

import torch



def clarity(values: torch.Tensor, signature: torch.Tensor) -> torch.Tensor:
    """``(units,)`` z-score of each unit's mean top-k activation; ``-inf`` for dead units.

    Args:
        values: ``(units, k)`` each unit's hit activations (``-inf`` where it has fewer).
        signature: ``(M, units)`` each sample image's strongest activation of each unit.
    """
    signature = signature.double()
    values = values.double()
    valid = torch.isfinite(values)
    top_mean = torch.where(valid, values, 0).sum(1) / valid.sum(1).clamp(min=1)
    if signature.shape[0] < 2:
        return top_mean.float()
    std = signature.std(dim=0)
    z = (top_mean - signature.mean(dim=0)) / std
    return torch.where(std > 1e-12, z, float("-inf")).float()


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
    score = clarity(values, signature)
    units = score.numel()
    n = min(n, units)
    order = sorted(range(units), key=lambda u: (-score[u].item(), u))
    candidates = order[: max(2 * n, (units + 1) // 2)]
    corr = _correlation(signature)
    chosen = [candidates[0]]
    while len(chosen) < n:
        rest = [u for u in candidates if u not in chosen]
        # Live units first; then the least similar to its nearest chosen unit; clearer first on ties.
        best = min(
            rest,
            key=lambda u: (
                not torch.isfinite(score[u]).item(),
                round(max(corr[u, c].item() for c in chosen), 6),
                -score[u].item(),
                u,
            ),
        )
        chosen.append(best)
    return chosen


def _correlation(signature: torch.Tensor) -> torch.Tensor:
    """``(units, units)`` Pearson correlation of the columns of ``signature`` ``(M, units)``."""
    x = signature.double()
    if x.shape[0] < 2:
        return torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64)
    x = x - x.mean(dim=0)
    norm = x.norm(dim=0)
    x = x / torch.where(norm > 1e-12, norm, 1.0)
    return x.t() @ x
