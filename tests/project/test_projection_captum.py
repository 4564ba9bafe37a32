"""project_hits against Captum's Deconvolution and GuidedBackprop on the same single activation."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from convscope.project import project_hits

from oracles import need_module
from project_helpers import FunctionalNet, SingleActivation, tiny_pool_net

captum_attr = need_module("captum.attr")
CAPTUM = {"deconvnet": captum_attr.Deconvolution, "guided": captum_attr.GuidedBackprop}


def _captum(model: nn.Module, layer: str, x: torch.Tensor, hits: list[tuple[int, int, int]], rule: str) -> torch.Tensor:
    pictures = []
    for i, (unit, row, col) in enumerate(hits):
        method = CAPTUM[rule](SingleActivation(model, layer, unit, row, col))
        pictures.append(method.attribute(x[i : i + 1].clone()))
    return torch.cat(pictures)


def _assert_close(mine: torch.Tensor, theirs: torch.Tensor) -> None:
    scale = float(theirs.abs().max())
    assert scale > 0
    assert float((mine - theirs).abs().max()) <= 1e-5 * scale


def _hits(n: int, units: int, size: int, generator: torch.Generator) -> list[tuple[int, int, int]]:
    """``n`` random (unit, row, col) for a layer of ``units`` channels and ``size x size`` positions."""
    u = torch.randint(0, units, (n,), generator=generator).tolist()
    r = torch.randint(0, size, (n,), generator=generator).tolist()
    c = torch.randint(0, size, (n,), generator=generator).tolist()
    return list(zip(u, r, c))


def _project(model: nn.Module, layer: str, x: torch.Tensor, hits: list, rule: str) -> torch.Tensor:
    units, rows, cols = (torch.tensor(v) for v in zip(*hits))
    return project_hits(model, layer, x, units, rows, cols, rule, batch_size=3)


@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
@pytest.mark.parametrize(("layer", "units", "size"), [("2", 4, 8), ("4", 6, 8), ("6", 5, 4)])
@pytest.mark.parametrize("inplace", [False, True])
def test_tiny_pool_net_matches_captum(rule: str, layer: str, units: int, size: int, inplace: bool) -> None:
    g = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    model = tiny_pool_net(inplace=inplace).eval()
    x = torch.randn(7, 3, 16, 16, generator=g)
    hits = _hits(7, units, size, g)
    twin = tiny_pool_net().eval()
    twin.load_state_dict(model.state_dict())  # Captum on the out-of-place twin: same function
    _assert_close(_project(model, layer, x, hits, rule), _captum(twin, layer, x, hits, rule))


@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
@pytest.mark.parametrize("how", ["F.relu", "F.relu(inplace)", "torch.relu", "Tensor.relu_"])
def test_functional_relus_are_changed_too(rule: str, how: str) -> None:
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(0)
    model = FunctionalNet(how).eval()
    x = torch.randn(5, 3, 16, 16, generator=g)
    hits = _hits(5, 5, 4, g)
    # Captum cannot see functional ReLUs: compare with it on the module-ReLU twin.
    _assert_close(_project(model, "c3", x, hits, rule), _captum(model.as_sequential().eval(), "6", x, hits, rule))


@pytest.mark.slow
@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
def test_alexnet_matches_captum(rule: str) -> None:
    g = torch.Generator().manual_seed(3)
    torch.manual_seed(0)
    model = torchvision.models.alexnet().eval()
    x = torch.randn(3, 3, 224, 224, generator=g)
    for layer, units, size in (("features.0", 64, 55), ("features.8", 256, 13)):
        hits = _hits(3, units, size, g)
        _assert_close(_project(model, layer, x, hits, rule), _captum(model, layer, x, hits, rule))
