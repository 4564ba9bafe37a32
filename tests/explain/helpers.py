"""Independent oracles for the explain tests: plain autograd loops, no convscope hooks."""

from __future__ import annotations

import copy

import torch
from torch import nn


def plain_relevance(model: nn.Module, x: torch.Tensor, layers: list[str], target: int) -> dict[str, torch.Tensor]:
    """Per layer ``(C,)``: sum over positions of A * dlogit/dA, by a copy of the model with every
    in-place op made out-of-place, plain forward hooks and ``torch.autograd.grad``."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o)) for name in layers]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(logits[0, target], [outputs[n] for n in layers])
    found = {}
    for name, g in zip(layers, grads):
        a = outputs[name]
        if a.dim() == 2:
            a, g = a[:, :, None, None], g[:, :, None, None]
        found[name] = (a.double() * g.double()).sum(dim=(0, 2, 3)).detach()
    return found


def plain_heatmap(model: nn.Module, x: torch.Tensor, layer: str, weight: torch.Tensor) -> torch.Tensor:
    """``sum_rgb x * d(sum(A * weight))/dx`` ``(H, W)`` for a fixed ``weight`` shaped like the layer's ``(C, H, W)``."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    outputs: dict[str, torch.Tensor] = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: outputs.__setitem__("a", o))
    x = x.detach().clone().requires_grad_(True)
    try:
        model(x)
    finally:
        handle.remove()
    (g,) = torch.autograd.grad((outputs["a"][0] * weight).sum(), x)
    return (x * g).sum(dim=1)[0].detach()


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def small_net(bias: bool = True) -> nn.Sequential:
    """Conv, in-place ReLU, max pool, conv, ReLU, global pool, linear: 5 classes."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=bias), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1, bias=bias), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5, bias=bias),
    ).eval()


def zennit_lrp(model: nn.Module, x: torch.Tensor, layers: list[str], target: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The oracle for LRP: zennit-crp's ``CondAttribution`` with zennit's ``EpsilonPlusFlat`` on a
    copy of ``model`` (CondAttribution turns its parameters' gradients off for good; zennit copes
    with in-place ReLUs itself), relevance started at the target's logit.
    Returns per layer the channel relevances ``(C,)`` (float64) and the input relevance ``(H, W)``."""
    from crp.attribution import CondAttribution
    from crp.concepts import ChannelConcept
    from zennit.composites import EpsilonPlusFlat

    model = copy.deepcopy(model).eval()
    data = x.detach().clone().requires_grad_(True)
    result = CondAttribution(model)(data, [{"y": [target]}], EpsilonPlusFlat(), record_layer=layers)
    channels = {name: ChannelConcept().attribute(result.relevances[name].double(), abs_norm=False)[0] for name in layers}
    return channels, result.heatmap[0].detach()


def crp_heatmaps(model: nn.Module, x: torch.Tensor, layer: str, units: list[int], target: int) -> torch.Tensor:
    """The oracle for conditional heatmaps: zennit-crp's conditional attribution of each of
    ``units`` of ``layer`` for class ``target``, batched as its docs show (one condition per
    unit, ``exclude_parallel`` on); ``(len(units), H, W)``."""
    from crp.attribution import CondAttribution
    from zennit.composites import EpsilonPlusFlat

    model = copy.deepcopy(model).eval()
    data = x.detach().clone().requires_grad_(True)
    conditions = [{layer: [u], "y": [target]} for u in units]
    return CondAttribution(model)(data, conditions, EpsilonPlusFlat()).heatmap.detach()

