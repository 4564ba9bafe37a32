"""Hooks live only inside `capture`, on success and on exception."""

import pytest
import torch
from torch import nn

from convscope.errors import LayerError
from convscope.hooks import StopForward, capture, run_until_captured


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def tiny() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 3))


def test_hooks_removed_after_success():
    model = tiny()
    with capture(model, ["0", "2"], lambda n, o: None):
        assert hook_count(model) == 3  # two layers + the pre-hook that marks a new forward
        model(torch.zeros(1, 3, 8, 8))
    assert hook_count(model) == 0


def test_hooks_removed_after_exception_in_the_hook():
    model = tiny()

    def boom(name, output):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with capture(model, ["0"], boom):
            model(torch.zeros(1, 3, 8, 8))
    assert hook_count(model) == 0


def test_hooks_removed_after_exception_in_the_body():
    model = tiny()
    with pytest.raises(KeyError):
        with capture(model, ["0"], lambda n, o: None):
            raise KeyError("user code")
    assert hook_count(model) == 0


def test_unknown_layer_names_the_discovery_command_and_registers_nothing():
    model = tiny()
    with pytest.raises(LayerError, match="convscope layers"):
        with capture(model, ["0", "nope"], lambda n, o: None):
            pass
    assert hook_count(model) == 0


def test_sees_the_output_before_a_later_inplace_relu():
    model = tiny()
    seen = {}
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    with capture(model, ["0"], lambda n, o: seen.setdefault(n, o.clone())):
        model(x)
    direct = model[0](x)
    assert (direct < 0).any()  # the in-place ReLU would have removed these
    assert torch.equal(seen["0"], direct)


def test_shared_module_is_refused():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(3, 3, 1), relu, nn.Conv2d(3, 3, 1), relu)
    with pytest.raises(LayerError, match="more than once"):
        with capture(model, ["1"], lambda n, o: None):
            model(torch.zeros(1, 3, 4, 4))
    assert hook_count(model) == 0


def test_two_forwards_are_two_rounds_not_a_repeat():
    model = tiny()
    calls = []
    with capture(model, ["0"], lambda n, o: calls.append(n)):
        model(torch.zeros(1, 3, 8, 8))
        model(torch.zeros(1, 3, 8, 8))
    assert calls == ["0", "0"]


def test_stop_after_last_skips_the_rest_of_the_network():
    ran = []
    model = tiny()
    model[2].register_forward_pre_hook(lambda m, i: ran.append("2"))
    with capture(model, ["0"], lambda n, o: None, stop_after_last=True):
        run_until_captured(model, torch.zeros(1, 3, 8, 8))
        with pytest.raises(StopForward):
            model(torch.zeros(1, 3, 8, 8))
    assert ran == []
