"""Conditional heatmaps: one unit's relevance carried down to the input pixels.

For unit ``c`` of a layer with activation ``a_c`` ``(H, W)`` and the class logit's gradient
``g_c`` there (held fixed), the heatmap is ``sum_rgb x * d(a_c . g_c) / dx`` ``(H_in, W_in)``:
gradient x input of the unit's relevance alone. By linearity the heatmaps of all units of a layer
add up to the gradient x input of the whole layer's ``sum_c a_c . g_c``; where the network below
the layer is piecewise linear without biases, a heatmap's pixels add up to ``R_c``.

With LRP (``method="lrp"``, :mod:`convscope.explain.lrp`), ``g_c`` is the relevance arriving at
the unit (CRP's conditional attribution: the layer's relevance masked to one channel), carried down
under the same rules, and the heatmap is the input's relevance itself, summed over RGB (no ``x *``).
Its pixels add up to ``R_c`` where the layers below have no biases (up to the stabiliser).

All the units of one layer share one forward of one copy of the image per unit (cut short after
the layer) and one backward whose gradient is masked to copy ``i``'s unit, in channels-last
memory (faster convolutions on the CPU). ``torch.autograd.grad(..., is_grads_batched=True)`` on one
copy would save the forwards, but its vmapped backward measured 2 to 6x slower on SqueezeNet.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from convscope.explain.relevance import Method, as_map, backward_rules, check_method
from convscope.hooks import capture, run_until_captured
from convscope.network.modes import channels_last, eval_mode, frozen


def conditional_heatmaps(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    gradient: torch.Tensor,
    units: Sequence[int],
    dims: tuple[int, int, int] | None = None,
    method: Method = "gradient",
) -> torch.Tensor:
    """The heatmap of each of ``units`` of ``layer``: ``(len(units), H_in, W_in)`` float32.

    Args:
        model: the network; eval mode and frozen parameters while inside.
        x: the normalised input ``(1, 3, H_in, W_in)``.
        gradient: ``(C, H, W)``, the class logit's gradient at the layer, or for LRP the relevance
            arriving there (:attr:`~convscope.explain.relevance.LayerGradient.gradient`).
        units: the units to draw.
        dims: where the layer's ``(units, rows, cols)`` are (default NCHW).
        method: ``"gradient"`` or ``"lrp"``: the backward pass and what the heatmap is.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.ReLU())
        >>> heat = conditional_heatmaps(model, torch.rand(1, 3, 8, 8), "0", torch.ones(4, 6, 6), [0, 2])
        >>> heat.shape
        torch.Size([2, 8, 8])
    """
    check_method(method)
    units = [int(u) for u in units]
    if not units:
        return torch.zeros(0, *x.shape[-2:])
    live = [i for i, unit in enumerate(units) if bool(gradient[unit].any())]
    heat = torch.zeros(len(units), *x.shape[-2:])
    if live:  # a unit whose gradient is zero everywhere has a zero heatmap: no pass needed
        heat[live] = _heatmaps(model, x, layer, gradient, [units[i] for i in live], dims, method).cpu()
    return heat


def _heatmaps(model: nn.Module, x: torch.Tensor, layer: str, gradient: torch.Tensor, units: list[int], dims, method: Method) -> torch.Tensor:
    captured: dict[str, torch.Tensor] = {}
    copies = x.detach().expand(len(units), -1, -1, -1).contiguous(memory_format=torch.channels_last)
    copies.requires_grad_(True)
    with eval_mode(model), frozen(model), channels_last(model, x.dim() == 4), torch.enable_grad(), backward_rules(model, method, same_rows=True):
        with capture(model, [layer], lambda name, out: captured.__setitem__(name, out), stop_after_last=True):
            run_until_captured(model, copies)
        out = as_map(captured[layer], dims)  # (n, C, H, W)
        masks = torch.zeros_like(out)
        g = gradient.to(out.device, out.dtype)
        for i, unit in enumerate(units):
            masks[i, unit] = g[unit]
        (grads,) = torch.autograd.grad(out, copies, grad_outputs=masks)
    if method == "lrp":  # the input's relevance itself
        return grads.sum(dim=1).float().contiguous()
    return (copies.detach() * grads).sum(dim=1).float().contiguous()  # (n, H_in, W_in)
