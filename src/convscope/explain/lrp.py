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
    """``z + epsilon * sign(z)`` with ``sign(0) = 1`` (zennit's ``stabilize``), same shape."""
    return z + ((z == 0).to(z) + z.sign()) * epsilon


def _params(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor | None, tuple, dict]:
    """``(weight, bias, rest_args, rest_kwargs)`` of a conv / linear call's arguments after the input."""
    kwargs = dict(kwargs)
    weight = args[0] if args else kwargs.pop("weight")
    bias = args[1] if len(args) > 1 else kwargs.pop("bias", None)
    return weight, bias, tuple(args[2:]), kwargs


class _LrpRule(torch.autograd.Function):
    """``func(x, *args, **kwargs)`` forward; backward by ``rule`` (``"flat"``, ``"zplus"``,
    ``"epsilon"``, ``"norm"``, see the module docstring); no gradients for the parameters."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rule: str, func: Callable, args: tuple, kwargs: dict) -> torch.Tensor:
        ctx.rule, ctx.func, ctx.args, ctx.kwargs = rule, func, args, kwargs
        ctx.save_for_backward(x)
        return func(x, *args, **kwargs)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None]:
        (x,) = ctx.saved_tensors
        # The rules' own torch calls must not be routed again: no torch-function modes in here.
        with torch._C.DisableTorchFunction(), torch.enable_grad():
            r_in = _RULES[ctx.rule](x.detach(), relevance, ctx.func, ctx.args, ctx.kwargs)
        return r_in, None, None, None, None


def _vjp(func: Callable, x: torch.Tensor, args: tuple, kwargs: dict, relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, W^T (R / stab(z)))`` for the linear map ``z = func(x, ...)`` (its vector-Jacobian product)."""
    x = x.requires_grad_(True)
    z = func(x, *args, **kwargs)
    (g,) = torch.autograd.grad(z, x, relevance / stabilize(z))
    return z, g


def _epsilon(x: torch.Tensor, relevance: torch.Tensor, func: Callable, args: tuple, kwargs: dict) -> torch.Tensor:
    """Epsilon and Norm: ``x * W^T (R / stab(W x + b))``."""
    _, g = _vjp(func, x, args, kwargs, relevance)
    return x * g


def _flat(x: torch.Tensor, relevance: torch.Tensor, func: Callable, args: tuple, kwargs: dict) -> torch.Tensor:
    """Flat: ``1^T (R / stab(1 1))`` with all weights and inputs 1 and no bias."""
    weight, bias, rest, rest_kwargs = _params(args, kwargs)
    ones = torch.ones_like(x)
    _, g = _vjp(func, ones, (torch.ones_like(weight), None if bias is None else torch.zeros_like(bias), *rest), rest_kwargs, relevance)
    return g


def _zplus(x: torch.Tensor, relevance: torch.Tensor, func: Callable, args: tuple, kwargs: dict) -> torch.Tensor:
    """ZPlus (alpha 1, beta 0): positive inputs through positive weights (with ``b+``), negative
    inputs through negative weights (no bias), one shared denominator."""
    weight, bias, rest, rest_kwargs = _params(args, kwargs)
    xp = x.clamp(min=0).requires_grad_(True)
    zp = func(xp, weight.clamp(min=0), None if bias is None else bias.clamp(min=0), *rest, **rest_kwargs)
    if not bool((x < 0).any()):  # after a ReLU: the negative half is exactly 0 (zennit computes it anyway)
        (gp,) = torch.autograd.grad(zp, xp, relevance / stabilize(zp))
        return xp.detach() * gp
    xn = x.clamp(max=0).requires_grad_(True)
    zn = func(xn, weight.clamp(max=0), None, *rest, **rest_kwargs)
    s = relevance / stabilize(zp + zn)
    gp, gn = torch.autograd.grad((zp, zn), (xp, xn), (s, s))
    return xp.detach() * gp + xn.detach() * gn


_RULES: dict[str, Callable[..., torch.Tensor]] = {"flat": _flat, "zplus": _zplus, "epsilon": _epsilon, "norm": _epsilon}

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


def _routes(first: str | None) -> dict[Callable, Route]:
    def rule_for(rule: str, on_first: str | None = None) -> Route:
        def route(func: Callable, args: tuple, kwargs: dict, where: str | None) -> torch.Tensor:
            if not args:
                kwargs = dict(kwargs)
                x = kwargs.pop("input")
            else:
                x, args = args[0], args[1:]
            chosen = on_first if on_first is not None and where is not None and where == first else rule
            return _LrpRule.apply(x, chosen, func, tuple(args), kwargs)

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
def lrp_rules(model: nn.Module) -> Iterator[None]:
    """While inside, the backward pass of ``model`` is LRP epsilon-plus-flat: the "gradient"
    reaching any tensor of the forward is its relevance.

    A call without a rule raises :class:`LrpRuleError` during the forward. The mode and the
    hooks go in ``finally``; the model is not changed.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
        >>> x = torch.rand(1, 3, 8, 8, requires_grad=True)
        >>> with lrp_rules(model):
        ...     y = model(x)
        ...     (r,) = torch.autograd.grad(y, x, torch.ones_like(y))
        >>> r.shape
        torch.Size([1, 3, 8, 8])
    """
    with modified_backward(model, _routes(first_layer(model)), _refuse_unruled(model), purpose="LRP"):
        yield
