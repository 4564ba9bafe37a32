"""Bau's test of an ablation (Bau et al. 2020, "Understanding the role of individual units in a
deep neural network", PNAS): do a class's most important units matter more together than as many
random units?

Per class ``k`` with images, its top ``n`` units by the single-unit drops ``drops[:, k]`` are
zeroed together, and so, ``repeats`` times, are ``n`` units drawn at random; each set is one
mask. This module chooses the masks and averages the drops; running the masked network is the
caller's (:func:`~convscope.circuits.ablation.ablate` runs them batched like the single units).
"""

from __future__ import annotations

import numpy as np
import torch


def top_units(drops: np.ndarray, k: int, n: int) -> np.ndarray:
    """The ``n`` units with the largest drop for class ``k`` (lower unit first on ties) ``(n,)`` int64.

    Example:
        >>> top_units(np.array([[1.0], [3.0], [1.0], [0.5]]), 0, 2)
        array([1, 0])
    """
    column = drops[:, k]
    return np.lexsort((np.arange(len(column)), -column))[:n].astype(np.int64)


def bau_masks(drops: np.ndarray, counts: np.ndarray, n: int, repeats: int, seed: int = 0) -> torch.Tensor:
    """Every class's masks ``(K, 1 + repeats, units)`` bool (True: zeroed): at ``[k, 0]`` its top
    ``n`` units, at ``[k, 1:]`` ``repeats`` draws of ``n`` random units (a ``torch.Generator``
    seeded with ``seed``, drawn class after class, for the classes with images only; the rows of a
    class without images zero nothing). ``n`` is capped at the number of units.

    Example:
        >>> masks = bau_masks(np.array([[2.0, np.nan], [1.0, np.nan], [0.0, np.nan]]), np.array([4, 0]), 1, 2)
        >>> masks.shape, masks[0, 0].tolist(), int(masks[0, 1:].sum()), bool(masks[1].any())
        (torch.Size([2, 3, 3]), [True, False, False], 2, False)
    """
    units, classes = drops.shape
    n = min(n, units)
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(classes, 1 + repeats, units, dtype=torch.bool)
    for k in np.flatnonzero(counts > 0):
        masks[k, 0, torch.from_numpy(top_units(drops, int(k), n))] = True
        for r in range(repeats):
            masks[k, 1 + r, torch.randperm(units, generator=generator)[:n]] = True
    return masks


def bau_means(drop_sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(bau_top, bau_random)`` ``(K,)`` float32 from the summed drops ``(K, 1 + repeats)`` (float64,
    per class summed over its images): the top set's mean drop and the random sets' mean drop
    (over images and draws); NaN for a class without images.

    Example:
        >>> bau_means(np.array([[6.0, 1.0, 3.0], [0.0, 0.0, 0.0]]), np.array([2, 0]))
        (array([ 3., nan], dtype=float32), array([ 1., nan], dtype=float32))
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        means = drop_sums / np.where(counts > 0, counts, np.nan)[:, None]
    return means[:, 0].astype(np.float32), means[:, 1:].mean(axis=1).astype(np.float32)
