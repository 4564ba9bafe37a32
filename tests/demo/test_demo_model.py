"""TinyAlexNet: torchvision-style layer names, the documented shapes, seeded initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convscope.demo.model import CONV_LAYERS, TinyAlexNet


def test_conv_layers_are_named_like_torchvision_alexnet() -> None:
    model = TinyAlexNet(num_classes=5)
    convs = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    assert convs == list(CONV_LAYERS) == ["features.0", "features.3", "features.6", "features.8", "features.10"]
    pools = [name for name, module in model.named_modules() if isinstance(module, nn.MaxPool2d)]
    assert pools == ["features.2", "features.5", "features.12"]
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 5 and not any(m.inplace for m in relus)


def test_shapes_match_the_docstring_table() -> None:
    model = TinyAlexNet(num_classes=7).eval()
    x = torch.zeros(2, 3, 96, 96)
    shapes = {}
    for index, layer in enumerate(model.features):
        x = layer(x)
        shapes[index] = tuple(x.shape[1:])
    # conv1: (96 - 7) // 2 + 1 = 45; pool: (45 - 3) // 2 + 1 = 22; pool: (22 - 3) // 2 + 1 = 10; pool: 4.
    assert shapes[0] == (48, 45, 45)
    assert shapes[2] == (48, 22, 22)
    assert shapes[3] == (96, 22, 22)
    assert shapes[5] == (96, 10, 10)
    assert shapes[6] == (128, 10, 10) and shapes[8] == (128, 10, 10)
    assert shapes[10] == (96, 10, 10)
    assert shapes[12] == (96, 4, 4)
    assert model(torch.zeros(2, 3, 96, 96)).shape == (2, 7)


def test_any_input_from_the_documented_minimum_works() -> None:
    model = TinyAlexNet(num_classes=3).eval()
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 3)
    # 35 -> conv1 15 -> pool 7 -> pool 3 -> pool 1; one pixel less leaves the last pool nothing.
    assert model.features(torch.zeros(1, 3, 35, 35)).shape[-2:] == (1, 1)
    with pytest.raises(RuntimeError):
        model.features(torch.zeros(1, 3, 34, 34))


def test_initialisation_follows_the_generator() -> None:
    a = TinyAlexNet(4, generator=torch.Generator().manual_seed(1)).state_dict()
    b = TinyAlexNet(4, generator=torch.Generator().manual_seed(1)).state_dict()
    c = TinyAlexNet(4, generator=torch.Generator().manual_seed(2)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.0.weight"], c["features.0.weight"])
    assert float(a["features.0.bias"].abs().sum()) == 0.0
