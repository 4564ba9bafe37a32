"""The weights view of a direct convolution: Microscope's and Circuits' kernel per pair of units.

Where layer ``upper`` is an ``nn.Conv2d`` (``groups == 1``) whose input is layer ``below``'s output
through channel-wise operations only (ReLU, BatchNorm, pooling, dropout: channel ``c`` of the
conv's input depends on channel ``c`` of ``below``'s output and on nothing else), upper unit
``u`` sees lower unit ``c`` only through the kernel slice ``conv.weight[u, c]`` ``(kh, kw)``:
that slice *is* the connection, and the pair is *direct*.

:func:`direct_conv` decides it, first from the module (a ``Conv2d``, one group, ``in_channels``
equal to ``below``'s units) and then numerically, on an input batch ``x``, with
:func:`~convscope.circuits.substitute.substituted` (``below``'s output replaced) and a forward
pre-hook on the conv that records its input (removed in ``finally``):

1. the conv runs once per forward (``upper.calls``), after ``below``, and its input has ``below``'s channel count;
2. the conv's input is a function of ``below``'s output alone: with ``below``'s output of ``x``
   put in place of that of another input (random), the conv's input is the same as for ``x``
   (a skip connection from before ``below`` breaks this);
3. a large positive perturbation of one lower channel ``c`` (for a few probe channels) changes
   the conv's input in channel ``c`` and in no other (a 1x1 mixing conv, a residual add of a
   mixed branch or a concatenation breaks this).

A pair that passes is direct; its kernels come from :func:`kernels`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from convscope.circuits.substitute import substituted
from convscope.errors import ConvscopeError
from convscope.hooks import StopForward, get_module
from convscope.network.layers import LayerInfo
from convscope.network.modes import eval_mode, frozen

#: Lower channels perturbed to check that the path is channel-wise (first, middle, last: at most 3).
PROBES = 3
#: Relative tolerance for "unchanged" (the other channels' arithmetic is the same, so bit-equal in practice).
RTOL = 1e-5


def direct_conv(model: nn.Module, below: LayerInfo, upper: LayerInfo, x: torch.Tensor) -> nn.Conv2d | None:
    """The ``nn.Conv2d`` of ``upper`` when ``below`` -> ``upper`` is direct (see the module's
    docstring), else ``None``.

    Args:
        model: the network (its train/eval flags and ``requires_grad`` are given back after).
        below: the lower layer.
        upper: the upper layer (it must be the conv module itself).
        x: ``(n, 3, H, W)`` model inputs the check runs on (a few images suffice; on the model's device).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 2, 3))
        >>> lower, upper = LayerInfo("0", "Conv2d", (4, 14, 14), None), LayerInfo("3", "Conv2d", (2, 5, 5), None)
        >>> direct_conv(net, lower, upper, torch.rand(2, 3, 16, 16)) is net[3]
        True
        >>> mixed = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 2, 3))
        >>> direct_conv(mixed, lower, LayerInfo("2", "Conv2d", (2, 12, 12), None), torch.rand(2, 3, 16, 16)) is None
        True
    """
    conv = get_module(model, upper.name)
    if upper.calls != 1:  # a shared conv: its inputs at its calls differ
        return None
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1 or conv.in_channels != below.units:
        return None
    get_module(model, below.name)  # an unknown lower layer is a LayerError, not "not direct"
    with eval_mode(model), frozen(model), torch.no_grad():
        plain = _conv_inputs(model, below.name, conv, x, None)
        if plain is None:
            return None
        lower, seen = plain
        if seen.shape[1] != below.units or lower.dim() != 4 or lower.shape[1] != below.units:
            return None
        generator = torch.Generator(device="cpu").manual_seed(0)
        other = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device) * (x.std() + 1)
        swapped = _conv_inputs(model, below.name, conv, other, lambda out: lower.clone())
        if swapped is None or not _same(swapped[1], seen):
            return None
        scale = float(lower.abs().max()) + 1.0
        channels = sorted({0, below.units // 2, below.units - 1})[:PROBES]
        for c in channels:
            noise = scale * (1.0 + torch.rand(lower[:, c].shape, generator=generator, dtype=lower.dtype).to(lower.device))

            def bump(out: torch.Tensor, c: int = c, noise: torch.Tensor = noise) -> torch.Tensor:
                changed = lower.clone()
                changed[:, c] += noise
                return changed

            found = _conv_inputs(model, below.name, conv, x, bump)
            if found is None:
                return None
            others = [k for k in range(below.units) if k != c]
            if not _same(found[1][:, others], seen[:, others]) or _same(found[1][:, c], seen[:, c]):
                return None
    return conv


def _conv_inputs(model: nn.Module, below: str, conv: nn.Conv2d, x: torch.Tensor, replace) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One forward of ``x``, cut at the conv: ``below``'s output (after ``replace`` where given)
    and the conv's input (both cloned), or ``None`` where the conv does not run exactly once after
    ``below`` (or its input is not one 4-d tensor)."""
    seen: dict[str, torch.Tensor] = {}

    def record(out: torch.Tensor) -> torch.Tensor:
        result = replace(out) if replace is not None else out
        seen["below"] = result.detach().clone()
        return result

    def pre_hook(module: nn.Module, inputs: tuple) -> None:
        if len(inputs) == 1 and isinstance(inputs[0], torch.Tensor):
            seen["input"] = inputs[0].detach().clone()
        raise StopForward  # nothing after the conv's input is needed

    handle = conv.register_forward_pre_hook(pre_hook)
    try:
        with substituted(model, below, record):
            try:
                model(x)
            except StopForward:
                pass
    finally:
        handle.remove()
    if "below" not in seen or "input" not in seen or seen["input"].dim() != 4:
        return None
    return seen["below"], seen["input"]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``a`` equals ``b`` (same shape) to :data:`RTOL` of ``b``'s largest magnitude."""
    if a.shape != b.shape:
        return False
    scale = float(b.abs().max()) if b.numel() else 0.0
    return bool((a - b).abs().max() <= RTOL * max(scale, 1e-12)) if b.numel() else True


def kernels(conv: nn.Conv2d, unit: int, inputs: Sequence[int]) -> np.ndarray:
    """The kernel slices ``conv.weight[unit, c]`` of lower units ``inputs``: ``(len(inputs), kh, kw)`` float32.

    Raises:
        ConvscopeError: ``unit`` or an input is not a channel of the conv.

    Example:
        >>> conv = nn.Conv2d(3, 2, 2)
        >>> kernels(conv, 1, [2, 0]).shape
        (2, 2, 2)
        >>> bool((kernels(conv, 1, [2])[0] == conv.weight[1, 2].detach().numpy()).all())
        True
    """
    outs, ins = conv.weight.shape[:2]
    if not 0 <= int(unit) < outs:
        raise ConvscopeError(f"unit {unit} is not one of the conv's {outs} output channels", hint=f"pick a unit in 0..{outs - 1}")
    bad = [c for c in inputs if not 0 <= int(c) < ins]
    if bad:
        raise ConvscopeError(f"inputs {bad} are not among the conv's {ins} input channels", hint=f"pick lower units in 0..{ins - 1}")
    index = torch.as_tensor([int(c) for c in inputs], dtype=torch.long, device=conv.weight.device)
    return conv.weight.detach()[int(unit)].index_select(0, index).float().cpu().numpy().reshape(len(inputs), *conv.weight.shape[2:])
