"""Run a model with one layer's output replaced, and stop it at another: the one mechanism under
a unit's inputs (:mod:`~convscope.circuits.inputs`) and ablation (:mod:`~convscope.circuits.ablation`).

:func:`substituted` makes a layer's forward hook return another tensor, so everything after the
layer runs on it. Replacing the output by one of another batch size (a map repeated once per
hit, or once per ablated unit) runs the rest of the network on that batch, with the layers
below run only once; that holds where nothing after the layer reads a tensor from before it
(a skip connection that jumps over it): such a network fails with a shape error or, with a
batch of one below, would broadcast. Callers therefore check the fast way against the plain
one on their first batch and fall back (:func:`agrees`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from convscope.errors import LayerError
from convscope.hooks import get_module

#: ``fn(output) -> replacement``: what the layer passes on instead of its output.
ReplaceFn = Callable[[torch.Tensor], torch.Tensor]


@contextmanager
def substituted(model: nn.Module, layer: str, replace: ReplaceFn) -> Iterator[None]:
    """While inside, every output of ``layer`` is passed on as ``replace(output)``.

    The hook is removed in ``finally``. A layer whose output is not a tensor raises a LayerError.

    Example:
        >>> model = nn.Sequential(nn.Identity(), nn.ReLU())
        >>> with substituted(model, "0", lambda out: -out):
        ...     model(torch.ones(1, 2))
        tensor([[0., 0.]])
    """
    module = get_module(model, layer)

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, torch.Tensor):
            raise LayerError(f"layer {layer!r} returns {type(output).__name__}, not a tensor", hint="pick a layer whose output is one tensor")
        return replace(output)

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def agrees(fast: torch.Tensor, plain: torch.Tensor, rtol: float = 1e-4) -> bool:
    """Whether ``fast`` equals ``plain`` (same shape) to ``rtol`` of ``plain``'s largest magnitude
    (the fast way's summation order differs, so not bit for bit).

    Example:
        >>> agrees(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.00001])), agrees(torch.zeros(2), torch.ones(2))
        (True, False)
    """
    if fast.shape != plain.shape or not torch.isfinite(fast).all():
        return False
    scale = plain.abs().max().item() if plain.numel() else 0.0
    return bool((fast - plain).abs().max().item() <= rtol * max(scale, 1e-12)) if plain.numel() else True
