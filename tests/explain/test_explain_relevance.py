"""Gradient x activation against a plain autograd loop; hand-built nets with known answers; conservation."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from convscope.explain import class_gradients, conditional_heatmaps
from helpers import hook_count, plain_heatmap, plain_relevance, small_net

RTOL = 1e-5


def close(found: torch.Tensor, expected: torch.Tensor) -> None:
    scale = expected.abs().max().clamp_min(1e-12)
    assert ((found - expected).abs().max() / scale) < RTOL, (found, expected)


def test_small_net_equals_plain_autograd_for_every_class():
    model, x = small_net(), torch.rand(1, 3, 12, 12)
    layers = ["0", "2", "4", "7"]  # "0" is followed by an in-place ReLU
    for target in range(5):
        found = class_gradients(model, x, layers, target)
        expected = plain_relevance(model, x, layers, target)
        for name in layers:
            close(found.layers[name].relevance, expected[name])
    assert hook_count(model) == 0


def test_squeezenet_random_weights_equal_plain_autograd():
    torch.manual_seed(0)
    model = torchvision.models.squeezenet1_0().eval()
    x = torch.randn(1, 3, 96, 96)
    layers = ["features.0", "features.3", "features.7", "features.12", "classifier"]
    found = class_gradients(model, x, layers)
    expected = plain_relevance(model, x, layers, found.target)
    assert found.target == int(model(x).argmax())
    for name in layers:
        close(found.layers[name].relevance, expected[name])
    # the classifier's output is the logits: all relevance on the target, equal to its logit
    assert found.layers["classifier"].relevance[found.target] == pytest.approx(float(found.logits[found.target]), rel=1e-6)


@pytest.mark.parametrize("method, rel", [("gradient", 1e-6), ("lrp", 1e-5)])
def test_one_unit_read_by_the_logit_gets_all_relevance(method, rel):
    torch.manual_seed(0)
    head = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        head.weight.zero_()
        head.weight[1, 2] = 5.0
        head.weight[0, 0] = 1.0
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()
    with torch.no_grad():
        model[0].bias.fill_(0.5)  # every unit fires: unit 2 has a positive activation to carry relevance
    x = torch.rand(1, 3, 10, 10) + 0.5
    found = class_gradients(model, x, ["1"], target=1, method=method)
    relevance, shares = found.layers["1"].relevance, found.layers["1"].shares
    assert relevance[[0, 1, 3]].abs().max() == 0
    assert float(shares[2]) == 1.0
    # the logit is linear in the layer without bias: all of it is unit 2's relevance
    assert float(relevance[2]) == pytest.approx(float(found.logits[1]), rel=rel)


def test_conservation_on_a_bias_free_relu_net():
    """Piecewise linear, no biases: every layer's relevances add up to the logit, and each unit's
    conditional heatmap adds up to its relevance."""
    model, x = small_net(bias=False), torch.rand(1, 3, 12, 12)
    found = class_gradients(model, x, ["0", "3", "4"], target=2)
    logit = float(found.logits[2])
    for name in ("0", "3", "4"):
        assert float(found.layers[name].relevance.sum()) == pytest.approx(logit, rel=1e-5)
    grad = found.layers["3"]
    units = list(range(8))
    heat = conditional_heatmaps(model, x, "3", grad.gradient, units)
    for unit in units:
        assert float(heat[unit].double().sum()) == pytest.approx(float(grad.relevance[unit]), rel=1e-4, abs=1e-6)


def test_heatmaps_add_up_to_the_layer_heatmap_and_one_equals_autograd():
    model, x = small_net(), torch.rand(1, 3, 12, 12)
    found = class_gradients(model, x, ["3"], target=4)
    g = found.layers["3"].gradient
    heat = conditional_heatmaps(model, x, "3", g, list(range(8)))
    whole = plain_heatmap(model, x, "3", g)  # all channels at once
    close(heat.double().sum(dim=0), whole.double())
    mask = torch.zeros_like(g)
    mask[5] = g[5]
    close(heat[5].double(), plain_heatmap(model, x, "3", mask).double())
    assert hook_count(model) == 0


def test_heatmap_of_a_layer_followed_by_an_in_place_relu():
    """Layer "0" is changed in place by the next ReLU: the heatmap is of its own (pre-ReLU) output."""
    model, x = small_net(), torch.rand(1, 3, 12, 12)
    g = class_gradients(model, x, ["0"], target=0).layers["0"].gradient
    heat = conditional_heatmaps(model, x, "0", g, [3])
    mask = torch.zeros_like(g)
    mask[3] = g[3]
    close(heat[0].double(), plain_heatmap(model, x, "0", mask).double())


def test_hooks_removed_after_an_exception():
    model = small_net()
    with pytest.raises(Exception):
        class_gradients(model, torch.rand(1, 3, 12, 12), ["0"], target=99)
    assert hook_count(model) == 0
    assert all(p.requires_grad for p in model.parameters())


def test_output_layer_is_found_and_its_heatmap_needs_no_pass():
    """The layer whose output the logits are (a view: SqueezeNet's classifier, flattened; a last
    Linear) is named; the heatmap explain() draws for it from the input gradient equals a direct
    autograd of that unit and conditional_heatmaps."""
    from convscope import explain, load_network

    model, x = small_net(), torch.rand(1, 3, 12, 12)
    assert class_gradients(model, x, ["3", "7"], 1).output_layer == "7"
    assert class_gradients(model, x, ["3"], 1).output_layer is None
    torch.manual_seed(0)
    net = load_network("torchvision:squeezenet1_0")
    image = (torch.rand(224, 224, 3) * 255).to(torch.uint8).numpy()
    result = explain(net, image, layers=["features.12", "classifier"], top=3)
    x = net.model_input(torch.from_numpy(result.image).permute(2, 0, 1)[None])
    found = class_gradients(net.model, x, ["features.12", "classifier"])
    assert found.output_layer == "classifier" and found.target == result.target
    (unit,) = result.layer("classifier").units
    assert unit.unit == result.target
    g = found.layers["classifier"].gradient
    close(unit.heatmap.double(), plain_heatmap(net.model, x, "classifier", g).double())
    close(unit.heatmap.double(), conditional_heatmaps(net.model, x, "classifier", g, [unit.unit])[0].double())
    assert hook_count(net.model) == 0
