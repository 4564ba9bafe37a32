"""Projections worked out by hand on one-channel nets, for both rules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.project import project_hits


def _conv(kernel: list[list[float]]) -> nn.Conv2d:
    conv = nn.Conv2d(1, 1, len(kernel), bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(kernel).reshape(conv.weight.shape))
    return conv


@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
def test_max_pool_routes_through_the_switch(rule: str) -> None:
    # conv K=[[1,-1],[0,2]] of X gives [[1,0],[-1,4]]; relu [[1,0],[0,4]]; the pool picks (1,1).
    # Seed 1 there; the relu input 4 > 0, so both rules pass 1; the transposed conv puts K at (1,1).
    model = nn.Sequential(_conv([[1.0, -1.0], [0.0, 2.0]]), nn.ReLU(), nn.MaxPool2d(2))
    x = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, -1.0], [3.0, 0.0, 1.0]]).reshape(1, 1, 3, 3)
    p = project_hits(model, "2", x, [0], [0], [0], rule)
    expected = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, -1.0], [0.0, 0.0, 2.0]])
    assert torch.equal(p[0, 0], expected)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        # backward signal at the relu output is K=[[1,-1],[2,3]]; the relu input is X=[[1,2],[-3,4]]
        ("deconvnet", [[1.0, 0.0], [2.0, 3.0]]),  # relu(K): the sign of X is ignored
        ("guided", [[1.0, 0.0], [0.0, 3.0]]),  # relu(K) * (X > 0)
    ],
)
def test_the_rules_differ_where_the_forward_input_is_negative(rule: str, expected: list) -> None:
    model = nn.Sequential(_conv([[1.0]]), nn.ReLU(), _conv([[1.0, -1.0], [2.0, 3.0]]))
    x = torch.tensor([[1.0, 2.0], [-3.0, 4.0]]).reshape(1, 1, 2, 2)
    p = project_hits(model, "2", x, [0], [0], [0], rule)
    assert torch.equal(p[0, 0], torch.tensor(expected))
    plain = torch.tensor([[1.0, -1.0], [0.0, 3.0]])  # the ordinary gradient differs from both
    assert not torch.equal(p[0, 0], plain)


def test_each_hit_is_seeded_at_its_own_position() -> None:
    # Identity 1x1 conv then a 2x2 conv; hit (row, col) sees input [row:row+2, col:col+2].
    model = nn.Sequential(_conv([[1.0]]), nn.ReLU(), _conv([[1.0, 2.0], [3.0, 4.0]]))
    x = torch.ones(2, 1, 3, 3)
    p = project_hits(model, "2", x, [0, 0], [0, 1], [1, 0], "deconvnet", batch_size=2)
    assert torch.equal(p[0, 0], torch.tensor([[0.0, 1.0, 2.0], [0.0, 3.0, 4.0], [0.0, 0.0, 0.0]]))
    assert torch.equal(p[1, 0], torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [3.0, 4.0, 0.0]]))


def test_redirected_rule_by_hand():
    """Plain ReLU gradient for a sample that has one; for a sample stuck at zero, the part that raises its input."""
    from convscope.project.rules import modified_relus

    x = torch.tensor([[-1.0, -2.0], [-1.0, 3.0]], requires_grad=True)  # sample 0 all negative, sample 1 not
    relu = torch.nn.ReLU()
    weights = torch.tensor([[-1.0, 1.0], [-1.0, -1.0]])  # d(loss)/d(out): negative raises, positive lowers
    with modified_relus(relu, "redirected"):
        (g,) = torch.autograd.grad((relu(x) * weights).sum(), x)
    # sample 0: stuck; the -1 (raise x[0,0]) passes, the +1 (lower an already negative x[0,1]) does not
    # sample 1: the plain gradient, zero where the input is negative
    assert g.tolist() == [[-1.0, 0.0], [0.0, -1.0]]
