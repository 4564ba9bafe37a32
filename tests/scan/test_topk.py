"""RunningTopK against brute force over all values."""

import pytest
import torch

from convscope.scan.topk import RunningTopK


def brute_force(values: torch.Tensor, k: int) -> tuple[list[list[float]], list[list[int]]]:
    """Top k per column of (N, units), ties to the lower image index, by sorting in Python."""
    out_v, out_i = [], []
    for unit in range(values.shape[1]):
        pairs = sorted(((-float(values[i, unit]), i) for i in range(values.shape[0])))[:k]
        out_v.append([-v for v, _ in pairs])
        out_i.append([i for _, i in pairs])
    return out_v, out_i


@pytest.mark.parametrize("batch", [1, 3, 7, 50])
def test_matches_brute_force_whatever_the_batching(batch):
    g = torch.Generator().manual_seed(0)
    values = torch.randn(50, 6, generator=g)
    # Plenty of ties: round to one decimal.
    values = (values * 3).round() / 3
    topk = RunningTopK(units=6, k=5)
    for start in range(0, 50, batch):
        v = values[start : start + batch]
        topk.add(v, torch.arange(start, start + len(v)), torch.zeros_like(v, dtype=torch.long))
    expected_v, expected_i = brute_force(values, 5)
    result = topk.result()
    assert result.values.tolist() == expected_v
    assert result.images.tolist() == expected_i


def test_matches_torch_topk_values():
    g = torch.Generator().manual_seed(1)
    values = torch.randn(200, 4, generator=g)
    topk = RunningTopK(units=4, k=9)
    for start in range(0, 200, 32):
        v = values[start : start + 32]
        topk.add(v, torch.arange(start, start + len(v)), torch.zeros_like(v, dtype=torch.long))
    expected = torch.topk(values.t(), 9, dim=1)
    assert torch.equal(topk.result().values, expected.values)
    assert torch.equal(topk.result().images, expected.indices)


def test_positions_travel_with_their_values():
    topk = RunningTopK(units=1, k=2)
    topk.add(torch.tensor([[1.0], [5.0], [3.0]]), torch.tensor([0, 1, 2]), torch.tensor([[10], [11], [12]]))
    assert topk.result().positions.tolist() == [[11, 12]]


def test_fewer_images_than_k_leaves_empty_slots():
    topk = RunningTopK(units=2, k=4)
    topk.add(torch.tensor([[1.0, 2.0]]), torch.tensor([7]), torch.zeros(1, 2, dtype=torch.long))
    result = topk.result()
    assert result.images.tolist() == [[7, -1, -1, -1], [7, -1, -1, -1]]
    assert torch.isinf(result.values[:, 1:]).all()


def test_nan_never_ranks_above_a_number():
    topk = RunningTopK(units=1, k=1)
    topk.add(torch.tensor([[float("nan")], [-100.0]]), torch.tensor([0, 1]), torch.zeros(2, 1, dtype=torch.long))
    assert topk.result().images.tolist() == [[1]]


def test_state_dict_round_trip_resumes_identically():
    g = torch.Generator().manual_seed(2)
    values = torch.randn(40, 3, generator=g)
    whole = RunningTopK(3, 4)
    first = RunningTopK(3, 4)
    for start in range(0, 40, 8):
        v = values[start : start + 8]
        args = (v, torch.arange(start, start + 8), torch.zeros_like(v, dtype=torch.long))
        whole.add(*args)
        if start < 24:
            first.add(*args)
    resumed = RunningTopK(3, 4)
    resumed.load_state_dict(first.state_dict())
    for start in range(24, 40, 8):
        v = values[start : start + 8]
        resumed.add(v, torch.arange(start, start + 8), torch.zeros_like(v, dtype=torch.long))
    assert torch.equal(resumed.result().images, whole.result().images)
    with pytest.raises(ValueError):
        RunningTopK(2, 4).load_state_dict(first.state_dict())
