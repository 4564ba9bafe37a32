"""Reverse lookup against a brute force over every unit and position."""

from __future__ import annotations

import torch
import torchvision

from convscope.explain import region_units
from convscope.network.geometry import Box
from convscope.network.layers import select_layers


def brute_force(act: torch.Tensor, fields, region: Box) -> dict[int, float]:
    found = {}
    for unit in range(act.shape[0]):
        field = fields.field(unit)
        best = None
        for row in range(act.shape[1]):
            for col in range(act.shape[2]):
                box = field.box(row, col)
                if box.top <= region.top and box.left <= region.left and box.bottom >= region.bottom and box.right >= region.right:
                    value = float(act[unit, row, col])
                    best = value if best is None else max(best, value)
        if best is not None:
            found[unit] = best
    return found


def test_squeezenet_region_lookup_equals_brute_force():
    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_0().eval()
    size = (112, 112)
    infos = {i.name: i for i in select_layers(model, ["features.3", "features.7", "features.12"], size)}
    outputs = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o.detach().clone())) for n in infos]
    with torch.no_grad():
        model(torch.randn(1, 3, *size))
    for h in handles:
        h.remove()
    for region in (Box(40, 50, 52, 60), Box(0, 0, 5, 5), Box(30, 10, 90, 100), Box(100, 100, 112, 112)):
        for name, info in infos.items():
            act = outputs[name][0]
            expected = brute_force(act, info.fields, region)
            found = region_units(act, info.fields, region)
            assert {u.unit: u.activation for u in found} == expected, (name, region)
            assert [u.activation for u in found] == sorted(expected.values(), reverse=True)
            for u in found:  # the position named covers the region and holds the value
                assert u.box == info.fields.field(u.unit).box(u.row, u.col)
                assert u.box.top <= region.top and u.box.bottom >= region.bottom
                assert u.box.left <= region.left and u.box.right >= region.right
                assert float(act[u.unit, u.row, u.col]) == u.activation
