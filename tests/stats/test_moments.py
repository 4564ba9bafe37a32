"""RunningMoments: hand-built units (dead, always on, negative, gaps) and a direct computation."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from convscope.errors import ConvscopeError
from convscope.stats import RunningMoments

NAN, INF = float("nan"), float("inf")


def _hand_values() -> np.ndarray:
    """6 images x 5 units: dead, always on, negative and positive, gaps, firing once."""
    return np.array(
        [
            # dead   always on   mixed sign   gaps      once
            [0.0,    0.5,        -2.0,        1.0,      0.0],
            [-1.0,   2.0,        4.0,         -INF,     0.0],
            [-3.0,   1.0,        -1.0,        NAN,      0.0],
            [0.0,    0.25,       3.0,         2.0,      7.0],
            [-0.5,   4.0,        -4.0,        INF,      0.0],
            [-2.0,   1.0,        0.0,         3.0,      0.0],
        ],
        dtype=np.float32,
    )  # fmt: skip


def test_hand_built_units() -> None:
    moments = RunningMoments(units=5)
    values = _hand_values()
    moments.add(values[:4])
    moments.add(torch.from_numpy(values[4:]))
    result = moments.result()
    assert result.images == 6
    assert result.dead.tolist() == [True, False, False, False, False]
    assert result.always_on.tolist() == [False, True, False, False, False]
    # firing: > 0, over all images; an image without a finite value does not fire
    np.testing.assert_allclose(result.firing_rate, [0, 1, 2 / 6, 3 / 6, 1 / 6])
    assert result.finite.tolist() == [6, 6, 6, 3, 6]
    np.testing.assert_allclose(result.mean, [-6.5 / 6, 8.75 / 6, 0.0, 2.0, 7 / 6])
    np.testing.assert_allclose(result.std[2], np.std([-2.0, 4.0, -1.0, 3.0, -4.0, 0.0]))
    np.testing.assert_allclose(result.std[3], np.std([1.0, 2.0, 3.0]))


def test_against_a_direct_computation_on_random_batches() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(1.0, 3.0, size=(1000, 40)).astype(np.float32)
    values[rng.random(values.shape) < 0.05] = -np.inf
    values[:, 7] = -np.inf  # a unit without any finite value
    moments = RunningMoments(40)
    for batch in np.split(values, np.cumsum([1, 7, 64, 300])):  # uneven batches, the last of 628
        moments.add(batch)
    result = moments.result()
    finite = np.isfinite(values)
    masked = np.ma.masked_array(values.astype(np.float64), ~finite)
    np.testing.assert_allclose(result.mean, masked.mean(axis=0).filled(np.nan), rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(result.std, masked.std(axis=0).filled(np.nan), rtol=1e-10, equal_nan=True)
    np.testing.assert_array_equal(result.firing_rate, (values > 0).mean(axis=0))
    np.testing.assert_array_equal(result.finite, finite.sum(axis=0))
    assert np.isnan(result.mean[7]) and result.dead[7]


def test_merge_of_halves_equals_the_whole_and_state_round_trip() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(500, 6)).astype(np.float32) * 10 + 100  # a large mean: Chan's update matters
    values[7, 2] = -np.inf
    batches = [values[i : i + 32] for i in range(0, 500, 32)]  # 16 blocks, the last one short
    whole, first, second = RunningMoments(6), RunningMoments(6), RunningMoments(6)
    for block, batch in enumerate(batches):
        whole.add(batch)
        (first if block < 5 else second).add(batch, block=block)  # a shard boundary inside the tree
    buffer = io.BytesIO()
    torch.save(second.state_dict(), buffer)
    buffer.seek(0)
    restored = RunningMoments(6)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    first.merge(restored)
    a, b = first.result(), whole.result()
    assert a.images == b.images == 500
    # The same tree whatever the split: equal to the last bit, not only to rounding.
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.std, b.std)
    np.testing.assert_array_equal(a.firing_rate, b.firing_rate)
    finite = np.ma.masked_array(values.astype(np.float64), ~np.isfinite(values))
    np.testing.assert_allclose(b.mean, finite.mean(axis=0).filled(np.nan), rtol=1e-13)
    np.testing.assert_allclose(b.std, finite.std(axis=0).filled(np.nan), rtol=1e-10)


def test_a_block_added_twice_is_refused() -> None:
    first, second = RunningMoments(2), RunningMoments(2)
    first.add(np.ones((3, 2)))
    second.add(np.ones((3, 2)))  # also block 0
    with pytest.raises(ConvscopeError, match="added twice"):
        first.merge(second)


def test_before_any_image_and_read_only_results() -> None:
    result = RunningMoments(2).result()
    assert result.images == 0 and np.isnan(result.firing_rate).all() and np.isnan(result.mean).all()
    assert not result.dead.any() and not result.always_on.any()
    with pytest.raises(ValueError):
        result.mean[0] = 1.0


def test_bad_input() -> None:
    with pytest.raises(ConvscopeError, match=r"expected \(N, 2\)"):
        RunningMoments(2).add(np.zeros((3, 4)))
    with pytest.raises(ConvscopeError, match="units"):
        RunningMoments(2).merge(RunningMoments(3))
    with pytest.raises(ConvscopeError, match="expected 3"):
        RunningMoments(3).load_state_dict(RunningMoments(2).state_dict())
