"""``--layers`` patterns: shell globs over dotted names and ``type:CLASS``, expanded in forward order."""

from __future__ import annotations

import pytest
import torchvision
from torch import nn

from convscope.errors import LayerError
from convscope.network.layers import select_layers
from tiny_models import fire_net, tiny_alexnet


def names(model: nn.Module, requested: list[str], size: int = 32) -> list[str]:
    return [info.name for info in select_layers(model, requested, (size, size))]


def test_globs_and_types_expand_in_forward_order():
    model = tiny_alexnet()
    assert names(model, ["features.*"]) == ["features.0", "features.1", "features.2", "features.3", "features.4"]
    assert names(model, ["type:Conv2d"]) == ["features.0", "features.3"]
    assert names(model, ["type:ReLU", "features.0"]) == ["features.1", "features.4", "features.0"]
    assert names(model, ["features.[03]", "features.0"]) == ["features.0", "features.3"]  # repeats dropped


def test_type_conv2d_is_every_conv_that_runs():
    model = fire_net()
    assert names(model, ["type:Conv2d"], 12) == ["fire.squeeze", "fire.expand1x1", "fire.expand3x3"]  # not `unused`


def test_a_pattern_that_matches_nothing_is_one_clear_error():
    with pytest.raises(LayerError, match="no layer that can be scanned matches 'layer9.*'"):
        names(tiny_alexnet(), ["layer9.*"])
    with pytest.raises(LayerError, match="type:CLASS"):
        names(tiny_alexnet(), ["type:LSTM"])


def test_patterns_leave_out_layers_that_cannot_be_scanned():
    """A BasicBlock's ``relu`` runs twice per forward: named it is refused, matched it is left out."""
    model = torchvision.models.resnet18()
    assert names(model, ["layer1.0.*"], 64) == ["layer1.0.conv1", "layer1.0.bn1", "layer1.0.conv2", "layer1.0.bn2"]
    assert names(model, ["type:ReLU"], 64) == ["relu"]  # the stem's runs once; every block's twice
    with pytest.raises(LayerError, match="runs 2 times"):
        names(model, ["layer1.0.relu"], 64)
