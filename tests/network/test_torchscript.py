"""TorchScript files become Python modules: same names, same outputs, hooks that fire."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.overrides import TorchFunctionMode
from tiny_models import tiny_alexnet

from convscope.errors import ModelError
from convscope.network.torchscript import HookableModule, to_hookable
from convscope.hooks import capture


class ResidualBlock(nn.Module):
    """A conv with a functional ``F.relu`` and an in-place ``x += identity``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = F.relu(self.conv(x))
        out += identity
        return F.relu(out)


class Repeat(nn.Module):
    """Control flow: applies ``conv`` ``times`` times, then doubles if the sum is positive."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(3.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.times):
            x = self.conv(x)
        if bool(x.sum() > 0):
            x = x * 2
        return x


@torch.jit.script
def _halve(x: torch.Tensor) -> torch.Tensor:
    return x / 2


class CallsUserFunction(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _halve(x)


def save_and_load(model: nn.Module, x: torch.Tensor, how: str, tmp_path: Path) -> torch.jit.ScriptModule:
    """``model`` scripted or traced (on ``x``), saved to a file and loaded back."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.jit.script(model) if how == "script" else torch.jit.trace(model, x, check_trace=False)
        torch.jit.save(compiled, tmp_path / "model.pt")
        return torch.jit.load(tmp_path / "model.pt")


def outputs_of(model: nn.Module, layers: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each layer's output in one forward, through convscope's own hooks."""
    seen: dict[str, torch.Tensor] = {}
    with capture(model, layers, lambda name, out: seen.__setitem__(name, out.clone())), torch.no_grad():
        model(x)
    return seen


def check_equivalent(eager: nn.Module, x: torch.Tensor, layers: list[str], how: str, tmp_path: Path) -> None:
    """Outputs, module names and hooked layer outputs equal the eager model's, bit for bit."""
    loaded = save_and_load(eager, x, how, tmp_path)
    model = to_hookable(loaded)
    with torch.no_grad():
        out = model(x)
        assert torch.equal(out, loaded(x))
        assert torch.equal(out, eager(x))
    assert [name for name, _ in model.named_modules()] == [name for name, _ in eager.named_modules()]
    assert list(model.state_dict()) == list(eager.state_dict())
    got, want = outputs_of(model, layers, x), outputs_of(eager, layers, x)
    assert got.keys() == set(layers)
    for layer in layers:
        assert torch.equal(got[layer], want[layer]), layer


@pytest.mark.parametrize("how", ["script", "trace"])
def test_tiny_net_matches_the_eager_model(how, tmp_path):
    eager = tiny_alexnet().eval()
    check_equivalent(eager, torch.randn(2, 3, 16, 16), ["features.0", "features.3", "classifier"], how, tmp_path)


@pytest.mark.parametrize("how", ["script", "trace"])
def test_functional_relu_and_inplace_add(how, tmp_path):
    torch.manual_seed(0)
    eager = ResidualBlock().eval()
    check_equivalent(eager, torch.randn(1, 2, 5, 5), ["conv"], how, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["script", "trace"])
def test_alexnet(how, tmp_path):
    torch.manual_seed(0)
    eager = torchvision.models.alexnet().eval()
    check_equivalent(eager, torch.randn(1, 3, 64, 64), ["features.3", "features.10", "classifier.4"], how, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["script", "trace"])
def test_resnet18(how, tmp_path):
    torch.manual_seed(0)
    eager = torchvision.models.resnet18().eval()
    layers = ["layer1.0", "layer2.0.conv1", "layer2.0.downsample.1", "layer4.1.bn2"]
    check_equivalent(eager, torch.randn(2, 3, 32, 32), layers, how, tmp_path)


def test_loop_and_if_run_in_python(tmp_path):
    model = to_hookable(save_and_load(Repeat(times=2), torch.ones(1, 1, 1, 1), "script", tmp_path))
    calls = []
    model.conv.register_forward_hook(lambda module, inputs, output: calls.append(output.item()))
    # 1 -> 3 -> 9, positive so doubled; the hook sees both conv calls.
    assert model(torch.ones(1, 1, 1, 1)).item() == 18.0
    assert calls == [3.0, 9.0]
    assert model(-torch.ones(1, 1, 1, 1)).item() == -9.0


@pytest.mark.parametrize("how", ["script", "trace"])
def test_parameters_and_buffers_are_shared(how, tmp_path):
    loaded = save_and_load(tiny_alexnet().eval(), torch.randn(1, 3, 16, 16), how, tmp_path)
    model = to_hookable(loaded)
    weight = model.get_submodule("features.3").weight
    assert isinstance(weight, nn.Parameter)
    assert weight.data_ptr() == getattr(loaded.features, "3").weight.data_ptr()
    assert sorted(dict(model.named_parameters())) == sorted(dict(loaded.named_parameters()))


def test_train_and_eval_flags_are_carried(tmp_path):
    eager = torchvision.models.resnet18().train()
    eager.layer1.eval()
    eager.fc.eval()
    loaded = save_and_load(eager, torch.randn(1, 3, 32, 32), "script", tmp_path)
    model = to_hookable(loaded)
    want = {name: module.training for name, module in eager.named_modules()}
    assert {name: module.training for name, module in model.named_modules()} == want


def test_scripted_batch_norm_follows_the_training_flag(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(4, 2, 3, 3)
    eager = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2))
    model = to_hookable(save_and_load(eager, x, "script", tmp_path))
    model.train()
    eager.train()
    assert torch.equal(model(x), eager(x))
    assert torch.equal(model.get_submodule("1").running_mean, eager[1].running_mean)
    assert model.get_submodule("1").num_batches_tracked.item() == 1
    model.eval()
    eager.eval()
    assert torch.equal(model(x), eager(x))


def test_function_mode_sees_convolutions_and_pools_as_torch_functions(tmp_path):
    model = to_hookable(save_and_load(tiny_alexnet().eval(), torch.randn(1, 3, 16, 16), "trace", tmp_path))

    class Record(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.funcs: list = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.funcs.append(func)
            return func(*args, **(kwargs or {}))

    with Record() as record, torch.no_grad():
        model(torch.randn(1, 3, 16, 16))
    assert record.funcs.count(torch.conv2d) == 2
    assert F.max_pool2d in record.funcs
    assert F.adaptive_avg_pool2d in record.funcs
    assert record.funcs.count(torch.relu_) == 1 and record.funcs.count(torch.relu) == 1


def test_result_is_a_tree_of_python_modules(tmp_path):
    model = to_hookable(save_and_load(tiny_alexnet(), torch.randn(1, 3, 16, 16), "trace", tmp_path))
    assert all(isinstance(m, HookableModule) for m in model.modules())
    assert model.get_submodule("features.0").original_name == "Conv2d"


def test_user_function_is_refused_with_a_hint(tmp_path):
    loaded = save_and_load(CallsUserFunction(), torch.ones(1), "script", tmp_path)
    with pytest.raises(ModelError, match="_halve") as info:
        to_hookable(loaded)
    assert "file.py:factory" in str(info.value)


def test_an_eager_module_is_refused():
    with pytest.raises(ModelError, match="TorchScript"):
        to_hookable(nn.ReLU())  # type: ignore[arg-type]


def test_no_future_warning_escapes(tmp_path):
    loaded = save_and_load(tiny_alexnet(), torch.randn(1, 3, 16, 16), "script", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_hookable(loaded)


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("rule", [None, "guided", "deconvnet"])
def test_input_gradients_match_the_eager_model(how, rule, tmp_path):
    from convscope.project.rules import modified_relus

    eager = tiny_alexnet().eval()
    x = torch.randn(1, 3, 16, 16)
    model = to_hookable(save_and_load(eager, x, how, tmp_path))

    def gradient(net: nn.Module) -> torch.Tensor:
        inp = x.clone().requires_grad_()
        with modified_relus(net, rule) if rule else torch.enable_grad():
            (grad,) = torch.autograd.grad(net(inp)[0, 1], inp)
        return grad

    want = gradient(eager)
    assert want.abs().sum() > 0
    assert torch.equal(gradient(model), want)
