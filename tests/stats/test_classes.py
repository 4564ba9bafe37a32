"""RunningClassMeans: a hand-built 3-class layer, a per-class loop, merges and states."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from convscope.errors import ConvscopeError
from convscope.stats import RunningClassMeans


def test_hand_built_three_classes() -> None:
    # unit 0 fires for class 1 only; unit 1 is negative; unit 2 has a gap; class 2 has no image
    values = np.array(
        [[0.0, -1.0, 2.0], [5.0, -3.0, -np.inf], [7.0, -2.0, 4.0], [0.0, -5.0, 1.0], [9.0, 9.0, 9.0]],
        dtype=np.float32,
    )
    labels = np.array([0, 1, 1, 0, -1])  # the last image is unlabelled and left out
    class_means = RunningClassMeans(units=3, classes=3)
    class_means.add(torch.from_numpy(values[:2]), torch.from_numpy(labels[:2]))
    class_means.add(values[2:], labels[2:])
    result = class_means.result()
    assert result.means.shape == (3, 3)
    np.testing.assert_array_equal(result.means[:, :2], [[0.0, 6.0], [-3.0, -2.5], [1.5, 4.0]])
    assert np.isnan(result.means[:, 2]).all()
    assert result.counts.tolist() == [2, 2, 0]


def test_against_a_loop_over_classes() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(700, 9)).astype(np.float32)
    values[rng.random(values.shape) < 0.03] = np.nan
    labels = rng.integers(-1, 12, size=700)
    labels[labels == 5] = 6  # class 5: no image
    values[labels == 7, 4] = -np.inf  # class 7: no finite value of unit 4
    class_means = RunningClassMeans(9, 12)
    for start in range(0, 700, 64):
        class_means.add(values[start : start + 64], labels[start : start + 64])
    result = class_means.result()
    for c in range(12):
        rows = values[labels == c].astype(np.float64)
        assert result.counts[c] == len(rows)
        for unit in range(9):
            finite = rows[np.isfinite(rows[:, unit]), unit]
            want = finite.mean() if len(finite) else np.nan
            np.testing.assert_allclose(result.means[unit, c], want, rtol=1e-12, equal_nan=True)
    assert np.isnan(result.means[:, 5]).all() and np.isnan(result.means[4, 7])


def test_merge_and_state_round_trip() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(300, 4)).astype(np.float32)
    values[10, 2] = -np.inf
    labels = rng.integers(0, 5, size=300)
    whole, first, second = RunningClassMeans(4, 5), RunningClassMeans(4, 5), RunningClassMeans(4, 5)
    for block, start in enumerate(range(0, 300, 16)):
        batch = slice(start, start + 16)
        whole.add(values[batch], labels[batch])
        (first if block >= 7 else second).add(values[batch], labels[batch], block=block)
    buffer = io.BytesIO()
    torch.save(second.state_dict(), buffer)
    buffer.seek(0)
    restored = RunningClassMeans(4, 5)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    first.merge(restored)
    np.testing.assert_array_equal(first.result().means, whole.result().means)  # the same tree: bit for bit
    assert first.result().counts.tolist() == whole.result().counts.tolist()
    for c in range(5):  # and a per-class loop agrees to rounding
        mine = values[labels == c].astype(np.float64)
        expected = np.ma.masked_array(mine, ~np.isfinite(mine)).mean(axis=0).filled(np.nan)
        np.testing.assert_allclose(whole.result().means[:, c], expected, rtol=1e-12)


def test_a_batch_without_labels_changes_nothing() -> None:
    class_means = RunningClassMeans(2, 2)
    class_means.add(np.ones((3, 2)), np.array([-1, -1, -1]))
    assert class_means.result().counts.tolist() == [0, 0] and np.isnan(class_means.result().means).all()


def test_bad_labels() -> None:
    class_means = RunningClassMeans(2, 3)
    with pytest.raises(ConvscopeError, match="out of range for 3 classes"):
        class_means.add(np.zeros((2, 2)), np.array([0, 3]))
    with pytest.raises(ConvscopeError, match="out of range"):
        class_means.add(np.zeros((2, 2)), np.array([0, -2]))
    with pytest.raises(ConvscopeError, match=r"expected \(2,\)"):
        class_means.add(np.zeros((2, 2)), np.array([0, 1, 2]))
    with pytest.raises(ConvscopeError, match="integers"):
        class_means.add(np.zeros((2, 2)), np.array([0.0, 1.0]))
    with pytest.raises(ConvscopeError, match="different shapes"):
        class_means.merge(RunningClassMeans(2, 4))
    with pytest.raises(ConvscopeError, match="4 classes"):
        RunningClassMeans(2, 4).load_state_dict(class_means.state_dict())
