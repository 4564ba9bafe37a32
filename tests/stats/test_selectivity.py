"""Class selectivity, top class, hit purity, chance and suggested labels, each against a hand computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convscope.errors import ConvscopeError
from convscope.stats import (
    RunningClassMeans,
    chance,
    class_selectivity,
    confidence,
    hit_mode,
    hit_purity,
    suggest_labels,
    top_class,
)


def _selectivity_by_hand(row: list[float]) -> float:
    """Morcos et al.'s index of one unit, written out: clip at 0, drop NaN, max vs mean of the rest."""
    means = [max(m, 0.0) for m in row if not math.isnan(m)]
    if len(means) < 2 or max(means) == 0:
        return math.nan
    best = max(means)
    rest = (sum(means) - best) / (len(means) - 1)
    return (best - rest) / (best + rest)


def test_selectivity_on_a_three_class_example() -> None:
    means = np.array(
        [
            [4.0, 1.0, 1.0],  # (4 - 1) / (4 + 1)
            [0.0, 6.0, 0.0],  # one class only
            [2.0, 2.0, 2.0],  # no preference
            [-1.0, 2.0, 3.0],  # negative mean clipped: (3 - 1) / (3 + 1)
            [-1.0, -2.0, -3.0],  # silent for every class
            [3.0, np.nan, 1.0],  # a class without images is left out
            [3.0, np.nan, np.nan],  # one class left
        ]
    )
    got = class_selectivity(means)
    np.testing.assert_allclose(got, [0.6, 1.0, 0.0, 0.5, np.nan, 0.5, np.nan], equal_nan=True)
    np.testing.assert_allclose(got, [_selectivity_by_hand(row) for row in means.tolist()], equal_nan=True)
    assert top_class(means).tolist() == [0, 1, 0, 2, 0, 0, 0]


def test_selectivity_against_the_hand_loop_on_random_means() -> None:
    rng = np.random.default_rng(0)
    means = rng.normal(0.5, 1.0, size=(200, 7))
    means[rng.random(means.shape) < 0.2] = np.nan
    got = class_selectivity(means)
    want = [_selectivity_by_hand(row) for row in means.tolist()]
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    assert np.nanmin(got) >= 0 and np.nanmax(got) <= 1


def test_top_class_ties_and_missing() -> None:
    means = np.array([[1.0, 5.0, 5.0], [np.nan, np.nan, np.nan], [np.nan, -2.0, -3.0]])
    assert top_class(means).tolist() == [1, -1, 1]


def test_hit_mode_and_purity() -> None:
    hits = np.array(
        [
            [4, 4, 4, 4, 4, 4, 4, 4, 4],  # pure
            [1, 2, 2, 1, 3, -1, -1, -1, -1],  # tie between 1 and 2: the strongest hit's label, 1
            [-1, -1, -1, -1, -1, -1, -1, -1, -1],  # no labelled hit
            [0, 3, 3, 3, -1, 0, 3, 1, 2],
        ]
    )
    label, agreeing, labelled = hit_mode(hits)
    assert label.tolist() == [4, 1, -1, 3]
    assert agreeing.tolist() == [9, 2, 0, 4]
    assert labelled.tolist() == [9, 5, 0, 8]
    purity = hit_purity(hits, label)
    np.testing.assert_allclose(purity, [1.0, 2 / 5, np.nan, 4 / 8], equal_nan=True)
    # purity of another class, e.g. the top mean class
    np.testing.assert_allclose(hit_purity(hits, np.array([0, 2, 1, -1])), [0.0, 2 / 5, np.nan, np.nan], equal_nan=True)


def _chance_by_hand(agreeing: int, hits: int, counts: list[int]) -> float:
    """Union bound over classes of exact binomial tails, with math.comb."""
    total = sum(counts)
    tail = 0.0
    for count in counts:
        p = count / total
        tail += sum(math.comb(hits, j) * p**j * (1 - p) ** (hits - j) for j in range(agreeing, hits + 1))
    return min(tail, 1.0) if agreeing > 0 else 1.0


def test_chance_against_exact_binomial_tails() -> None:
    counts = [50, 30, 15, 5, 0]
    agreeing = np.array([0, 1, 2, 3, 5, 7, 9, 4, 2])
    hits = np.array([9, 9, 9, 9, 9, 9, 9, 4, 3])
    got = chance(agreeing, hits, np.array(counts))
    want = [_chance_by_hand(int(a), int(n), counts) for a, n in zip(agreeing, hits)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # 1,000 equal classes: 7, 8 or 9 of 9 hits of one class, written out
    tail = 36 * 1e-21 * 0.999**2 + 9 * 1e-24 * 0.999 + 1e-27
    np.testing.assert_allclose(chance([7], [9], np.full(1000, 50)), [1000 * tail], rtol=1e-9)


def test_confidence_rule() -> None:
    p = np.array([1e-5, 1e-5, 1e-3, 0.03, 0.2, 1e-9])
    purity = np.array([0.8, 0.6, 0.6, 0.3, 1.0, 1.0])
    agreeing = np.array([7, 5, 5, 3, 2, 1])
    assert confidence(p, purity, agreeing).tolist() == ["high", "medium", "medium", "low", "none", "none"]


def test_suggested_labels_of_a_layer() -> None:
    """A layer over 3 classes, built so that each unit's answer is known."""
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], 40)
    values = rng.uniform(0.0, 0.1, size=(120, 4))
    values[labels == 2, 0] += 5.0  # unit 0: class 2 only
    values[:, 1] = rng.uniform(0, 1, size=120)  # unit 1: no preference
    values[:, 2] = -1.0  # unit 2: dead
    values[labels == 0, 3] = rng.uniform(1.0, 2.0, size=40)  # unit 3: class 0, negative otherwise
    values[labels != 0, 3] = -rng.uniform(1.0, 2.0, size=80)
    class_means = RunningClassMeans(4, 3)
    class_means.add(values, labels)
    result = class_means.result()
    selectivity = class_selectivity(result.means)
    top_images = np.argsort(-values, axis=0, kind="stable")[:12].T  # (units, 12), strongest first
    hit_labels = labels[top_images]
    hit_labels[2] = -1  # a dead unit has no hits
    names = ["cat", "dog", "golden retriever"]
    suggested = suggest_labels(hit_labels, result.counts, names, selectivity)

    unit = suggested[0]
    # 12 of 12 among 3 equal classes: chance 3 / 3**12 = 5.6e-6 (9 of 9 would be 1.5e-4: medium)
    assert (unit.name, unit.agreement, unit.purity, unit.confidence) == ("golden retriever", "12 of 12", 1.0, "high")
    assert unit.chance == pytest.approx(3.0**-11)
    assert unit.selectivity > 0.95 and unit.text.startswith("golden retriever: 12 of 12 hits, selectivity 0.9")
    assert hit_purity(hit_labels, top_class(result.means))[0] == 1.0
    assert 0 <= suggested[1].selectivity < 0.3 and suggested[1].confidence in ("none", "low")
    assert (suggested[2].name, suggested[2].confidence, suggested[2].text) == (None, "none", "no labelled hits")
    assert np.isnan(suggested[2].selectivity)  # never > 0: no positive class mean
    assert suggested[3].name == "cat" and suggested[3].selectivity == 1.0  # negative means count as silent


def test_text_without_selectivity() -> None:
    (unit,) = suggest_labels(np.array([[1, 1, 0]]), np.array([5, 5]), ["tench", "goldfish"])
    assert unit.text == "goldfish: 2 of 3 hits" and unit.chance == pytest.approx(2 * (3 * 0.25 * 0.5 + 0.125))


def test_bad_inputs() -> None:
    with pytest.raises(ConvscopeError, match="expected \\(units, classes\\)"):
        class_selectivity(np.zeros(3))
    with pytest.raises(ConvscopeError, match="expected \\(units, k\\) integers"):
        hit_mode(np.zeros((2, 3)))
    with pytest.raises(ConvscopeError, match="out of range for 2 classes"):
        suggest_labels(np.array([[0, 2]]), np.array([1, 1]), ["a", "b"])
    with pytest.raises(ConvscopeError, match="3 class counts for 2 class names"):
        suggest_labels(np.array([[0, 1]]), np.array([1, 1, 1]), ["a", "b"])
    with pytest.raises(ConvscopeError, match="at least one labelled image"):
        chance([1], [2], [0, 0])
    with pytest.raises(ConvscopeError, match="between 0 and the number of hits"):
        chance([3], [2], [1, 1])
