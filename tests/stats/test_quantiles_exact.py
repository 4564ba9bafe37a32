"""RunningQuantiles in the exact regime (images <= budget): np.quantile and np.histogram, value for value."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from convscope.errors import ConvscopeError
from convscope.stats import RunningQuantiles

QS = np.array([0.0, 0.001, 0.01, 0.1, 0.25, 0.333, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0])


def _values(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 7)`` float32: normal, heavy tails, post-ReLU ties at 0, constant, negative, NaN/inf, all -inf."""
    rng = np.random.default_rng(seed)
    with_gaps = rng.exponential(size=n)
    with_gaps[rng.random(n) < 0.1] = np.nan
    with_gaps[rng.random(n) < 0.05] = np.inf
    with_gaps[rng.random(n) < 0.05] = -np.inf
    columns = [
        rng.normal(size=n),
        rng.standard_t(1.2, size=n),
        np.maximum(rng.normal(-0.5, 1.0, size=n), 0.0),
        np.full(n, 2.5),
        -rng.gamma(2.0, size=n),
        with_gaps,
        np.full(n, -np.inf),
    ]
    return np.stack(columns, axis=1).astype(np.float32)


def _fill(values: np.ndarray, batch: int = 64, **kwargs) -> RunningQuantiles:
    stats = RunningQuantiles(values.shape[1], **kwargs)
    for start in range(0, len(values), batch):
        stats.add(values[start : start + batch])
    return stats


def _finite(column: np.ndarray) -> np.ndarray:
    return column[np.isfinite(column)].astype(np.float64)


def test_quantiles_equal_np_quantile_on_the_finite_values() -> None:
    values = _values(3000)
    stats = _fill(values)
    assert stats.exact and stats.count == 3000
    got = stats.quantiles(QS)
    assert got.shape == (7, len(QS)) and got.dtype == np.float64
    for unit in range(6):
        np.testing.assert_allclose(got[unit], np.quantile(_finite(values[:, unit]), QS), rtol=1e-12, atol=0)
    assert np.isnan(got[6]).all()  # no finite value at all


def test_histogram_equals_np_histogram() -> None:
    values = _values(2500, seed=1)
    stats = _fill(values, batch=100)
    for bins in (1, 7, 32):
        edges, counts = stats.histogram(bins)
        assert edges.shape == (7, bins + 1) and counts.shape == (7, bins) and counts.dtype == np.int64
        for unit in range(6):
            want_counts, want_edges = np.histogram(_finite(values[:, unit]), bins=bins)
            np.testing.assert_array_equal(counts[unit], want_counts)
            np.testing.assert_array_equal(edges[unit], want_edges)
        assert np.isnan(edges[6]).all() and (counts[6] == 0).all()
    # the constant unit: numpy's +-0.5 range, every value in the middle bin
    edges, counts = stats.histogram(3)
    np.testing.assert_array_equal(edges[3], [2.0, 2 + 1 / 3, 2 + 2 / 3, 3.0])
    assert counts[3].tolist() == [0, 2500, 0]


def test_values_on_bin_edges_follow_numpy() -> None:
    # integers on 0.25-wide bins: many values sit exactly on edges, and the last edge is closed
    values = np.repeat(np.arange(9, dtype=np.float32)[:, None], 3, axis=1) / 4
    stats = _fill(values, batch=4)
    edges, counts = stats.histogram(4)
    want, _ = np.histogram(values[:, 0].astype(np.float64), bins=4)
    assert counts.tolist() == [want.tolist()] * 3 == [[2, 2, 2, 3]] * 3
    # -5 .. 17 in 22 bins: (10 + 5) / 22 * 22 truncates to 14, and numpy moves 10.0 up to bin 15
    values = np.arange(-5, 18, dtype=np.float32)[:, None]
    stats = _fill(values)
    want, _ = np.histogram(values[:, 0].astype(np.float64), bins=22)
    assert stats.histogram(22)[1][0].tolist() == want.tolist() and want[15] == 1 and want[-1] == 2


def test_non_finite_values_are_counted_and_left_out() -> None:
    stats = RunningQuantiles(units=3)
    nan, inf = float("nan"), float("inf")
    stats.add(torch.tensor([[1.0, nan, -inf], [3.0, inf, -inf], [2.0, 5.0, -inf]]))
    assert stats.nonfinite.tolist() == [0, 2, 3]
    assert stats.minimum.tolist()[:2] == [1.0, 5.0] and np.isnan(stats.minimum[2])
    assert stats.maximum.tolist()[:2] == [3.0, 5.0] and np.isnan(stats.maximum[2])
    got = stats.quantiles([0.0, 0.5, 1.0])
    assert got[:2].tolist() == [[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]
    assert np.isnan(got[2]).all()


def test_torch_and_numpy_inputs_give_the_same_result() -> None:
    values = _values(500, seed=2)
    from_numpy = _fill(values)
    from_torch = RunningQuantiles(7)
    for start in range(0, 500, 64):
        from_torch.add(torch.from_numpy(values[start : start + 64]).double())
    np.testing.assert_array_equal(from_numpy.quantiles(QS), from_torch.quantiles(QS))


def test_exact_up_to_the_budget_then_a_sketch() -> None:
    values = _values(257, seed=3)[:, :3]
    stats = _fill(values[:256], batch=10, budget=256)
    assert stats.exact
    np.testing.assert_allclose(stats.quantiles(QS)[0], np.quantile(_finite(values[:256, 0]), QS), rtol=1e-12)
    stats.add(values[256:])
    assert not stats.exact and stats.count == 257


def test_one_huge_batch_equals_many_small_ones_in_the_exact_regime() -> None:
    values = _values(4000, seed=4)
    np.testing.assert_array_equal(_fill(values, batch=4000).quantiles(QS), _fill(values, batch=37).quantiles(QS))


def test_merge_of_two_halves_equals_the_whole() -> None:
    values = _values(3001, seed=5)
    first, second = _fill(values[:1500]), _fill(values[1500:], batch=50)
    first.merge(second)
    whole = _fill(values)
    assert first.count == 3001 and first.exact
    np.testing.assert_array_equal(first.quantiles(QS), whole.quantiles(QS))
    np.testing.assert_array_equal(first.histogram(16)[1], whole.histogram(16)[1])
    np.testing.assert_array_equal(first.nonfinite, whole.nonfinite)
    assert second.count == 1501  # the other sketch is unchanged


def test_state_dict_round_trip_through_torch_save(tmp_path) -> None:
    values = _values(1200, seed=6)
    stats = _fill(values[:700])
    buffer = io.BytesIO()
    torch.save(stats.state_dict(), buffer)
    buffer.seek(0)
    restored = RunningQuantiles(7)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for sketch in (stats, restored):
        sketch.add(values[700:])
    np.testing.assert_array_equal(restored.quantiles(QS), stats.quantiles(QS))
    assert restored.count == 1200 and restored.nonfinite.tolist() == stats.nonfinite.tolist()


def test_bad_input_raises_convscope_errors() -> None:
    stats = RunningQuantiles(3)
    with pytest.raises(ConvscopeError, match=r"expected \(N, 3\)"):
        stats.add(np.zeros((4, 2)))
    with pytest.raises(ConvscopeError, match="one value per image"):
        stats.add(np.zeros(3))
    with pytest.raises(ConvscopeError, match=r"\[0, 1\]"):
        stats.quantiles([0.5, 1.5])
    with pytest.raises(ConvscopeError, match="budget"):
        RunningQuantiles(3, budget=10)
    with pytest.raises(ConvscopeError, match="units"):
        RunningQuantiles(0)
    with pytest.raises(ConvscopeError, match="bins"):
        stats.histogram(0)
    with pytest.raises(ConvscopeError, match="same budget"):
        stats.merge(RunningQuantiles(3, budget=128))
    with pytest.raises(ConvscopeError, match="expected 4 units"):
        RunningQuantiles(4).load_state_dict(stats.state_dict())


def test_no_image_yet() -> None:
    stats = RunningQuantiles(2)
    assert stats.count == 0 and np.isnan(stats.quantiles([0.5])).all()
    edges, counts = stats.histogram(4)
    assert np.isnan(edges).all() and (counts == 0).all()
    stats.add(np.zeros((0, 2)))
    assert stats.count == 0


def test_result_gathers_the_queries_read_only() -> None:
    values = _values(300, seed=7)
    stats = _fill(values)
    result = stats.result(qs=QS, bins=5)
    assert result.images == 300 and result.exact
    np.testing.assert_array_equal(result.quantiles, stats.quantiles(QS))
    np.testing.assert_array_equal(result.counts, stats.histogram(5)[1])
    np.testing.assert_array_equal(result.edges, stats.histogram(5)[0])
    np.testing.assert_array_equal(result.nonfinite, (~np.isfinite(values)).sum(axis=0))
    np.testing.assert_array_equal(result.qs, QS)
    assert result.maximum[0] == values[:, 0].max() and np.isnan(result.minimum[6])
    with pytest.raises(ValueError):
        result.quantiles[0, 0] = 0.0
