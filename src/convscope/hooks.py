"""Capture the outputs of named layers with forward hooks that never outlive the call.

:func:`capture` is the one place convscope touches ``register_forward_hook``:
hooks are registered on entry and removed in ``finally``, on success and on
exception alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from convscope.errors import LayerError

#: Called as ``fn(layer_name, output)`` with the layer's output tensor ``(N, C, H, W)``.
OutputFn = Callable[[str, torch.Tensor], object]


class StopForward(Exception):
    """Raised by a hook to end a forward pass early, once every layer was seen."""


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name`` (dotted, e.g. ``features.3``), or a LayerError."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        raise LayerError(
            f"the model has no layer named {name!r}",
            hint="run `convscope layers MODEL` to list the layers you can pick",
        )
    return modules[name]


@contextmanager
def capture(
    model: nn.Module,
    layers: Sequence[str],
    fn: OutputFn,
    *,
    stop_after_last: bool = False,
    strict: bool = True,
) -> Iterator[None]:
    """Call ``fn(layer, output)`` for every output of the named layers while inside.

    The hook runs inside the forward pass, so it sees a layer's output before any
    later in-place operation (``nn.ReLU(inplace=True)``) changes it. What ``fn``
    returns is ignored; the layer's output goes on unchanged.

    A layer that runs twice in one forward (a shared module) raises a LayerError,
    since its two outputs would have the same name, and so does a layer whose output
    is not a tensor. With ``strict=False`` (layer discovery) ``fn`` is called for
    every call and every output, whatever it is.

    With ``stop_after_last``, the forward pass is cut short (``StopForward``) once
    every layer was seen, saving the rest of the network; the caller must then
    run the model through :func:`run_until_captured`, which swallows it.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> seen = {}
        >>> with capture(model, ["0"], lambda name, out: seen.setdefault(name, out.shape)):
        ...     _ = model(torch.zeros(1, 3, 8, 8))
        >>> seen["0"]
        torch.Size([1, 4, 6, 6])
    """
    modules = [get_module(model, name) for name in layers]
    seen: set[str] = set()
    handles = []

    def make_hook(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if name in seen and strict:
                raise LayerError(
                    f"layer {name!r} runs more than once in one forward pass (a shared module), "
                    "so its outputs cannot be told apart",
                    hint="pick another layer; `convscope layers MODEL` lists them",
                )
            if not isinstance(output, torch.Tensor) and strict:
                raise LayerError(
                    f"layer {name!r} returns {type(output).__name__}, not a tensor",
                    hint="pick a layer whose output is one (N, C, H, W) tensor",
                )
            seen.add(name)
            fn(name, output)
            if stop_after_last and len(seen) == len(layers):
                raise StopForward

        return hook

    try:
        # A new forward pass of the whole model starts a new round of layers.
        handles.append(model.register_forward_pre_hook(lambda module, inputs: seen.clear()))
        for name, module in zip(layers, modules):
            handles.append(module.register_forward_hook(make_hook(name)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_until_captured(model: nn.Module, x: torch.Tensor) -> None:
    """Run ``model(x)``, swallowing the :class:`StopForward` that ends it early."""
    try:
        model(x)
    except StopForward:
        pass
