"""Contract test over torchvision's classification zoo (random weights, reduced input sizes).

For every model: (1) every layer ``discover_layers`` lists (that runs once per forward) has the
shape a plain forward with hooks gives, in its layout; (2) for a sample of the default layers, units and positions, the
receptive field, clipped to the image and to what the whole map sees, equals the support of the
input gradient of that single activation, on an "averaging" copy of the model (positive weights scaled by 1 / fan-in, batch norms reset, max-pools
as avg-pools, saturating activations swapped for ones that do not saturate, float64), so that no cancellation or saturation hides a pixel; (3) ``make_atlas``
writes an atlas whose boxes are the units' own fields.
"""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
import torchvision
from torch import nn

from convscope.network.geometry import Box
from convscope.network.layers import discover_layers, select_layers
from convscope.network.load import load_network
from convscope.network.preprocess import Preprocess
from convscope.pipeline import make_atlas
from oracles import support_box
from tiny_models import write_images

pytestmark = pytest.mark.slow

MODELS = torchvision.models.list_models(module=torchvision.models)
#: Transformers need their training resolution; everything else runs at 96 px (Inception-v3: 299).
SIZES = {"vit": 224, "swin": 224, "maxvit": 224, "inception_v3": 299}


def size_of(name: str) -> int:
    return next((s for prefix, s in SIZES.items() if name.startswith(prefix)), 96)


#: Elementwise activations whose gradient vanishes past a threshold, and a stand-in without one.
UNSATURATED = {nn.ReLU6: nn.ReLU, nn.Hardtanh: nn.Identity, nn.Hardswish: nn.SiLU, nn.Hardsigmoid: nn.Sigmoid}


def averaging_copy(model: nn.Module) -> nn.Module:
    """float64 copy where every output is a positive, well-scaled average of its inputs."""
    model = copy.deepcopy(model).double().eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_((0.75 + 0.5 * torch.rand(module.weight.shape, generator=g, dtype=torch.float64)) / fan_in)
                if module.bias is not None:
                    module.bias.fill_(0.01)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
            elif type(child) in UNSATURATED:  # the same geometry, a gradient everywhere (residual sums grow past 6)
                setattr(parent, name, UNSATURATED[type(child)]())
            elif hasattr(child, "inplace"):
                child.inplace = False
    return model


def keep(store: dict, name: str, what):  # noqa: ANN001, ANN201
    """A forward hook that stores ``what(output)`` of its first call and returns None (the output stays)."""

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        store.setdefault(name, what(output))

    return hook


def intersect(a: Box, b: Box) -> Box:
    return Box(max(a.top, b.top), max(a.left, b.left), min(a.bottom, b.bottom), min(a.right, b.right))


def clipped(box: Box, size: int) -> Box:
    return Box(max(box.top, 0), max(box.left, 0), min(box.bottom, size), min(box.right, size))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-images")
    write_images(root, 4, 100, seed=7)
    return root


@pytest.mark.parametrize("name", MODELS)
def test_zoo_model(name, images, tmp_path):
    size = size_of(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = load_network(f"torchvision:{name}", preprocess=Preprocess(input_size=(size, size), resize=size))
        model = network.model
        infos = discover_layers(model, (size, size))
        chosen = select_layers(model, None, (size, size))

    # (1) listed shapes equal a plain forward's outputs, in each layer's layout
    modules = dict(model.named_modules())
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [modules[i.name].register_forward_hook(keep(seen, i.name, lambda o: tuple(o.shape))) for i in infos]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for hook in hooks:
            hook.remove()
    for info in (i for i in infos if i.calls == 1):  # a shared module's outputs differ call to call
        shape = seen[info.name]
        expected = (shape[1], 1, 1) if len(shape) == 2 else tuple(shape[d] for d in info.dims) if info.dims else shape[1:]
        assert info.shape == expected, (info.name, info.shape, shape, info.dims)

    # (2) fields against the gradient support, for the first, middle and last local default layers
    local = [i for i in chosen if i.fields is not None and all(f.stride != (0, 0) for *_, f in i.fields.ranges)]
    sample = list({i.name: i for i in (local[:1] + local[len(local) // 2 : len(local) // 2 + 1] + local[-1:])}.values())
    if sample:
        oracle = averaging_copy(model)
        outputs: dict[str, torch.Tensor] = {}
        omodules = dict(oracle.named_modules())
        hooks = [omodules[i.name].register_forward_hook(keep(outputs, i.name, lambda o: o)) for i in sample]
        x = (torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.5).requires_grad_()
        try:
            oracle(x)
        finally:
            for hook in hooks:
                hook.remove()
        covered = {}  # what the whole map sees: a map whose windows do not tile the input drops its last rows
        for info in sample:
            (grad,) = torch.autograd.grad(outputs[info.name].sum(), x, retain_graph=True)
            covered[info.name] = support_box(grad[0])
        for info in sample:
            out = outputs[info.name].permute(0, *info.dims)
            rows, cols = out.shape[2:]
            picks = [(0, 0), (rows // 2, cols // 2), (rows - 1, cols - 1)]
            for start, stop, field in info.fields.ranges[:3]:
                unit = (start + stop) // 2
                value = sum(out[p, unit, r, c] for p, (r, c) in enumerate(picks))
                (grad,) = torch.autograd.grad(value, x, retain_graph=True)
                for p, (r, c) in enumerate(picks):
                    if field.padding == "zeros":
                        expected = intersect(clipped(field.box(r, c), size), covered[info.name])
                        assert support_box(grad[p]) == expected, (info.name, unit, r, c, field)

    # (3) an atlas of the first and last default layers, boxes from each unit's own field
    layers = list(dict.fromkeys([chosen[0].name, chosen[-1].name]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = make_atlas(network, images, tmp_path / "atlas", layers=layers, k=2, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [layer["name"] for layer in manifest["layers"]] == layers
    for info in (i for i in chosen if i.name in layers):
        for record in json.loads((out / f"layers/{info.name}/hits.json").read_text())["units"]:
            for hit in record["hits"]:
                field = info.fields.field(record["unit"]) if info.fields is not None else None
                expected = field.box(hit["row"], hit["col"]) if field is not None else Box(0, 0, size, size)
                assert hit["box"] == list(expected), (info.name, record["unit"], hit)
