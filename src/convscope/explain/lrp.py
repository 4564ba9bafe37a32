"""LRP with zennit's ``EpsilonPlusFlat`` composite (what CRP uses), on the projections' one
modified-backward mechanism (:func:`convscope.project.rules.modified_backward`).

In zennit's formulation the "gradient" that reaches a tensor in the backward pass *is* its
relevance: each rule maps the relevance ``R`` ``(N, C_out, ...)`` at a call's output to the
relevance at its input. With ``stab(z) = z + eps * sign(z)``, ``sign(0) = 1``, ``eps = 1e-6``
(``zennit.core.stabilize``):

- **Flat** for the first layer (the first ``nn.Conv*`` or ``nn.Linear`` in ``named_modules()``
  order, as zennit's ``SpecialFirstLayerMapComposite`` picks it): weights all 1, bias 0, input
  all 1; ``R_in = W1^T (R / stab(W1 1))``, whatever the input.
- **ZPlus** for every other convolution: ``z = conv(x+, W+, b+) + conv(x-, W-)`` (the bias's
  positive part only with the positive inputs), ``s = R / stab(z)``,
  ``R_in = x+ * conv^T(s, W+) + x- * conv^T(s, W-)``.
- **Epsilon** for every other linear layer: ``z = W x + b``, ``R_in = x * W^T (R / stab(z))``.
- **Norm** (epsilon with unmodified pooling) for ``AvgPool*`` and ``AdaptiveAvgPool*``.
- **Pass** for ReLU (``R_in = R``), also in-place and functional.
- Plain gradient, which moves relevance without changing it, for max-pooling (to the
  maximum), dropout in eval mode, ``torch.cat``, flatten, view, reshape and the like.

Any other call that produces a tensor in the graph inside the model (batch norm, GELU, SiLU,
residual additions, layer norm, a mean, ...) has no rule: it raises :class:`LrpRuleError`
naming the module, at the forward, before anything is computed. Unlike zennit, the rules
follow the *calls* (``F.conv2d`` in a custom forward gets ZPlus too), not only module types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import ConvscopeError
from convscope.project.rules import Route, modified_backward, relu_routes

#: zennit's default stabiliser (``zennit.core.stabilize``, ``Epsilon(epsilon=1e-6)``).
EPSILON = 1e-6


class LrpRuleError(ConvscopeError):
    """A module on the path calls something that LRP (epsilon-plus-flat) has no rule for."""


def stabilize(z: torch.Tensor, epsilon: float = EPSILON) -> torch.Tensor:
    """``z + epsilon * sign(z)`` with ``sign(0) = 1`` (zennit's ``stabilize``), same shape and values."""
    return torch.where(z >= 0, z + epsilon, z - epsilon)


def _params(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor | None, tuple, dict]:
    """``(weight, bias, rest_args, rest_kwargs)`` of a conv / linear call's arguments after the input."""
    kwargs = dict(kwargs)
    weight = args[0] if args else kwargs.pop("weight")
    bias = args[1] if len(args) > 1 else kwargs.pop("bias", None)
    return weight, bias, tuple(args[2:]), kwargs


_CONV_INPUT_GRAD: dict[Callable, Callable] = {
    F.conv1d: torch.nn.grad.conv1d_input, F.conv2d: torch.nn.grad.conv2d_input, F.conv3d: torch.nn.grad.conv3d_input,
}


def _transpose(func: Callable, shape: torch.Size, weight: torch.Tensor, s: torch.Tensor, rest: tuple, kwargs: dict) -> torch.Tensor:
    """``W^T s`` ``shape``: the vector-Jacobian product of the linear map ``func(., weight)`` (no bias) at ``s``."""
    if func is F.linear:
        return s @ weight
    names, defaults = ("stride", "padding", "dilation", "groups"), (1, 0, 1, 1)
    conv = list(rest) + [kwargs.get(n, d) for n, d in zip(names[len(rest):], defaults[len(rest):])]
    if not isinstance(conv[1], str):
        return _CONV_INPUT_GRAD[func](shape, weight, s, *conv)
    x = s.new_zeros(shape).requires_grad_(True)  # padding "same" / "valid": let autograd work it out
    (g,) = torch.autograd.grad(func(x, weight, None, *rest, **kwargs), x, s)
    return g


class _LrpRule(torch.autograd.Function):
    """``func(x, *args, **kwargs)`` forward; backward by ``rule`` (``"flat"``, ``"zplus"``,
    ``"epsilon"``, ``"norm"``, see the module docstring); no gradients for the parameters.
    ``same_rows``: every row of ``x`` is the same image, so the denominators come from row 0."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rule: str, func: Callable, args: tuple, kwargs: dict, same_rows: bool) -> torch.Tensor:
        ctx.rule, ctx.func, ctx.args, ctx.kwargs, ctx.same_rows = rule, func, args, kwargs, same_rows
        ctx.save_for_backward(x)
        return func(x, *args, **kwargs)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None, None]:
        (x,) = ctx.saved_tensors
        # The rules' own torch calls must not be routed again: no torch-function modes in here.
        with torch._C.DisableTorchFunction():
            r_in = _RULES[ctx.rule](x.detach(), relevance, ctx.func, ctx.args, ctx.kwargs, ctx.same_rows)
        return r_in, None, None, None, None, None


def _norm(x: torch.Tensor, relevance: torch.Tensor, func: Callable, args: tuple, kwargs: dict, same_rows: bool) -> torch.Tensor:
    """Norm (pooling): ``x * P^T (R / stab(P x))``."""
    with torch.enable_grad():
        x = x.requires_grad_(True)
        z = func(x, *args, **kwargs)
        (g,) = torch.autograd.grad(z, x, relevance / stabilize(z))
    return x.detach() * g


def _epsilon(x: torch.Tensor, relevance: torch.Tensor, func: Callable, args: tuple, kwargs: dict, same_rows: bool) -> torch.Tensor:
    """Epsilon: ``x * W^T (R / stab(W x + b))``."""
    weight, _, rest, rest_kwargs = _params(args, kwargs)
    z = func(x[:1] if same_rows else x, *args, **kwargs)
    return x * _transpose(func, x.shape, weight, relevance / stabilize(z), rest, rest_kwargs)


def _flat(x: torch.Tensor, relevance: torch.Tensor, func: Callable, args: tuple, kwargs: dict, same_rows: bool) -> torch.Tensor:
    """Flat: ``1^T (R / stab(1 1))`` with all weights and inputs 1 and no bias (the same for every row)."""
    weight, _, rest, rest_kwargs = _params(args, kwargs)
    ones = torch.ones_like(weight)
    z = func(torch.ones_like(x[:1]), ones, None, *rest, **rest_kwargs)
    return _transpose(func, x.shape, ones, relevance / stabilize(z), rest, rest_kwargs)


def _zplus(x: torch.Tensor, relevance: torch.Tensor, func: Callable, args: tuple, kwargs: dict, same_rows: bool) -> torch.Tensor:
    """ZPlus (alpha 1, beta 0): positive inputs through positive weights (with ``b+``), negative
    inputs through negative weights (no bias), one shared denominator."""
    weight, bias, rest, rest_kwargs = _params(args, kwargs)
    rows = x[:1] if same_rows else x
    positive = weight.clamp(min=0)
    signed = bool(x.amin() < 0)  # after a ReLU the negative half is exactly 0 (zennit computes it anyway)
    z = func(rows.clamp(min=0) if signed else rows, positive, None if bias is None else bias.clamp(min=0), *rest, **rest_kwargs)
    if signed:
        negative = weight.clamp(max=0)
        z = z + func(rows.clamp(max=0), negative, None, *rest, **rest_kwargs)
    s = relevance / stabilize(z)
    if not signed:
        return x * _transpose(func, x.shape, positive, s, rest, rest_kwargs)
    return (x.clamp(min=0) * _transpose(func, x.shape, positive, s, rest, rest_kwargs)
            + x.clamp(max=0) * _transpose(func, x.shape, negative, s, rest, rest_kwargs))


_RULES: dict[str, Callable[..., torch.Tensor]] = {"flat": _flat, "zplus": _zplus, "epsilon": _epsilon, "norm": _norm}

_CONV: tuple[Callable, ...] = (F.conv1d, F.conv2d, F.conv3d)
_LINEAR: tuple[Callable, ...] = (F.linear,)
_AVG_POOL: tuple[Callable, ...] = (
    F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d,
)
#: Calls whose plain gradient moves relevance without changing it (or makes no tensor in the graph).
_PLAIN: frozenset[Callable] = frozenset({
    torch.cat, torch.concat, torch.concatenate, torch.stack, torch.flatten, torch.Tensor.flatten, torch.unflatten,
    torch.Tensor.unflatten, torch.Tensor.view, torch.Tensor.view_as, torch.reshape, torch.Tensor.reshape,
    torch.Tensor.reshape_as, torch.permute, torch.Tensor.permute, torch.transpose, torch.Tensor.transpose,
    torch.squeeze, torch.Tensor.squeeze, torch.unsqueeze, torch.Tensor.unsqueeze, torch.Tensor.contiguous,
    torch.clone, torch.Tensor.clone, torch.Tensor.__getitem__, torch.split, torch.Tensor.split, torch.chunk,
    torch.Tensor.chunk, torch.narrow, torch.Tensor.narrow, torch.Tensor.select, torch.Tensor.to, torch.Tensor.float,
    torch.Tensor.double, torch.Tensor.detach, torch.Tensor.requires_grad_,
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d,
})  # fmt: skip
_DROPOUT: frozenset[Callable] = frozenset({F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout})


def first_layer(model: nn.Module) -> str | None:
    """The dotted name of the first ``nn.Conv*`` / ``nn.Linear`` in ``named_modules()`` order (the
    Flat rule's layer, as in zennit's ``SpecialFirstLayerMapComposite``), or ``None``."""
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
    return next((name for name, module in model.named_modules() if isinstance(module, kinds)), None)


def _routes(first: str | None, same_rows: bool) -> dict[Callable, Route]:
    def rule_for(rule: str, on_first: str | None = None) -> Route:
        def route(func: Callable, args: tuple, kwargs: dict, where: str | None) -> torch.Tensor:
            if not args:
                kwargs = dict(kwargs)
                x = kwargs.pop("input")
            else:
                x, args = args[0], args[1:]
            chosen = on_first if on_first is not None and where is not None and where == first else rule
            return _LrpRule.apply(x, chosen, func, tuple(args), kwargs, same_rows)

        return route

    return {
        **relu_routes("pass"),
        **dict.fromkeys(_CONV, rule_for("zplus", "flat")),
        **dict.fromkeys(_LINEAR, rule_for("epsilon", "flat")),
        **dict.fromkeys(_AVG_POOL, rule_for("norm")),
    }


def _refuse_unruled(model: nn.Module) -> Callable:
    modules = dict(model.named_modules())

    def check(func: Callable, args: tuple, kwargs: dict, result: Any, where: str | None) -> None:
        if where is None or func in _PLAIN:  # outside the model's forward, or relevance just moves
            return
        if func in _DROPOUT:
            training = args[2] if len(args) > 2 else kwargs.get("training", True)
            if not training:
                return
        outputs = result if isinstance(result, (tuple, list)) else (result,)
        in_graph = any(isinstance(t, torch.Tensor) and t.requires_grad for t in outputs)
        if func is torch.Tensor.__setitem__ and args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
            in_graph = True  # an in-place write into the graph
        if not in_graph:
            return
        module = modules.get(where if where != "<model>" else "", None)
        kind = type(module).__name__ if module is not None else "?"
        fname = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
        raise LrpRuleError(
            f"LRP (epsilon-plus-flat) has no rule for {fname} in module {where!r} ({kind}); it has rules for "
            "convolutions, linear layers, ReLU, max- and average-pooling, dropout, cat and reshapes only",
            hint="use --method gradient (method='gradient'), which works on any network",
        )

    return check


@contextmanager
def lrp_rules(model: nn.Module, same_rows: bool = False) -> Iterator[None]:
    """While inside, the backward pass of ``model`` is LRP epsilon-plus-flat: the "gradient"
    reaching any tensor of the forward is its relevance.

    A call without a rule raises :class:`LrpRuleError` during the forward. The mode and the
    hooks go in ``finally``; the model is not changed. With ``same_rows`` every row of the input
    batch must be the same image (the copies of a heatmap pass): each rule's denominator is
    computed once, on row 0, and shared.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
        >>> x = torch.rand(1, 3, 8, 8, requires_grad=True)
        >>> with lrp_rules(model):
        ...     y = model(x)
        ...     (r,) = torch.autograd.grad(y, x, torch.ones_like(y))
        >>> r.shape
        torch.Size([1, 3, 8, 8])
    """
    with modified_backward(model, _routes(first_layer(model), same_rows), _refuse_unruled(model), purpose="LRP"):
        yield
