"""Every unit's relevance to one class logit, from one forward and one backward, by one of two methods.

``method="gradient"`` (the default): gradient x activation.

For a layer with activation ``A`` ``(C, H, W)`` and the gradient ``G = d logit / d A`` of the same
shape, unit ``c``'s relevance is ``R_c = sum_{h, w} A[c, h, w] * G[c, h, w]`` (signed), and its
share ``R_c / sum_c |R_c|`` (in ``[-1, 1]``; the absolute shares of a layer add up to 1, also
where positive and negative relevances cancel). On a network that is piecewise linear and
has no biases above the layer, ``sum_c R_c`` equals the logit (conservation); biases take
the rest.

``method="lrp"``: LRP with zennit's epsilon-plus-flat composite (:mod:`convscope.explain.lrp`). The
backward pass runs under the LRP rules, starting from the logit's value on the target (CRP's
``relevance_init``: the logits times a one-hot), so what reaches the layer's output ``R``
``(C, H, W)`` is its relevance, and ``R_c = sum_{h, w} R[c, h, w]``. With zero biases the
relevances of a layer add up to the logit (up to the rules' stabiliser, 1e-6).

The activation is the layer's output as its forward hook sees it, before any later in-place
operation (``nn.ReLU(inplace=True)``): the gradient is taken with a tensor hook registered in
the same forward hook, so it is the gradient of that value, not of the changed one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import torch
from torch import nn

from convscope.errors import ConvscopeError
from convscope.explain.lrp import lrp_rules
from convscope.hooks import capture
from convscope.network.layers import NCHW, to_nchw
from convscope.network.modes import eval_mode, frozen

Method = Literal["gradient", "lrp"]
METHODS: dict[str, str] = {"gradient": "gradient x activation", "lrp": "LRP epsilon-plus-flat"}
"""The relevance methods, by name (``method=``, ``--method``), with what each computes: gradient x
activation, or LRP with zennit's epsilon-plus-flat composite."""


def check_method(method: str) -> None:
    """Raise a ConvscopeError unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise ConvscopeError(f"unknown relevance method {method!r}", hint=f"use one of {', '.join(METHODS)}")


@contextmanager
def backward_rules(model: nn.Module, method: Method, same_rows: bool = False) -> Iterator[None]:
    """The backward pass ``method`` needs while inside: plain for ``"gradient"``, the LRP rules for
    ``"lrp"`` (``same_rows``: see :func:`~convscope.explain.lrp.lrp_rules`)."""
    if method == "lrp":
        with lrp_rules(model, same_rows):
            yield
    else:
        yield


@dataclass(frozen=True)
class LayerGradient:
    """One layer's activation and what the backward pass of the class logit brought to it.

    Attributes:
        layer: dotted name.
        activation: ``(C, H, W)`` float, detached (``(C, 1, 1)`` for a flat ``(N, C)`` output).
        gradient: ``(C, H, W)``: ``d logit / d activation`` (``method="gradient"``), or the
            relevance arriving at the layer's output (``"lrp"``: the rules' "gradient").
        method: ``"gradient"`` or ``"lrp"``.
    """

    layer: str
    activation: torch.Tensor
    gradient: torch.Tensor
    method: Method = "gradient"

    @cached_property
    def relevance(self) -> torch.Tensor:
        """``(C,)`` per unit (float64 sums; computed once): ``sum_{h, w} activation * gradient``,
        or for LRP ``sum_{h, w} gradient``."""
        if self.method == "lrp":
            return self.gradient.double().sum(dim=(1, 2))
        return (self.activation.double() * self.gradient.double()).sum(dim=(1, 2))

    @cached_property
    def shares(self) -> torch.Tensor:
        """``(C,)``: each relevance over the sum of their absolute values (zeros if all are 0)."""
        r = self.relevance
        total = r.abs().sum()
        return r / total if total > 0 else torch.zeros_like(r)


@dataclass(frozen=True)
class ClassGradients:
    """What one forward and one backward of a class logit give.

    Attributes:
        logits: ``(classes,)`` of the image.
        target: the class whose logit was differentiated.
        layers: per layer, its :class:`LayerGradient`, in the order asked.
        input_gradient: ``(3, H, W)``, ``d logit / d input`` (of the normalised input); for
            LRP the input's relevance.
        output_layer: the layer whose output the logits are (a view of its storage, the same
            values: SqueezeNet's ``classifier``, flattened), or ``None``. Its gradient is one-hot
            on the target, so its one relevant unit's conditional heatmap is
            ``sum_rgb x * input_gradient`` (LRP: ``sum_rgb input_gradient``), with no pass of its own.
        method: ``"gradient"`` or ``"lrp"``.
    """

    logits: torch.Tensor
    target: int
    layers: dict[str, LayerGradient]
    input_gradient: torch.Tensor
    output_layer: str | None = None
    method: Method = "gradient"

    def input_heatmap(self, x: torch.Tensor) -> torch.Tensor:
        """``(H, W)`` float32: the whole logit's heatmap on ``x`` ``(1, 3, H, W)`` (gradient x input,
        or LRP's input relevance), summed over RGB."""
        g = self.input_gradient
        heat = g if self.method == "lrp" else x[0].to(g.device) * g
        return heat.sum(dim=0).float().cpu()


def as_map(output: torch.Tensor, dims: tuple[int, int, int] | None) -> torch.Tensor:
    """A layer output as ``(N, C, H, W)``: a flat ``(N, C)`` becomes ``(N, C, 1, 1)``; an NHWC one
    is permuted (``dims`` as in :class:`~convscope.network.layers.LayerInfo`); a view either way."""
    if output.dim() == 2:
        return output[:, :, None, None]
    if output.dim() != 4:
        raise ConvscopeError(
            f"a layer output of shape {tuple(output.shape)} is no (N, C, H, W) map",
            hint="pick layers that `convscope layers MODEL` lists",
        )
    return to_nchw(output, dims or NCHW)


@dataclass(frozen=True)
class BatchGradients:
    """What one forward and one backward of a batch's class logits give (see :func:`batch_gradients`).

    Attributes:
        logits: ``(N, classes)``, detached.
        targets: ``(N,)`` int64, the class whose logit was differentiated for each image.
        relevance: per layer ``(N, C)`` float64: ``sum_{h, w} A * G`` of each image.
        activations, gradients: per layer ``(N, C, H, W)`` (``keep_maps``; else empty).
        input_gradient: ``(N, 3, H, W)``, ``d logit_i / d x_i``.
        storage: per layer, its output's ``(storage pointer, numel)`` (to find the logits' layer).
    """

    logits: torch.Tensor
    targets: torch.Tensor
    relevance: dict[str, torch.Tensor]
    activations: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor]
    input_gradient: torch.Tensor
    storage: dict[str, tuple[int, int]]


def batch_gradients(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[str],
    targets: Sequence[int] | torch.Tensor | None = None,
    dims: Mapping[str, tuple[int, int, int] | None] | None = None,
    *,
    keep_maps: bool = True,
    method: Method = "gradient",
) -> BatchGradients:
    """One forward of ``x`` ``(N, 3, H, W)`` with hooks on ``layers`` and one backward of
    ``sum_i logit[i, target_i]``: in eval mode the images are independent, so each image's
    gradients are those of its own logit.

    Args:
        model: returns logits ``(N, classes)``; its train/eval flags and its parameters'
            ``requires_grad`` are given back after.
        x: the normalised inputs, on the model's device.
        layers: dotted names, each run once per forward.
        targets: ``(N,)`` class per image, ``-1`` for its predicted one (the largest logit);
            ``None``: every image's predicted class.
        dims: per layer, where its ``(units, rows, cols)`` are (default NCHW).
        keep_maps: keep every layer's activations and gradients; ``False`` keeps only the
            ``(N, C)`` relevances, reduced as each gradient arrives (less memory).
        method: ``"gradient"`` (plain backward of the logits) or ``"lrp"`` (the LRP rules'
            backward, each image's start its target logit's value; ``gradients`` are then the
            relevances arriving at the layers, and ``relevance`` their sums over positions).

    Raises:
        ConvscopeError: the model's output is not ``(N, classes)``, or a target is out of range.
        LrpRuleError: (``"lrp"``) a module calls something without an LRP rule.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> found = batch_gradients(model, torch.rand(5, 3, 8, 8), ["0"], [1, 0, -1, 1, 1])
        >>> found.relevance["0"].shape, found.gradients["0"].shape
        (torch.Size([5, 4]), torch.Size([5, 4, 6, 6]))
    """
    check_method(method)
    dims = dims or {}
    activations: dict[str, torch.Tensor] = {}
    gradients: dict[str, torch.Tensor] = {}
    relevance: dict[str, torch.Tensor] = {}
    handles: list = []
    storage: dict[str, tuple[int, int]] = {}  # per layer, its output's storage and size

    def on_gradient(name: str, layer_dims, grad: torch.Tensor) -> None:
        g = as_map(grad, layer_dims).detach()
        relevance[name] = (g.double() if method == "lrp" else activations[name].double() * g.double()).sum(dim=(2, 3))
        if keep_maps:
            gradients[name] = g
        else:
            del activations[name]

    def record(name: str, output: torch.Tensor) -> None:
        layer_dims = dims.get(name)
        storage[name] = (output.untyped_storage().data_ptr(), output.numel())
        activations[name] = as_map(output, layer_dims).detach().clone()  # before a later in-place op changes it
        if output.requires_grad:
            handles.append(output.register_hook(lambda g: on_gradient(name, layer_dims, g)))

    x = x.detach().clone().requires_grad_(True)
    try:
        with eval_mode(model), frozen(model), torch.enable_grad(), backward_rules(model, method), capture(model, layers, record):
            logits = model(x)
            n = x.shape[0]
            if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n:
                raise ConvscopeError(
                    f"the model returns {tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}, "
                    f"not class logits ({n}, classes)",
                    hint="explain needs a classifier whose output is (N, classes)",
                )
            classes = logits.shape[1]
            chosen = torch.full((n,), -1, dtype=torch.long) if targets is None else torch.as_tensor(targets, dtype=torch.long).flatten().cpu()
            if chosen.shape != (n,):
                raise ConvscopeError(f"{len(chosen)} targets for {n} images", hint="give one class per image")
            bad = chosen[(chosen < -1) | (chosen >= classes)]
            if len(bad):
                raise ConvscopeError(f"class {int(bad[0])} is not in 0..{classes - 1}", hint=f"give a class index below {classes}")
            chosen = torch.where(chosen < 0, logits.detach().argmax(dim=1).cpu(), chosen)
            picked = logits.gather(1, chosen.to(logits.device)[:, None])  # (N, 1)
            # LRP starts from each target logit's value (CRP's relevance_init), the gradient from 1
            start = picked.detach() if method == "lrp" else torch.ones_like(picked)
            (input_gradient,) = torch.autograd.grad(picked, x, start)
    finally:
        for handle in handles:
            handle.remove()
    for name in layers:  # a layer the logits do not depend on: gradient and relevance 0
        if name not in relevance:
            act = activations[name]
            relevance[name] = torch.zeros(act.shape[:2], dtype=torch.float64, device=act.device)
            if keep_maps:
                gradients[name] = torch.zeros_like(act)
            else:
                del activations[name]
    return BatchGradients(logits.detach(), chosen, relevance, activations, gradients, input_gradient.detach(), storage)


def class_gradients(
    model: nn.Module,
    x: torch.Tensor,
    layers: Sequence[str],
    target: int | None = None,
    dims: Mapping[str, tuple[int, int, int] | None] | None = None,
    method: Method = "gradient",
) -> ClassGradients:
    """One forward of ``x`` ``(1, 3, H, W)`` with hooks on ``layers`` and one backward of a class logit
    (:func:`batch_gradients` of one image).

    Args:
        model: returns logits ``(1, classes)``; its train/eval flags and its parameters'
            ``requires_grad`` are given back after.
        x: the normalised input, on the model's device.
        layers: dotted names, each run once per forward.
        target: the class; ``None``: the predicted one (the largest logit).
        dims: per layer, where its ``(units, rows, cols)`` are (default NCHW).
        method: ``"gradient"`` (plain backward of the logit) or ``"lrp"`` (the LRP rules'
            backward of the logit's value on the target).

    Raises:
        LrpRuleError: (``"lrp"``) a module calls something without an LRP rule.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        >>> found = class_gradients(model, torch.rand(1, 3, 8, 8), ["0"], target=1)
        >>> found.layers["0"].activation.shape, found.layers["0"].relevance.shape
        (torch.Size([4, 6, 6]), torch.Size([4]))
    """
    check_method(method)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ConvscopeError(f"explain takes one image (1, 3, H, W), got {tuple(x.shape)}", hint="explain images one by one")
    if target is not None and int(target) < 0:
        raise ConvscopeError(f"class {int(target)} is not a class index", hint="give a class index from 0")
    batch = batch_gradients(model, x, layers, None if target is None else [int(target)], dims, method=method)
    found = {name: LayerGradient(name, batch.activations[name][0], batch.gradients[name][0], method) for name in layers}
    logits = batch.logits
    same = [name for name in layers if batch.storage.get(name) == (logits.untyped_storage().data_ptr(), logits.numel())
            and torch.equal(found[name].activation.flatten(), logits[0])]
    return ClassGradients(logits[0], int(batch.targets[0]), found, batch.input_gradient[0], same[0] if same else None, method)
