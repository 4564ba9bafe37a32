"""LRP epsilon-plus-flat: against zennit + zennit-crp on hand-built nets with every rule, conservation,
known answers, refusal of modules without a rule, and nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convscope import explain, load_network
from convscope.cli import main
from convscope.errors import ConvscopeError
from convscope.explain import LrpRuleError, class_gradients, conditional_heatmaps, lrp_rules
from convscope.explain.lrp import first_layer, stabilize
from helpers import crp_heatmaps, hook_count, zennit_lrp
from oracles import need_module
from tiny_models import tiny_alexnet, write_images

TOL = 1e-5  # relative to the largest magnitude; the rules are zennit's, the same float32 operations


def close(found: torch.Tensor, expected: torch.Tensor, tol: float = TOL) -> None:
    found, expected = found.double(), expected.double()
    scale = expected.abs().max().clamp_min(1e-12)
    assert float((found - expected).abs().max() / scale) < tol, (found, expected)


def zennit() -> None:
    need_module("zennit")
    need_module("crp")


def modes() -> int:
    return torch._C._len_torch_function_stack()


class Fire(nn.Module):
    """SqueezeNet's Fire: squeeze 1x1, two expands (1x1, 3x3) concatenated; in-place ReLUs."""

    def __init__(self, cin: int, squeeze: int, expand: int, bias: bool = True) -> None:
        super().__init__()
        self.squeeze, self.squeeze_relu = nn.Conv2d(cin, squeeze, 1, bias=bias), nn.ReLU(inplace=True)
        self.e1, self.e1_relu = nn.Conv2d(squeeze, expand, 1, bias=bias), nn.ReLU(inplace=True)
        self.e3, self.e3_relu = nn.Conv2d(squeeze, expand, 3, padding=1, bias=bias), nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_relu(self.squeeze(x))
        return torch.cat([self.e1_relu(self.e1(x)), self.e3_relu(self.e3(x))], 1)


def rule_net(bias: bool = True) -> nn.Sequential:
    """Every rule: Flat (0), ZPlus after a ReLU (3) and on negative inputs (4, after 3 without a
    ReLU), max-pool with ceil mode, Fire's cat, avg-pool (Norm), dropout, adaptive avg-pool, Epsilon."""
    torch.manual_seed(3)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=bias), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(6, 6, 3, padding=1, bias=bias), nn.Conv2d(6, 8, 1, bias=bias), nn.ReLU(),
        Fire(8, 4, 5, bias), nn.AvgPool2d(2, ceil_mode=True), nn.Dropout(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(10, 5, bias=bias),
    ).eval()


LAYERS = ["0", "3", "4", "6", "6.squeeze", "9", "11"]


def test_stabilize_is_zennits():
    core = need_module("zennit.core")
    for dtype in (torch.float32, torch.float64):
        z = torch.tensor([-2.0, -1e-7, -0.0, 0.0, 1e-7, 3.0, -1e-6], dtype=dtype)
        assert torch.equal(stabilize(z), core.stabilize(z))
    assert stabilize(torch.zeros(1)).item() == pytest.approx(1e-6)  # sign(0) counts as +1


def test_first_layer_is_zennits_first_linear_module():
    assert first_layer(rule_net()) == "0"
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU(), nn.Linear(4, 3))
    assert first_layer(mlp) == "1"
    assert first_layer(nn.Sequential(nn.ReLU())) is None


@pytest.mark.parametrize("target", [1, 3])
def test_relevances_and_input_relevance_equal_zennit(target):
    zennit()
    model, x = rule_net(), torch.randn(1, 3, 15, 15)
    found = class_gradients(model, x, LAYERS, target, method="lrp")
    expected, heatmap = zennit_lrp(model, x, LAYERS, target)
    for name in LAYERS:
        assert found.layers[name].method == "lrp"
        close(found.layers[name].relevance, expected[name])
    close(found.input_heatmap(x), heatmap)
    # the negative-input branch of ZPlus ran (layer 4 reads layer 3's signed output) and matters
    assert bool((found.layers["3"].activation < 0).any())
    assert hook_count(model) == 0 and modes() == 0


def test_conditional_heatmaps_equal_crp():
    zennit()
    model, x = rule_net(), torch.randn(1, 3, 15, 15)
    found = class_gradients(model, x, ["6", "3"], 2, method="lrp")
    for layer, units in (("6", [0, 4, 7, 9]), ("3", [5, 1])):
        heat = conditional_heatmaps(model, x, layer, found.layers[layer].gradient, units, method="lrp")
        expected = crp_heatmaps(model, x, layer, units, 2)
        assert heat.shape == expected.shape == (len(units), 15, 15)
        for h, e in zip(heat, expected):
            close(h, e, 1e-4)  # our heatmap pass runs in channels-last memory: other kernels' rounding
    assert hook_count(model) == 0 and modes() == 0


def test_a_linear_first_layer_gets_flat_and_hidden_linear_epsilon():
    zennit()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x = torch.randn(1, 3, 2, 2)
    found = class_gradients(model, x, ["1", "3", "5"], 0, method="lrp")
    expected, heatmap = zennit_lrp(model, x, ["1", "3", "5"], 0)
    for name in ("1", "3", "5"):
        close(found.layers[name].relevance, expected[name])
    close(found.input_heatmap(x), heatmap)


def test_conservation_without_biases():
    """Zero biases: every layer's relevances add up to the logit, and each unit's heatmap to its relevance."""
    model, x = rule_net(bias=False), torch.rand(1, 3, 15, 15) * 100  # a logit far above the stabiliser (1e-6)
    found = class_gradients(model, x, LAYERS, method="lrp")
    logit = float(found.logits[found.target])
    assert logit > 0.01
    for name in LAYERS:
        assert float(found.layers[name].relevance.sum()) == pytest.approx(logit, rel=1e-4)
    assert float(found.input_gradient.double().sum()) == pytest.approx(logit, rel=1e-4)
    grad = found.layers["6"]
    units = list(range(10))
    heat = conditional_heatmaps(model, x, "6", grad.gradient, units, method="lrp")
    for unit in units:
        assert float(heat[unit].double().sum()) == pytest.approx(float(grad.relevance[unit]), rel=1e-4, abs=1e-6)


class FunctionalRelus(nn.Module):
    """Convs whose ReLUs are F.relu, torch.relu_ and Tensor.relu; :meth:`as_modules` is the same net with nn.ReLU."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c, self.head = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 5, 3), nn.Conv2d(5, 6, 1), nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.a(x))
        x = torch.relu_(self.b(x))
        x = self.c(x).relu()
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def as_modules(self) -> nn.Sequential:
        return nn.Sequential(self.a, nn.ReLU(), self.b, nn.ReLU(inplace=True), self.c, nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), self.head).eval()


def test_functional_relus_get_the_pass_rule_too():
    functional = FunctionalRelus().eval()
    x = torch.randn(1, 3, 9, 9)
    a = class_gradients(functional.as_modules(), x, ["0", "2"], 1, method="lrp")
    b = class_gradients(functional, x, ["a", "b"], 1, method="lrp")
    close(b.layers["a"].relevance, a.layers["0"].relevance, 1e-6)
    close(b.layers["b"].relevance, a.layers["2"].relevance, 1e-6)
    close(b.input_gradient, a.input_gradient, 1e-6)
    # and a plain gradient would differ: the rules ran
    plain = class_gradients(functional, x, ["b"], 1)
    assert not torch.allclose(plain.input_gradient, b.input_gradient)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class MeanPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@pytest.mark.parametrize(("middle", "name", "what"), [
    (nn.BatchNorm2d(4), "body.1", "BatchNorm2d"),
    (nn.GELU(), "body.1", "GELU"),
    (Residual(), "body.1", "Residual"),
])
def test_a_module_without_a_rule_is_refused_by_name(middle, name, what):
    model = nn.Sequential()
    model.add_module("body", nn.Sequential(nn.Conv2d(3, 4, 3), middle, nn.ReLU()))
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", nn.Flatten())
    model.add_module("head", nn.Linear(4, 2))
    model.eval()
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(LrpRuleError, match=rf"module '{name}' \({what}\)") as caught:
        class_gradients(model, x, ["body.0"], method="lrp")
    assert "--method gradient" in str(caught.value)
    assert hook_count(model) == 0 and modes() == 0
    with pytest.raises(LrpRuleError):
        conditional_heatmaps(model, x, "body.2", torch.ones(4, 6, 6), [0], method="lrp")
    assert hook_count(model) == 0 and modes() == 0
    # gradient x activation works on it
    assert class_gradients(model, x, ["body.0"]).layers["body.0"].relevance.shape == (4,)


def test_a_functional_mean_is_refused_too():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), MeanPool(), nn.Linear(4, 2)).eval()
    with pytest.raises(LrpRuleError, match=r"mean in module '2' \(MeanPool\)"):
        class_gradients(model, torch.rand(1, 3, 8, 8), ["0"], method="lrp")


def test_nothing_survives_success_or_an_exception():
    model, x = rule_net(), torch.randn(1, 3, 15, 15)
    with lrp_rules(model):
        assert modes() == 1 and hook_count(model) > 0
        y = model(x.requires_grad_(True))
        torch.autograd.grad(y[0, 0], x)
    assert modes() == 0 and hook_count(model) == 0
    with pytest.raises(RuntimeError, match="boom"), lrp_rules(model):
        raise RuntimeError("boom")
    assert modes() == 0 and hook_count(model) == 0
    # after a forward stopped early (a heatmap pass), calls outside the model are not checked
    with lrp_rules(model):
        with pytest.raises(RuntimeError):
            model(torch.rand(1, 4, 15, 15))  # wrong channel count: the forward fails inside features
        assert float((torch.ones(2, requires_grad=True) * 2).sum().detach()) == 4.0  # not refused: outside the model
    assert modes() == 0 and hook_count(model) == 0


def test_a_model_with_parameters_needing_grad_is_given_back_as_it_was():
    model, x = rule_net(), torch.randn(1, 3, 15, 15)
    model.train()
    class_gradients(model, x, ["3"], method="lrp")
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_unknown_method_is_one_clear_error():
    with pytest.raises(ConvscopeError, match="unknown relevance method 'lpr'"):
        class_gradients(rule_net(), torch.rand(1, 3, 15, 15), ["0"], method="lpr")  # type: ignore[arg-type]


def test_explain_and_the_cli_take_the_method(tmp_path, capsys):
    write_images(tmp_path / "photos", 1, size=20)
    image = tmp_path / "photos" / "img000.png"
    weights = tmp_path / "tiny.pth"
    torch.save(tiny_alexnet().state_dict(), weights)
    tiny = str(Path(__file__).resolve().parents[1] / "tiny_models.py") + ":tiny_alexnet"
    net = load_network(tiny, weights)
    result = explain(net, image, layers=["features.0", "features.3"], top=3, method="lrp")
    assert result.method == "LRP epsilon-plus-flat"
    x = net.model_input(torch.from_numpy(result.image).permute(2, 0, 1)[None])
    found = class_gradients(net.model, x, ["features.3"], result.target, method="lrp")
    r = found.layers["features.3"].relevance
    units = result.layer("features.3").units
    assert [u.unit for u in units] == sorted((u for u in range(len(r)) if r[u] != 0), key=lambda u: (-float(r[u]), u))[:3]
    heat = conditional_heatmaps(net.model, x, "features.3", found.layers["features.3"].gradient, [u.unit for u in units], method="lrp")
    for u, h in zip(units, heat):
        assert u.relevance == pytest.approx(float(r[u.unit]), rel=1e-6)
        close(u.heatmap, h, 1e-6)
    out = tmp_path / "ex"
    assert main(["explain", tiny, str(image), "--weights", str(weights), "--method", "lrp", "--top", "2", "--out", str(out)]) == 0
    assert json.loads((out / "explanation.json").read_text())["method"] == "LRP epsilon-plus-flat"
    source = tmp_path / "bn.py"
    source.write_text("from torch import nn\n\ndef make():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), "
                      "nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))\n")
    none = tmp_path / "none"
    assert main(["explain", f"{source}:make", str(image), "--method", "lrp", "--layers", "0", "--out", str(none)]) == 1
    assert not none.exists()
    assert "module '1' (BatchNorm2d)" in capsys.readouterr().err


def test_batch_gradients_lrp_is_each_image_alone():
    from convscope.explain import batch_gradients

    model, x = rule_net(), torch.randn(3, 3, 15, 15)
    batch = batch_gradients(model, x, ["3", "6"], [1, -1, 4], method="lrp")
    for i in range(3):
        alone = class_gradients(model, x[i:i + 1], ["3", "6"], int(batch.targets[i]), method="lrp")
        for name in ("3", "6"):
            close(batch.relevance[name][i], alone.layers[name].relevance, 1e-6)
            close(batch.gradients[name][i], alone.layers[name].gradient, 1e-6)
        close(batch.input_gradient[i], alone.input_gradient, 1e-6)
