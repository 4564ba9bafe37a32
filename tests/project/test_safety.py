"""No hook or mode survives; modes restored; other activations warn once per module; bad input errors."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from convscope.errors import ConvscopeError, LayerError, ModelError
from convscope.project import ProjectionRuleWarning, project_hits

from project_helpers import no_hooks_left, tiny_pool_net


class Boom(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_no_hook_survives_success_and_modes_are_restored() -> None:
    model = tiny_pool_net(inplace=True).train()
    model[3].eval()
    project_hits(model, "6", torch.randn(2, 3, 16, 16), [0, 1], [0, 1], [1, 0], "guided")
    assert no_hooks_left(model)
    assert [m.training for m in model.modules()] == [True, True, True, True, False, True, True, True]


@pytest.mark.parametrize("bad", ["unit", "boom"])
def test_no_hook_survives_an_exception(bad: str) -> None:
    model = tiny_pool_net()
    if bad == "boom":
        model[2] = Boom()
    with pytest.raises((LayerError, RuntimeError)):
        project_hits(model, "6", torch.randn(1, 3, 16, 16), [99 if bad == "unit" else 0], [0], [0], "deconvnet")
    assert no_hooks_left(model)
    assert model.training


class MixedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.GELU()
        self.head = nn.Conv2d(4, 4, 3)
        self.late = nn.SiLU()  # after the layer: never runs, never warns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.leaky_relu(self.act(self.conv(x)))
        return self.late(self.head(x))


def test_other_activations_warn_once_per_module() -> None:
    model = MixedNet()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        project_hits(model, "head", torch.randn(3, 3, 8, 8), [0, 1, 2], [0, 1, 2], [0, 1, 2], "deconvnet", batch_size=1)
    messages = [str(w.message) for w in caught if issubclass(w.category, ProjectionRuleWarning)]
    assert len(messages) == 2
    assert "'act'" in messages[0] and "gelu" in messages[0]
    assert "'<model>'" in messages[1] and "leaky_relu" in messages[1]
    assert no_hooks_left(model)


def test_relu_nets_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProjectionRuleWarning)
        project_hits(tiny_pool_net(), "6", torch.randn(1, 3, 16, 16), [0], [0], [0], "guided")


def test_user_errors() -> None:
    model = tiny_pool_net()
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ConvscopeError, match="unknown projection rule"):
        project_hits(model, "6", x, [0], [0], [0], "saliency")  # type: ignore[arg-type]
    with pytest.raises(LayerError, match="no layer named"):
        project_hits(model, "9", x, [0], [0], [0], "guided")
    with pytest.raises(LayerError, match="row is out of range"):
        project_hits(model, "6", x, [0], [4], [0], "guided")
    with pytest.raises(ConvscopeError, match="do not match"):
        project_hits(model, "6", x, [0, 1], [0], [0], "guided")
    with pytest.raises(ModelError, match="TorchScript"):
        project_hits(torch.jit.script(model), "6", x, [0], [0], [0], "guided")
