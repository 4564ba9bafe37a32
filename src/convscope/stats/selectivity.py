"""Which class a unit prefers, how strongly, and a label suggested from its hits.

Two views of a unit's class preference, both computed here as pure functions:

* from its **class means** (``(units, classes)``, see :mod:`convscope.stats.classes`):
  :func:`class_selectivity`, the index of Morcos et al. 2018 ("On the importance of
  single directions for generalization"), and :func:`top_class`, the class of
  the highest mean;
* from the **labels of its hits** (``(units, k)``, strongest hit first, ``-1`` for
  a missing hit or an unlabelled image): :func:`hit_mode`, the most common label,
  :func:`hit_purity`, the share of the labelled hits that carry a given class,
  and :func:`chance`, how often random images would agree as much.

:func:`suggest_labels` names each unit after the most common label of its hits (what
a person looking at the hits sees), reports ``"7 of 9"``, the selectivity, and a
confidence in words that weighs the purity against chance (see :data:`CONFIDENCE`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from convscope.errors import ConvscopeError
from convscope.stats.inputs import ArrayLike, as_numpy

CONFIDENCE = (
    ("high", 1e-4, 0.75),
    ("medium", 1e-2, 0.5),
    ("low", 5e-2, 0.0),
)
"""``(word, chance below, purity at least)``, the first rule that holds wins, else ``"none"``.

*chance* is the probability that, with hits drawn at random from the labelled
images (class frequencies as in the data), some class gets at least as many of the
unit's labelled hits as its most common label has (see :func:`chance`). So
``"low"`` is "unlikely to be chance (p < 0.05)", ``"medium"`` adds a majority of the
hits at p < 0.01, ``"high"`` three quarters of them at p < 0.0001. A single agreeing
hit is never evidence: it is ``"none"`` whatever its chance.
With 9 labelled hits and 1,000 equal classes (ImageNet), 2 agreeing hits are low
(chance 0.036), 5 medium, 7 high; with 10 classes (CIFAR-10), 4 are none (0.083), 5
medium (0.0089), 7 high (3e-5); with 2 classes, 8 are low (0.039), 9 medium (0.0039).
"""


@dataclass(frozen=True)
class UnitLabel:
    """The label suggested for one unit, with the evidence for it.

    Attributes:
        unit: the unit's index in its layer.
        label: class index of the most common label among the hits; ``-1`` without
            a labelled hit.
        name: that class's name, or ``None``.
        agreeing: hits that carry ``label``.
        hits: labelled hits (missing hits and unlabelled images left out).
        purity: ``agreeing / hits``; NaN without a labelled hit.
        selectivity: the unit's class selectivity (of its top mean class, which may
            differ from ``label``); NaN when unknown.
        chance: probability of this much agreement by chance (see :func:`chance`).
        confidence: ``"high"``, ``"medium"``, ``"low"`` or ``"none"`` (:data:`CONFIDENCE`).
    """

    unit: int
    label: int
    name: str | None
    agreeing: int
    hits: int
    purity: float
    selectivity: float
    chance: float
    confidence: str

    @property
    def agreement(self) -> str:
        """``"7 of 9"``."""
        return f"{self.agreeing} of {self.hits}"

    @property
    def text(self) -> str:
        """One line, e.g. ``"golden retriever: 7 of 9 hits, selectivity 0.62"``."""
        if self.name is None:
            return "no labelled hits"
        text = f"{self.name}: {self.agreement} hits"
        return text if math.isnan(self.selectivity) else f"{text}, selectivity {self.selectivity:.2f}"


def class_selectivity(class_means: ArrayLike) -> np.ndarray:
    """Morcos et al.'s class selectivity index of every unit.

    ``(mu_max - mu_rest) / (mu_max + mu_rest)``, where ``mu_max`` is the unit's
    largest class mean and ``mu_rest`` the mean of its other class means. The index
    is defined for non-negative activity (after a ReLU), where it lies in ``[0, 1]``:
    0 for a unit that responds equally to every class, 1 for one that responds to
    one class only. Negative class means are therefore clipped to 0 first (a unit
    whose strongest response to a class is negative is silent for it, as a ReLU
    would make it); classes with a NaN mean (no image) are left out. The index is
    NaN for a unit with fewer than two classes left, or with no positive class mean
    (the denominator is 0).

    Args:
        class_means: ``(units, classes)``.

    Returns:
        ``(units,)`` float64.

    Example:
        >>> class_selectivity(np.array([[4.0, 1.0, 1.0], [2.0, 2.0, 2.0], [-1.0, -2.0, np.nan]])).tolist()
        [0.6, 0.0, nan]
    """
    means = _class_means(class_means)
    present = ~np.isnan(means)
    clipped = np.where(present, np.maximum(means, 0), 0)
    classes = present.sum(axis=1)
    mu_max = clipped.max(axis=1, initial=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu_rest = (clipped.sum(axis=1) - mu_max) / (classes - 1)
        index = (mu_max - mu_rest) / (mu_max + mu_rest)
    return np.where((classes >= 2) & (mu_max > 0), index, np.nan)


def top_class(class_means: ArrayLike) -> np.ndarray:
    """The class with each unit's highest mean (NaN left out; ties to the lower index).

    Args:
        class_means: ``(units, classes)``.

    Returns:
        ``(units,)`` int64; ``-1`` for a unit whose means are all NaN.

    Example:
        >>> top_class(np.array([[0.0, 3.0, 3.0], [np.nan, np.nan, np.nan]])).tolist()
        [1, -1]
    """
    means = _class_means(class_means)
    present = ~np.isnan(means)
    if not means.shape[1]:
        return np.full(means.shape[0], -1, np.int64)
    best = np.where(present, means, -np.inf).argmax(axis=1)
    return np.where(present.any(axis=1), best, -1).astype(np.int64)


def hit_mode(hit_labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The most common label among each unit's hits, its count, and the labelled hits.

    Ties go to the label of the stronger hit (hits come strongest first).

    Args:
        hit_labels: ``(units, k)`` class index per hit, ``-1`` for a missing hit or
            an unlabelled image.

    Returns:
        ``label`` ``(units,)`` int64 (``-1`` without a labelled hit), ``agreeing``
        ``(units,)`` int64 hits with that label, ``labelled`` ``(units,)`` int64.

    Example:
        >>> label, agreeing, labelled = hit_mode(np.array([[3, 1, 1, -1], [2, 5, -1, -1]]))
        >>> label.tolist(), agreeing.tolist(), labelled.tolist()
        ([1, 2], [2, 1], [3, 2])
    """
    labels = _hit_labels(hit_labels)
    units, k = labels.shape
    labelled = labels >= 0
    if not k:
        zeros = np.zeros(units, np.int64)
        return zeros - 1, zeros, zeros
    same = (labels[:, :, None] == labels[:, None, :]) & labelled[:, None, :]  # (units, k, k)
    votes = np.where(labelled, same.sum(axis=2), 0)  # per hit: hits sharing its label
    first = votes.argmax(axis=1)  # the strongest hit among those with the most votes
    agreeing = np.take_along_axis(votes, first[:, None], axis=1)[:, 0].astype(np.int64)
    label = np.where(agreeing > 0, np.take_along_axis(labels, first[:, None], axis=1)[:, 0], -1)
    return label.astype(np.int64), agreeing, labelled.sum(axis=1).astype(np.int64)


def hit_purity(hit_labels: ArrayLike, top: ArrayLike) -> np.ndarray:
    """The share of each unit's labelled hits whose label is the class ``top`` names.

    Args:
        hit_labels: ``(units, k)`` class index per hit, ``-1`` for a missing hit or an
            unlabelled image (left out of the share).
        top: ``(units,)`` the class to count per unit, e.g. :func:`top_class` or the
            label of :func:`hit_mode`; ``-1`` gives NaN.

    Returns:
        ``(units,)`` float64 in ``[0, 1]``; NaN without a labelled hit.

    Example:
        >>> hit_purity(np.array([[2, 2, 0, -1], [1, 1, 1, 1]]), np.array([2, 0])).tolist()
        [0.6666666666666666, 0.0]
    """
    labels = _hit_labels(hit_labels)
    top = as_numpy(top).astype(np.int64).reshape(-1)
    if top.shape != (labels.shape[0],):
        raise ConvscopeError(
            f"{top.shape[0]} top classes for {labels.shape[0]} units",
            hint="pass one class index per unit (a row of hit labels)",
        )
    labelled = labels >= 0
    count = labelled.sum(axis=1)
    agreeing = ((labels == top[:, None]) & labelled).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((count > 0) & (top >= 0), agreeing / count, np.nan)


def chance(agreeing: ArrayLike, hits: ArrayLike, class_counts: ArrayLike) -> np.ndarray:
    """The probability of so much agreement among random hits.

    For a unit whose ``hits`` labelled hits include ``agreeing`` of one class: the
    probability that ``hits`` images drawn independently from the labelled images
    (class ``c`` with probability ``class_counts[c] / class_counts.sum()``) give *some*
    class ``agreeing`` times or more, bounded above by the sum over classes of the
    binomial tails ``P(Binomial(hits, p_c) >= agreeing)`` (and by 1). The bound is
    conservative: the unit's top images are not independent draws, and a dataset's
    near-duplicates make agreement likelier than this model says.

    Args:
        agreeing: ``(units,)`` ints. hits: ``(units,)`` ints, ``agreeing <= hits``.
        class_counts: ``(classes,)`` labelled images per class.

    Returns:
        ``(units,)`` float64 in ``[0, 1]``; 1 where ``agreeing`` is 0.

    Example:
        >>> chance(np.array([2, 1]), np.array([2, 2]), np.array([1, 1])).tolist()  # 2 fair coins
        [0.5, 1.0]
    """
    agreeing = as_numpy(agreeing).astype(np.int64).reshape(-1)
    hits = as_numpy(hits).astype(np.int64).reshape(-1)
    counts = as_numpy(class_counts).astype(np.float64).reshape(-1)
    if agreeing.shape != hits.shape or (agreeing < 0).any() or (agreeing > hits).any():
        raise ConvscopeError(
            "agreeing hits must be between 0 and the number of hits, one of each per unit",
            hint="pass the agreeing and labelled counts of hit_mode",
        )
    if (counts < 0).any() or counts.sum() <= 0:
        raise ConvscopeError(
            "class counts must be non-negative with at least one labelled image",
            hint="pass the counts of RunningClassMeans.result() over labelled images",
        )
    p = counts / counts.sum()
    out = np.ones(hits.shape, np.float64)
    for n in np.unique(hits[agreeing > 0]):
        tail = _tails(int(n), p)  # (n + 1,) P(some class >= m), union bound
        rows = (hits == n) & (agreeing > 0)
        out[rows] = tail[agreeing[rows]]
    return out


def suggest_labels(
    hit_labels: ArrayLike,
    class_counts: ArrayLike,
    class_names: Sequence[str],
    selectivity: ArrayLike | None = None,
) -> tuple[UnitLabel, ...]:
    """Suggest a name for every unit from the labels of its hits.

    The name is the most common label among the unit's hits (:func:`hit_mode`;
    ties to the stronger hit); its purity is the share of labelled hits with that
    label, and the confidence follows :data:`CONFIDENCE`.

    Args:
        hit_labels: ``(units, k)`` class index per hit (strongest first), ``-1`` for a
            missing hit or an unlabelled image.
        class_counts: ``(classes,)`` labelled images per class (the chance baseline).
        class_names: ``classes`` names.
        selectivity: ``(units,)`` e.g. :func:`class_selectivity`, or ``None``.

    Returns:
        One :class:`UnitLabel` per unit, in unit order.

    Example:
        >>> labels = suggest_labels(np.array([[0, 0, 0, 0, 0, 0, 0, 1, 2]]), np.full(10, 100),
        ...                         [f"class {i}" for i in range(10)], np.array([0.62]))
        >>> labels[0].text, labels[0].confidence
        ('class 0: 7 of 9 hits, selectivity 0.62', 'high')
    """
    labels = _hit_labels(hit_labels)
    counts = as_numpy(class_counts).reshape(-1)
    names = tuple(str(name) for name in class_names)
    if counts.shape != (len(names),):
        raise ConvscopeError(
            f"{counts.shape[0]} class counts for {len(names)} class names",
            hint="pass one count per class name",
        )
    if labels.size and labels.max() >= len(names):
        raise ConvscopeError(
            f"hit label {int(labels.max())} is out of range for {len(names)} classes",
            hint="hit labels are indices into class_names, -1 for none",
        )
    units = labels.shape[0]
    if selectivity is None:
        index = np.full(units, np.nan)
    else:
        index = as_numpy(selectivity).astype(np.float64).reshape(-1)
        if index.shape != (units,):
            raise ConvscopeError(
                f"{index.shape[0]} selectivities for {units} units", hint="pass one selectivity per unit"
            )
    label, agreeing, labelled = hit_mode(labels)
    purity = hit_purity(labels, label)
    p = chance(agreeing, labelled, counts)
    words = confidence(p, purity, agreeing)
    return tuple(
        UnitLabel(
            unit=u,
            label=int(label[u]),
            name=names[label[u]] if label[u] >= 0 else None,
            agreeing=int(agreeing[u]),
            hits=int(labelled[u]),
            purity=float(purity[u]),
            selectivity=float(index[u]),
            chance=float(p[u]),
            confidence=str(words[u]),
        )
        for u in range(units)
    )


def confidence(chance: ArrayLike, purity: ArrayLike, agreeing: ArrayLike) -> np.ndarray:
    """The words of :data:`CONFIDENCE` for each unit.

    Args:
        chance: ``(units,)`` from :func:`chance`. purity: ``(units,)``.
        agreeing: ``(units,)`` hits with the label (fewer than 2 give ``"none"``).

    Returns:
        ``(units,)`` array of str.

    Example:
        >>> confidence(np.array([1e-5, 1e-5, 0.03, 0.2]), np.array([0.8, 0.6, 0.3, 0.9]), np.full(4, 3)).tolist()
        ['high', 'medium', 'low', 'none']
    """
    p = as_numpy(chance).astype(np.float64).reshape(-1)
    purity = np.nan_to_num(as_numpy(purity).astype(np.float64).reshape(-1), nan=0.0)
    evidence = as_numpy(agreeing).reshape(-1) >= 2
    words = np.full(p.shape, "none", dtype=object)
    for word, below, at_least in reversed(CONFIDENCE):  # weakest first, stronger overwrite
        words[evidence & (p < below) & (purity >= at_least)] = word
    return words.astype(str)


def _tails(n: int, p: np.ndarray) -> np.ndarray:
    """``(n + 1,)``: for each m, min(1, sum over classes of P(Binomial(n, p_c) >= m))."""
    j = np.arange(n + 1)
    log_choose = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in j])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = np.where(j == 0, 0.0, j * np.log(p[:, None]))  # (classes, n + 1); 0 * log 0 = 0
        log_q = np.where(j == n, 0.0, (n - j) * np.log1p(-p[:, None]))
    pmf = np.exp(log_choose + log_p + log_q)
    tails = np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]  # P(X >= m), summed from the small end
    return np.minimum(tails.sum(axis=0), 1.0)


def _class_means(class_means: ArrayLike) -> np.ndarray:
    means = as_numpy(class_means).astype(np.float64)
    if means.ndim != 2:
        raise ConvscopeError(
            f"class means have shape {tuple(means.shape)}, expected (units, classes)",
            hint="pass ClassMeans.means",
        )
    return means


def _hit_labels(hit_labels: ArrayLike) -> np.ndarray:
    labels = as_numpy(hit_labels)
    if labels.ndim != 2 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise ConvscopeError(
            f"hit labels have shape {tuple(labels.shape)} and dtype {labels.dtype}, expected (units, k) integers",
            hint="pass the class index of each hit's image, -1 where there is no hit or no label",
        )
    labels = labels.astype(np.int64)
    if (labels < -1).any():
        raise ConvscopeError("hit labels below -1", hint="use -1 for a missing hit or an unlabelled image")
    return labels
