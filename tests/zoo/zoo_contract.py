"""The zoo contract that every real ConvNet must meet (random weights, a reduced input size).

:func:`check_contract` checks one loaded network three ways: (1) every layer
``discover_layers`` lists (that runs once per forward) has the shape a plain forward with hooks
gives, in its layout; (2) for a sample of the default layers (first, middle, last), units and
positions, the receptive field, clipped to the image and to what the whole map sees, equals the
support of the input gradient of that single activation, on an "averaging" copy of the model
(positive weights scaled by 1 / fan-in, batch norms reset, max-pools as avg-pools whether modules
or functional calls, weight-standardised convs as plain ones, saturating activations swapped for
ones that do not saturate, float64), so that no cancellation or saturation hides a pixel; (3)
``make_atlas`` writes an atlas whose boxes are the units' own fields. The torchvision and timm
zoo tests run it over their model lists.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from convscope.network.geometry import Box
from convscope.network.layers import LayerInfo, discover_layers, select_layers
from convscope.network.load import Network
from convscope.pipeline import make_atlas
from convscope.atlas.format import read_hits
from oracles import support_box

#: Elementwise activations whose gradient vanishes past a threshold, and a stand-in without one.
UNSATURATED = {nn.ReLU6: nn.ReLU, nn.Hardtanh: nn.Identity, nn.Hardswish: nn.SiLU, nn.Hardsigmoid: nn.Sigmoid}
#: timm's weight-standardised convolutions (NFNet, BiT): standardised, positive weights sum to zero
#: and cancel; the copy runs them as plain convolutions (their 'same' padding kept).
STANDARDISED = frozenset({"StdConv2d", "StdConv2dSame", "ScaledStdConv2d", "ScaledStdConv2dSame"})


def _plain_conv(conv: nn.Conv2d):  # noqa: ANN202
    def forward(x: torch.Tensor) -> torch.Tensor:
        if getattr(conv, "same_pad", False):
            from timm.layers.padding import pad_same

            x = pad_same(x, conv.kernel_size, conv.stride, conv.dilation)
        return nn.Conv2d.forward(conv, x)

    return forward


def _avg_pool(pool: nn.MaxPool2d) -> nn.Module:
    """An average pool over the windows of ``pool`` (timm's MaxPool2dSame: its 'same' padding kept)."""
    if type(pool).__name__ == "MaxPool2dSame":
        from timm.layers import AvgPool2dSame

        return AvgPool2dSame(pool.kernel_size, pool.stride, ceil_mode=pool.ceil_mode)
    return nn.AvgPool2d(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode)


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
                if type(module).__name__ in STANDARDISED:
                    module.forward = _plain_conv(module)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, name, _avg_pool(child))
            elif type(child) in UNSATURATED:  # the same geometry, a gradient everywhere (residual sums grow past 6)
                setattr(parent, name, UNSATURATED[type(child)]())
            elif hasattr(child, "inplace"):
                child.inplace = False
    return model


@contextmanager
def averaging_max_pools() -> Iterator[None]:
    """``F.max_pool2d`` called as a function (Inception's reduction blocks) averages over its windows."""
    max_pool2d = F.max_pool2d

    def avg_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):  # noqa: ANN001, ANN202
        assert dilation in (1, (1, 1)) and not return_indices, "no average stand-in for a dilated max-pool or its indices"
        return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode)

    F.max_pool2d = avg_pool2d
    try:
        yield
    finally:
        F.max_pool2d = max_pool2d


def keep(store: dict, name: str, what):  # noqa: ANN001, ANN201
    """A forward hook that stores ``what(output)`` of its first call and returns None (the output stays)."""

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        store.setdefault(name, what(output))

    return hook


def intersect(a: Box, b: Box) -> Box:
    return Box(max(a.top, b.top), max(a.left, b.left), min(a.bottom, b.bottom), min(a.right, b.right))


def clipped(box: Box, size: int) -> Box:
    return Box(max(box.top, 0), max(box.left, 0), min(box.bottom, size), min(box.right, size))


def check_contract(network: Network, size: int, images: Path, tmp_path: Path) -> int:
    """Checks (1) shapes, (2) sampled fields, (3) atlas boxes of ``network`` on ``size`` x ``size`` inputs.

    ``images``: a folder of photos for the atlas; ``tmp_path``: where the atlas goes. Returns how
    many fields (2) compared with a gradient support (0: no default layer has a local field).
    """
    model = network.model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        infos = discover_layers(model, (size, size))
        chosen = select_layers(model, None, (size, size))
    check_shapes(model, infos, size)
    compared = check_fields(model, chosen, size)
    check_atlas(network, chosen, size, images, tmp_path)
    return compared


def check_shapes(model: nn.Module, infos: list[LayerInfo], size: int) -> None:
    """(1) listed shapes equal a plain forward's outputs, in each layer's layout."""
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


def check_fields(model: nn.Module, chosen: list[LayerInfo], size: int) -> int:
    """(2) fields against the gradient support, for the first, middle and last local default layers.

    Returns how many fields it compared.
    """
    local = [i for i in chosen if i.fields is not None and all(f.stride != (0, 0) for *_, f in i.fields.ranges)]
    sample = list({i.name: i for i in (local[:1] + local[len(local) // 2 : len(local) // 2 + 1] + local[-1:])}.values())
    if not sample:
        return 0
    oracle = averaging_copy(model)
    outputs: dict[str, torch.Tensor] = {}
    omodules = dict(oracle.named_modules())
    hooks = [omodules[i.name].register_forward_hook(keep(outputs, i.name, lambda o: o)) for i in sample]
    x = (torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.5).requires_grad_()
    try:
        with averaging_max_pools():
            oracle(x)
    finally:
        for hook in hooks:
            hook.remove()
    covered = {}  # what the whole map sees: a map whose windows do not tile the input drops its last rows
    for info in sample:
        (grad,) = torch.autograd.grad(outputs[info.name].sum(), x, retain_graph=True)
        covered[info.name] = support_box(grad[0])
        assert covered[info.name] is not None, (info.name, "no pixel reaches the map: the averaging copy cancels")
    compared = 0
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
                    compared += 1
    return compared


def check_atlas(network: Network, chosen: list[LayerInfo], size: int, images: Path, tmp_path: Path) -> None:
    """(3) an atlas of the first and last default layers and the first whose units see different
    fields (its manifest carries their unit ranges), boxes from each unit's own field."""
    varied = [i.name for i in chosen if i.fields is not None and len(i.fields.ranges) > 1][:1]
    layers = list(dict.fromkeys([chosen[0].name, *varied, chosen[-1].name]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = make_atlas(network, images, tmp_path / "atlas", layers=layers, k=2, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert [layer["name"] for layer in manifest["layers"]] == layers
    for info in (i for i in chosen if i.name in layers):
        for record in read_hits(out, info.name)["units"]:
            for hit in record["hits"]:
                field = info.fields.field(record["unit"]) if info.fields is not None else None
                expected = field.box(hit["row"], hit["col"]) if field is not None else Box(0, 0, size, size)
                assert hit["box"] == list(expected), (info.name, record["unit"], hit)
