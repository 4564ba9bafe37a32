"""One modified-ReLU mechanism for the deconvnet and guided-backprop rules.

Both rules change only what a ReLU does in the backward pass (convolutions and
max-pooling keep their ordinary gradients: transposed filters, forward switches):

- ``"deconvnet"`` (Zeiler & Fergus 2014): ``grad_in = relu(grad_out)``, ignoring
  the sign of the forward input;
- ``"guided"`` (Springenberg et al. 2015): ``grad_in = relu(grad_out) * (input > 0)``.

A third rule serves feature visualisation (not projections): ``"redirected"`` (Lucid's
redirected ReLU) keeps the ordinary gradient, except for a sample whose ordinary
gradient through this ReLU is zero everywhere (every input it would use is negative):
there it lets through the part of ``grad_out`` that would raise the input, so an
optimisation that starts where the unit is silent is not stuck at zero.

:func:`modified_relus` swaps every ReLU call made while inside it, ``nn.ReLU``
(``inplace=True`` too), ``F.relu``, ``torch.relu``, ``Tensor.relu`` and their
in-place forms, for one custom autograd function with a flag. It does so with a
:class:`torch.overrides.TorchFunctionMode`, so functional calls that module hooks
cannot see are covered as well.

The mechanism itself is general: :func:`modified_backward` routes any torch functions
(given as a table of :data:`Route` s) to replacements, typically custom autograd functions
whose backward is a rule, and lets a :data:`Check` see every other call made inside the
model, knowing which module (dotted name) makes it. The ReLU rules here and LRP
(:mod:`convscope.explain.lrp`: conv, linear, pools and ReLU) are two tables on it. A fourth
ReLU rule, ``"pass"`` (``grad_in = grad_out``), is zennit's ``Pass`` rule for LRP.

Other activations (GELU, SiLU, LeakyReLU, Hardswish, sigmoid, ...) have no
definition under these rules. They are left alone, so the picture there is a
plain gradient; the first call inside each module raises one
:class:`ProjectionRuleWarning` naming that module (once per module per
``with`` block). TorchScript models are refused: their ReLUs cannot be swapped.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from convscope.errors import ConvscopeError, ModelError

Rule = Literal["deconvnet", "guided", "redirected"]
"""How a ReLU passes the backward signal: ``"deconvnet"`` (Zeiler & Fergus), ``"guided"``
(Springenberg et al.) or ``"redirected"`` (Lucid's, for optimisation; see the module docstring)."""
#: The projection rules (``"redirected"`` is for optimisation, see the module docstring).
RULES: tuple[str, ...] = ("deconvnet", "guided")
RELU_RULES: tuple[str, ...] = (*RULES, "redirected")
#: A replacement for a torch function: ``route(func, args, kwargs, where)`` returns what the call
#: returns; ``where`` is the dotted name of the innermost module running (``"<model>"`` for the
#: model's own forward), or ``None`` outside the model's forward.
Route = Callable[[Callable, tuple, dict, "str | None"], Any]
#: Sees every call that no route took, after it ran: ``check(func, args, kwargs, result, where)``;
#: it may warn or raise (``where`` as for :data:`Route`).
Check = Callable[[Callable, tuple, dict, Any, "str | None"], None]


class ProjectionRuleWarning(UserWarning):
    """An activation other than ReLU ran; the rule is not applied there (plain gradient)."""


class _ModifiedRelu(torch.autograd.Function):
    """ReLU forward; backward by ``rule`` (see the module docstring)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, rule: str, inplace: bool) -> torch.Tensor:
        if inplace:
            ctx.mark_dirty(x)
            out = x.clamp_min_(0)
        else:
            out = x.clamp_min(0)
        ctx.rule = rule
        if rule not in ("deconvnet", "pass"):
            ctx.save_for_backward(out > 0)  # out > 0 exactly where x > 0, also after an in-place ReLU
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        if ctx.rule == "pass":
            return grad_out, None, None
        if ctx.rule == "deconvnet":
            return grad_out.clamp_min(0), None, None
        (positive,) = ctx.saved_tensors
        if ctx.rule == "guided":
            return grad_out.clamp_min(0) * positive, None, None
        plain = grad_out * positive
        if plain.dim() < 2:  # one sample
            return (plain if plain.any() else grad_out * (positive | (grad_out < 0))), None, None
        stuck = ~plain.flatten(1).any(dim=1)  # samples (dim 0) whose gradient stops here
        if stuck.any():
            # Descent lowers an input where grad_out > 0: on a negative input only the part that raises it passes.
            g, p = grad_out[stuck], positive[stuck]
            plain[stuck] = g * (p | (g < 0))
        return plain, None, None


_RELU: frozenset[Callable] = frozenset({torch.relu, F.relu, torch.Tensor.relu})
_RELU_INPLACE: frozenset[Callable] = frozenset({torch.relu_, F.relu_, torch.Tensor.relu_})
_UNSUPPORTED: frozenset[Callable] = frozenset(
    {
        F.gelu, F.silu, F.mish, F.hardswish, F.hardsigmoid, F.elu, F.elu_, F.selu, F.celu,
        F.leaky_relu, F.leaky_relu_, F.prelu, F.rrelu, F.softplus, F.hardtanh, F.hardtanh_,
        F.relu6, F.logsigmoid, F.softsign, F.tanhshrink, F.glu,
        torch.sigmoid, torch.tanh, torch.Tensor.sigmoid, torch.Tensor.tanh,
        torch.sigmoid_, torch.tanh_, torch.Tensor.sigmoid_, torch.Tensor.tanh_,
    }
)  # fmt: skip


def relu_routes(rule: str) -> dict[Callable, Route]:
    """The routes that send every ReLU call (functional, method, in-place) to the ``rule``'s
    autograd function (one of :data:`RELU_RULES` or ``"pass"``)."""

    def relu(func: Callable, args: tuple, kwargs: dict, where: str | None) -> torch.Tensor:
        inplace = bool(args[1] if len(args) > 1 else kwargs.get("inplace", False))
        return _ModifiedRelu.apply(args[0] if args else kwargs["input"], rule, inplace)

    def relu_(func: Callable, args: tuple, kwargs: dict, where: str | None) -> torch.Tensor:
        return _ModifiedRelu.apply(args[0] if args else kwargs["input"], rule, True)

    return {**dict.fromkeys(_RELU, relu), **dict.fromkeys(_RELU_INPLACE, relu_)}


class RuleMode(TorchFunctionMode):
    """Routes the calls in ``routes`` to their replacements; hands every other call to ``check``.

    ``running`` is the stack of module names that :func:`_module_names` keeps (empty: not tracked).
    Inside ``__torch_function__`` the mode is off, so a route's own torch calls run plainly.
    """

    def __init__(self, routes: Mapping[Callable, Route], running: list[str], check: Check | None = None) -> None:
        super().__init__()
        self.routes = routes
        self.running = running
        self.check = check

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        where = self.running[-1] if self.running else None
        route = self.routes.get(func)
        if route is not None:
            return route(func, args, kwargs, where)
        result = func(*args, **kwargs)
        if self.check is not None:
            self.check(func, args, kwargs, result, where)
        return result


def _warn_other_activations(rule: str) -> Check:
    """A :data:`Check` that warns once per module where an activation other than ReLU runs."""
    warned: set[str] = set()

    def check(func: Callable, args: tuple, kwargs: dict, result: Any, where: str | None) -> None:
        if func not in _UNSUPPORTED:
            return
        where = where or "<model>"
        if where in warned:
            return
        warned.add(where)
        fname = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
        warnings.warn(
            f"the {rule} rule is defined for ReLU only; module {where!r} calls {fname}, "
            "so the projection passes a plain gradient through it",
            ProjectionRuleWarning,
            stacklevel=3,
        )

    return check


@contextmanager
def _module_names(model: nn.Module) -> Iterator[list[str]]:
    """A stack of the dotted names of the modules running now (innermost last)."""
    running: list[str] = []
    handles = []

    def push(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple) -> None:
            if module is model:
                running.clear()  # a new forward pass; an earlier one may have stopped early
            running.append(name or "<model>")

        return hook

    def pop(module: nn.Module, inputs: tuple, output: Any) -> None:
        if running:
            running.pop()

    try:
        for name, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(push(name)))
            handles.append(module.register_forward_hook(pop, always_call=True))  # also when it raises
        yield running
    finally:
        for handle in handles:
            handle.remove()


def check_rule(rule: str) -> None:
    """Raise a ConvscopeError unless ``rule`` is ``"deconvnet"`` or ``"guided"``."""
    if rule not in RULES:
        raise ConvscopeError(f"unknown projection rule {rule!r}", hint='use "deconvnet" or "guided"')


@contextmanager
def modified_relus(model: nn.Module, rule: Rule) -> Iterator[None]:
    """While inside, every ReLU of ``model`` back-propagates by ``rule``.

    Nothing is left behind: the mode and the name-tracking hooks go in ``finally``.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU())
        >>> _ = nn.init.constant_(model[0].weight, 1.0)
        >>> x = torch.tensor([[[[-1.0]]]], requires_grad=True)
        >>> with modified_relus(model, "deconvnet"):
        ...     (g,) = torch.autograd.grad(model(x).sum(), x)
        >>> g.item()  # a plain gradient would be 0 (the input is negative)
        1.0
    """
    if rule not in RELU_RULES:
        raise ConvscopeError(f"unknown ReLU rule {rule!r}", hint=f"use one of {', '.join(RELU_RULES)}")
    # "redirected" never warns, so it needs no module names (their hooks cost every call)
    check = None if rule == "redirected" else _warn_other_activations(rule)
    with modified_backward(model, relu_routes(rule), check, track_modules=check is not None, purpose="projections"):
        yield


@contextmanager
def modified_backward(
    model: nn.Module,
    routes: Mapping[Callable, Route],
    check: Check | None = None,
    *,
    track_modules: bool = True,
    purpose: str = "projections",
) -> Iterator[None]:
    """While inside, calls of the functions in ``routes`` go to their replacements, and ``check``
    sees every other torch call; ``track_modules`` keeps the name of the module running for both.

    The one mechanism for changing a backward pass: the ReLU rules (:func:`modified_relus`) and
    LRP (:func:`convscope.explain.lrp.lrp_rules`) are tables of routes. The mode and the
    name-tracking hooks go in ``finally``. TorchScript models are refused (their calls cannot be
    routed); ``purpose`` names the job in that message.
    """
    if any(isinstance(m, torch.jit.ScriptModule) for m in model.modules()):
        raise ModelError(
            f"{purpose} cannot change the backward pass of a TorchScript model",
            hint=f"load the model from Python code (a torchvision name or file.py:make) for {purpose}",
        )
    if not track_modules:
        with RuleMode(routes, [], check):
            yield
        return
    with _module_names(model) as running, RuleMode(routes, running, check):
        yield
