"""Turn a TorchScript model into an ordinary Python module that hooks can observe.

A model loaded with ``torch.jit.load`` runs its compiled forward in C++: forward
hooks on its sub-modules are refused and a ``TorchFunctionMode`` sees nothing
inside it. :func:`to_hookable` rebuilds the module tree as plain ``nn.Module``
objects with the same dotted names, sharing the same parameters and buffers, and
runs each module's TorchScript graph in Python with a small interpreter. Calls to
a child module's ``forward`` go through the child's ``__call__``, so forward hooks
on every layer fire; every tensor operation is a Python-level call, so a
``TorchFunctionMode`` sees each one.

What a ``TorchFunctionMode`` sees: convolutions as ``torch.conv1d/2d/3d``, pooling
as ``F.max_pool2d`` / ``F.avg_pool2d`` / ``F.adaptive_avg_pool2d``, constant padding
as ``F.pad``, ReLU as ``torch.relu`` / ``torch.relu_``, calls of ``torch.nn.functional``
functions in scripted code as those functions, and every other operation as an
``OpOverload`` such as ``torch.ops.aten.add_.Tensor`` or ``torch.ops.aten.slice.Tensor``.

Scripted (``torch.jit.script``) and traced (``torch.jit.trace``) files both work.
A traced graph records the train/eval choices made at trace time (dropout, batch
norm statistics), so it computes the same in either mode; a scripted graph
follows each module's ``training`` flag, which is carried over.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from convscope.errors import ModelError

_HINT = "load the model from Python instead: file.py:factory with --weights"

_CONVOLUTIONS = {3: torch.conv1d, 4: torch.conv2d, 5: torch.conv3d}


def _convolution(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int],
                 padding: list[int], dilation: list[int], transposed: bool, output_padding: list[int],
                 groups: int, *flags: bool) -> torch.Tensor:
    """``aten::_convolution`` (what a traced ``nn.Conv2d`` records) as ``torch.conv2d``."""
    if transposed:
        return torch.ops.aten._convolution.default(
            x, weight, bias, stride, padding, dilation, transposed, output_padding, groups, *flags
        )
    return _CONVOLUTIONS[weight.dim()](x, weight, bias, stride, padding, dilation, groups)


def _constant_pad(x: torch.Tensor, pad: list[int], value: float = 0.0) -> torch.Tensor:
    return F.pad(x, pad, "constant", value)


#: aten operations run through their public torch / F twins, so that a
#: TorchFunctionMode sees them as it would in an eager model. Arguments map
#: position by position.
_PUBLIC_TWINS: dict[str, Callable[..., Any]] = {
    "aten::_convolution": _convolution,
    "aten::conv1d": torch.conv1d,
    "aten::conv2d": torch.conv2d,
    "aten::conv3d": torch.conv3d,
    "aten::max_pool2d": F.max_pool2d,
    "aten::avg_pool2d": F.avg_pool2d,
    "aten::adaptive_avg_pool2d": F.adaptive_avg_pool2d,
    "aten::constant_pad_nd": _constant_pad,
    "aten::pad": F.pad,
    "aten::relu": torch.relu,
    "aten::relu_": torch.relu_,
}

#: Python-level operations that must act on Python objects (lists are shared, not copied).
_PYTHON_OPS: dict[str, Callable[..., Any]] = {
    "prim::ListConstruct": lambda *xs: list(xs),
    "prim::TupleConstruct": lambda *xs: tuple(xs),
    "prim::TupleIndex": lambda t, i: t[i],
    "prim::unchecked_cast": lambda x: x,
    "prim::Uninitialized": lambda: None,
    "prim::dtype": lambda x: x.dtype,
    "prim::device": lambda x: x.device,
    "prim::NumToTensor": torch.tensor,
    "aten::Int": int,
    "aten::Float": float,
    "aten::Bool": bool,
    "aten::__getitem__": lambda xs, i: xs[i],
    "aten::len": len,
    "aten::append": lambda xs, x: xs.append(x) or xs,
    "aten::__is__": lambda a, b: a is b,
    "aten::__isnot__": lambda a, b: a is not b,
    "aten::__not__": lambda a: not a,
    "aten::format": lambda fmt, *xs: fmt.format(*xs),
    "aten::warn": lambda message, *rest: warnings.warn(message, stacklevel=2),
}


@dataclass
class _Step:
    """One graph node, compiled: ``outputs = run(*inputs)`` or a control-flow construct."""

    kind: str
    inputs: list[int]
    outputs: list[int]
    call: Callable[..., Any] | None = None
    kwarg_names: tuple[str, ...] = ()
    name: str = ""
    value: Any = None
    blocks: list[_Block] = field(default_factory=list)


@dataclass
class _Block:
    """A compiled block: parameters (value ids), steps, and returned value ids."""

    params: list[int]
    steps: list[_Step]
    returns: list[int]


def _model_error(what: str) -> ModelError:
    """The ModelError for a graph construct the interpreter cannot run."""
    return ModelError(f"cannot run this TorchScript model in Python: {what}", hint=_HINT)


def _python_function(qualified: str) -> Callable[..., Any]:
    """The torch function behind a ``prim::CallFunction`` (``__torch__.torch.nn.functional.relu``)."""
    parts = [p for p in qualified.split(".") if p != "__torch__" and not p.startswith("___torch_mangle")]
    if parts[:1] == ["torch"]:
        try:
            return getattr(importlib.import_module(".".join(parts[:-1])), parts[-1])
        except (ImportError, AttributeError):
            pass
    raise _model_error(f"it calls the function {'.'.join(parts)}, which is not part of torch")


def _operator(node: torch._C.Node) -> tuple[Callable[..., Any], tuple[str, ...]]:
    """The callable for an ``aten::`` / ``prim::`` operator node and its keyword-only argument names."""
    kind = node.kind()
    if kind in _PUBLIC_TWINS:
        return _PUBLIC_TWINS[kind], ()
    if kind in _PYTHON_OPS:
        return _PYTHON_OPS[kind], ()
    try:
        schema = torch._C.parse_schema(node.schema())
        namespace, name = schema.name.split("::")
        op = getattr(getattr(getattr(torch.ops, namespace), name), schema.overload_name or "default")
    except (RuntimeError, AttributeError, ValueError):
        raise _model_error(f"it uses the operation {kind}, which convscope cannot run") from None
    return op, tuple(a.name for a in schema.arguments if a.kwarg_only)


def _compile_block(block: torch._C.Block) -> _Block:
    """Compile a graph block once, resolving every operator, so unsupported nodes fail early."""
    steps = []
    for node in block.nodes():
        kind = node.kind()
        step = _Step(kind, [v.unique() for v in node.inputs()], [v.unique() for v in node.outputs()])
        if kind == "prim::Constant":
            out = node.output()
            if out.type().kind() == "FunctionType":
                step.kind, step.call = "function", _python_function(out.type().annotation_str)
            else:
                step.value = out.toIValue()
        elif kind in ("prim::GetAttr", "prim::SetAttr", "prim::CallMethod"):
            step.name = node.s("name")
        elif kind in ("prim::If", "prim::Loop"):
            step.blocks = [_compile_block(b) for b in node.blocks()]
        elif kind in ("prim::ListUnpack", "prim::TupleUnpack", "prim::CallFunction", "prim::RaiseException"):
            pass
        elif kind.startswith(("aten::", "prim::")):
            step.call, step.kwarg_names = _operator(node)
        else:
            raise _model_error(f"it uses the construct {kind}, which convscope cannot run")
        steps.append(step)
    return _Block(
        [v.unique() for v in block.inputs()], steps, [v.unique() for v in block.outputs()]
    )


def _run_block(block: _Block, env: dict[int, Any], params: list[Any]) -> list[Any]:
    """Run ``block`` with its parameters bound to ``params``; ``env`` maps value ids to values."""
    env.update(zip(block.params, params))
    for step in block.steps:
        args = [env[i] for i in step.inputs]
        kind = step.kind
        if kind == "prim::If":
            env.update(zip(step.outputs, _run_block(step.blocks[0 if args[0] else 1], env, [])))
            continue
        if kind == "prim::Loop":
            env.update(zip(step.outputs, _run_loop(step.blocks[0], env, args)))
            continue
        if kind == "prim::Constant":
            result = step.value
        elif kind == "function":
            result = step.call
        elif kind == "prim::GetAttr":
            result = getattr(args[0], step.name)
        elif kind == "prim::SetAttr":
            setattr(args[0], step.name, args[1])
            continue
        elif kind == "prim::CallMethod":
            target = args[0]
            result = (target if step.name == "forward" else target.method(step.name))(*args[1:])
        elif kind == "prim::CallFunction":
            result = args[0](*args[1:])
        elif kind in ("prim::ListUnpack", "prim::TupleUnpack"):
            result = args[0]
        elif kind == "prim::RaiseException":
            raise RuntimeError(f"the TorchScript model raised: {args[0]}")
        else:
            positional = args[: len(args) - len(step.kwarg_names)]
            result = step.call(*positional, **dict(zip(step.kwarg_names, args[len(positional):])))
        if len(step.outputs) == 1:
            env[step.outputs[0]] = result
        else:  # a node with several outputs returns a tuple of them
            env.update(zip(step.outputs, result))
    return [env[i] for i in block.returns]


def _run_loop(body: _Block, env: dict[int, Any], args: list[Any]) -> list[Any]:
    """``prim::Loop(max_trips, condition, *carried)``; the body returns ``(condition, *carried)``."""
    max_trips, go_on, carried = args[0], args[1], args[2:]
    trip = 0
    while go_on and trip < max_trips:
        go_on, *carried = _run_block(body, env, [trip, *carried])
        trip += 1
    return carried


class _Method:
    """One compiled TorchScript method of a :class:`HookableModule`, callable with its arguments."""

    def __init__(self, module: HookableModule, block: _Block) -> None:
        self._module = module
        self._block = block

    def __call__(self, *args: Any) -> Any:
        outputs = _run_block(self._block, {}, [self._module, *args])
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


class HookableModule(nn.Module):
    """A TorchScript module rebuilt in Python: same children, parameters and buffers.

    ``forward`` interprets the module's TorchScript graph, calling children as
    Python modules so their hooks fire. ``original_name`` is the class name the
    module had before scripting (``Conv2d``, ``BasicBlock``).
    """

    def __init__(self, original_name: str, blocks: dict[str, _Block]) -> None:
        super().__init__()
        self.original_name = original_name
        self._blocks = blocks

    def method(self, name: str) -> _Method:
        """The compiled TorchScript method ``name`` (e.g. ``_forward_impl``)."""
        return _Method(self, self._blocks[name])

    def forward(self, *args: Any) -> Any:
        return self.method("forward")(*args)

    def extra_repr(self) -> str:
        return f"original_name={self.original_name!r}"


def _graph_attributes(block: _Block) -> set[str]:
    """Names read with ``prim::GetAttr`` anywhere in ``block`` (nested blocks included)."""
    names = set()
    for step in block.steps:
        if step.kind == "prim::GetAttr":
            names.add(step.name)
        for inner in step.blocks:
            names |= _graph_attributes(inner)
    return names


def _convert(script: torch.jit.ScriptModule) -> HookableModule:
    blocks = {
        name: _compile_block(script._c._get_method(name).graph.block())
        for name in script._c._method_names()
    }
    module = HookableModule(script.original_name, blocks)
    for name, child in script.named_children():
        module.add_module(name, _convert(child))
    for name, param in script.named_parameters(recurse=False):
        # A loaded module returns plain tensors; the Parameter shares their storage.
        module.register_parameter(name, nn.Parameter(param, requires_grad=param.requires_grad))
    for name, buffer in script.named_buffers(recurse=False):
        module.register_buffer(name, buffer)
    # Plain attributes the graphs read (flags, sizes, an absent bias as None).
    for name in set().union(*map(_graph_attributes, blocks.values())):
        if not hasattr(module, name) and hasattr(script, name):
            setattr(module, name, getattr(script, name))
    module.training = script.training
    return module


def to_hookable(module: torch.jit.ScriptModule) -> HookableModule:
    """Rebuild a TorchScript module as Python modules whose forward hooks fire.

    The result has the same ``named_modules()`` names and shares the parameters
    and buffers of ``module``; each sub-module keeps its ``training`` flag.
    Its outputs equal the TorchScript module's outputs.

    Args:
        module: a module from ``torch.jit.load`` (scripted or traced).

    Returns:
        A :class:`HookableModule` tree; ``model(x)`` takes and returns what
        ``module(x)`` does, e.g. ``(N, 3, H, W) -> (N, classes)``.

    Raises:
        ModelError: the graph uses a construct the interpreter cannot run (a
            call to a function outside torch, an unknown operation).

    Example:
        >>> scripted = torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))
        >>> model = to_hookable(scripted)
        >>> [name for name, _ in model.named_modules()]
        ['', '0', '1']
        >>> model(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 4, 6, 6])
    """
    if not isinstance(module, torch.jit.ScriptModule):
        raise ModelError(
            f"expected a TorchScript module, got {type(module).__name__}",
            hint="pass what torch.jit.load returns",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _convert(module)
