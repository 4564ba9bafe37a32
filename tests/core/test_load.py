"""Model sources and weights."""

import urllib.error

import pytest
import torch
from torch import nn

from convscope.errors import ModelError, WeightsError
from convscope.network.load import load_network
from convscope.network.weights import unwrap_state_dict

FACTORY = """
import torch.nn as nn

def make():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())

def broken():
    raise ValueError("no GPU here")

def not_a_model():
    return 42
"""


@pytest.fixture
def factory_file(tmp_path):
    path = tmp_path / "mymodel.py"
    path.write_text(FACTORY)
    return path


def test_file_factory_builds_the_model_in_eval_mode(factory_file):
    net = load_network(f"{factory_file}:make")
    assert isinstance(net.model[0], nn.Conv2d)
    assert not net.model.training
    assert net.weights is None


@pytest.mark.parametrize(
    "attr, message",
    [("nothere", "has no callable 'nothere'"), ("broken", "no GPU here"), ("not_a_model", "returned int")],
)
def test_bad_factories_say_what_is_wrong(factory_file, attr, message):
    with pytest.raises(ModelError, match=message):
        load_network(f"{factory_file}:{attr}")


def test_module_factory():
    net = load_network("tiny_models:tiny_alexnet")
    assert "features.3" in dict(net.model.named_modules())


def test_a_factory_called_with_literal_arguments():
    net = load_network("tiny_models:tiny_alexnet(num_classes=7)")
    assert net.model.classifier.out_features == 7 and net.source == "tiny_models:tiny_alexnet(num_classes=7)"
    assert load_network("tiny_models:tiny_alexnet(3)").model.classifier.out_features == 3


@pytest.mark.parametrize(
    "call, message",
    [("tiny_alexnet(num_classes=__import__('os').getpid())", "not all Python literals"), ("tiny_alexnet(**{})", "not a factory name or a call"),
     ("tiny_alexnet(", "not a factory name or call"), ("tiny_alexnet(colours=3)", "unexpected keyword argument 'colours'")],
)
def test_a_factory_call_takes_literals_only_and_says_what_is_wrong(call, message):
    with pytest.raises(ModelError, match=message):
        load_network(f"tiny_models:{call}")


def test_missing_file_and_syntax_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_network(f"{tmp_path}/nope.py:make")
    bad = tmp_path / "bad.py"
    bad.write_text("def make(:\n")
    with pytest.raises(ModelError, match="SyntaxError"):
        load_network(f"{bad}:make")


def test_weights_unwrap_state_dict_key_and_module_prefix(tmp_path, factory_file):
    source = load_network(f"{factory_file}:make").model
    with torch.no_grad():
        source[0].weight.fill_(0.5)
    path = tmp_path / "w.th"
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "best_prec1": 90.0}, path)
    net = load_network(f"{factory_file}:make", path)
    assert torch.equal(net.model[0].weight, source[0].weight)
    assert net.weights_sha256 is not None and len(net.weights_sha256) == 64


def test_mismatched_weights_list_missing_and_unexpected_keys(tmp_path, factory_file):
    path = tmp_path / "w.pt"
    torch.save({"0.weight": torch.zeros(4, 3, 3, 3), "extra.bias": torch.zeros(1)}, path)
    with pytest.raises(WeightsError) as info:
        load_network(f"{factory_file}:make", path)
    assert "missing keys (1): 0.bias" in str(info.value)
    assert "unexpected keys (1): extra.bias" in str(info.value)


def test_shape_mismatch_is_named(tmp_path, factory_file):
    path = tmp_path / "w.pt"
    torch.save({"0.weight": torch.zeros(8, 3, 3, 3), "0.bias": torch.zeros(8)}, path)
    with pytest.raises(WeightsError, match="shape mismatches"):
        load_network(f"{factory_file}:make", path)


def test_weights_are_loaded_safely(tmp_path, factory_file):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(WeightsError, match="weights_only=True"):
        load_network(f"{factory_file}:make", path)


def test_missing_and_garbage_weights(tmp_path, factory_file):
    with pytest.raises(WeightsError, match="does not exist"):
        load_network(f"{factory_file}:make", tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        load_network(f"{factory_file}:make", garbage)


def test_not_a_state_dict():
    with pytest.raises(WeightsError, match="no state dict"):
        unwrap_state_dict([1, 2], "list.pt")


def test_torchvision_unknown_name_suggests():
    with pytest.raises(ModelError, match="did you mean alexnet"):
        load_network("torchvision:alexnt")


def test_torchvision_preprocessing_and_classes_from_metadata():
    net = load_network("torchvision:alexnet")
    assert net.preprocess.input_size == (224, 224) and net.preprocess.resize == 256
    assert net.class_names is not None and len(net.class_names) == 1000


def test_torchvision_weights_name_without_network_says_pass_a_file(monkeypatch):
    from torchvision.models._api import WeightsEnum

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(WeightsEnum, "get_state_dict", offline)
    with pytest.raises(WeightsError, match="--weights FILE"):
        load_network("torchvision:alexnet", "IMAGENET1K_V1")


def test_torchvision_unknown_weights_name_lists_the_known_ones():
    with pytest.raises(WeightsError, match="IMAGENET1K_V1"):
        load_network("torchvision:alexnet", "IMAGENET9K")


def test_torchvision_weights_file(tmp_path):
    net = load_network("torchvision:resnet18")
    path = tmp_path / "r18.pth"
    torch.save(net.model.state_dict(), path)
    again = load_network("torchvision:resnet18", path)
    assert torch.equal(again.model.conv1.weight, net.model.conv1.weight)


def test_not_a_model_source(tmp_path):
    with pytest.raises(ModelError, match="not a model source"):
        load_network(str(tmp_path / "nothing"))
    state = tmp_path / "state.pt"
    torch.save({"a": torch.zeros(1)}, state)
    with pytest.raises(ModelError, match="not a TorchScript file"):
        load_network(str(state))


def test_checkpoints_without_batchnorm_step_counters_load(tmp_path):
    """Checkpoints from before torch 0.4.1 have no num_batches_tracked; torch fills it in."""
    net = load_network("torchvision:resnet18")
    state = {k: v for k, v in net.model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save(state, path)
    again = load_network("torchvision:resnet18", path)
    assert torch.equal(again.model.bn1.weight, net.model.bn1.weight)
