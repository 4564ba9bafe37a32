"""The stem and every block: default layers that follow a network's own structure at any depth.

A layer is a *block* boundary when everything after it depends on the input only
through its output. One dry forward finds those places, tensor by tensor, without
knowing any architecture:

1. **Cut tensors.** Every aten operation is numbered (from 1; the input is 0). A
   tensor depends on the input when it is the input or the output of an operation
   with an input-dependent argument (parameters, buffers and tensors made from
   scratch do not); it is stamped with the number of the operation that produced it
   (an in-place operation stamps it anew; a view is a new tensor). A tensor stamped
   ``i`` is a *cut* when no operation after ``i`` reads an input-dependent tensor
   stamped before ``i``: the rest of the network sees the input only through it.
2. **Module calls.** A module's call is a *cut module* when it ran once and returned
   one tensor that is a cut; it *has a conv* when a convolution ran inside it.
3. **The walk** from the root. The root is split into its children. A cut module with
   a conv is split too when it is a *pure container*, an ``nn.Sequential`` (or a
   subclass that does not override ``forward``), with at least two cut children that
   have a conv; a pure container with exactly one, returning the container's very
   output tensor (no in-place operation after it), gives way to that child
   (``features.1`` holding one MBConv is named ``features.1.0``). Any other cut module
   with a conv is one block: a default layer. Children that are not cut modules with
   a conv (activations, pools, norms, heads, the branches inside a block) are dropped;
   modules that never run are absent; a module never called itself (an
   ``nn.ModuleList`` or ``nn.ModuleDict``) is looked through, its children standing
   in for it. When the root has exactly one cut child with a conv (a wrapper such as
   ``Sequential(normalise, resnet)``), that child is split like a root if that gives
   two or more layers.

:func:`find_blocks` applies the rule to a :class:`Trace` recorded by :func:`trace`;
``convscope.network.layers.default_layers`` keeps the blocks that can be scanned.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakTensorKeyDictionary

#: aten operation names that are convolutions (``convolution``, ``conv2d``, ``_conv_depthwise2d``,
#: ``mkldnn_convolution``, ``conv_transpose2d``...), not ``_convert_*``.
_CONV = re.compile(r"convolution|(^|_)conv(_|\d|$)")

#: A stamp: (operation that produced the tensor, serial number of this stamping).
Stamp = tuple[int, int]


@dataclass(frozen=True)
class ModuleCall:
    """One call of one module, in operation numbers.

    Attributes:
        first: the first operation that ran inside the call.
        last: the last one (``first - 1`` when none ran).
        output: the stamp of the returned tensor; ``None`` when the call returned
            something else than one input-dependent tensor.
        conv: whether a convolution ran inside.
    """

    first: int
    last: int
    output: Stamp | None
    conv: bool


class _Stamps(TorchDispatchMode):
    """Numbers every aten operation and stamps the input-dependent tensors it returns."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__()
        self.stamps: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
        self.stamps[x] = (0, 0)
        self.serial = 0
        #: per operation (index op - 1): the smallest stamp among its input-dependent arguments
        self.earliest: list[float] = []
        self.convs: list[int] = []  # numbers of the convolution operations, increasing

    @property
    def ops(self) -> int:
        return len(self.earliest)

    def stamp_of(self, value: object) -> Stamp | None:
        return self.stamps.get(value) if isinstance(value, torch.Tensor) else None

    def _stamp(self, tensor: torch.Tensor, op: int) -> None:
        self.serial += 1
        self.stamps[tensor] = (op, self.serial)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = self.ops + 1
        stamps = self.stamps
        earliest = min(
            (stamps[t][0] for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor) and t in stamps),
            default=math.inf,
        )
        self.earliest.append(earliest)
        if _CONV.search(func.overloadpacket.__name__):
            self.convs.append(op)
        if earliest != math.inf:
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self._stamp(t, op)
            for t in _written(func, args, kwargs):  # in place or out=: the tensor (and its base) changed here
                self._stamp(t, op)
                if t._base is not None:
                    self._stamp(t._base, op)
        return out


def _written(func: Any, args: tuple, kwargs: dict) -> Iterator[torch.Tensor]:
    """The tensor arguments an operation writes to, by its schema."""
    for i, argument in enumerate(func._schema.arguments):
        if argument.alias_info is not None and argument.alias_info.is_write:
            value = args[i] if i < len(args) else kwargs.get(argument.name)
            for t in tree_leaves(value):
                if isinstance(t, torch.Tensor):
                    yield t


@dataclass
class Trace:
    """What one forward pass did: its operations and every module call.

    Attributes:
        calls: per module (by identity), its calls in the order they began.
        suffix: ``suffix[i]`` is the smallest stamp that operations ``i``, ``i + 1``, ...
            read from input-dependent tensors (``inf`` past the last operation).
        convs: the numbers of the convolution operations, increasing.
    """

    calls: dict[int, list[ModuleCall]] = field(default_factory=dict)
    suffix: list[float] = field(default_factory=list)
    convs: list[int] = field(default_factory=list)

    def ran(self, module: nn.Module) -> bool:
        return id(module) in self.calls

    def cut_with_conv(self, module: nn.Module) -> ModuleCall | None:
        """The module's call if it ran once, returned a cut tensor and ran a convolution, else ``None``."""
        calls = self.calls.get(id(module), [])
        if len(calls) != 1 or calls[0].output is None or not calls[0].conv:
            return None
        op = calls[0].output[0]
        return calls[0] if self.suffix[op + 1] >= op else None


@contextmanager
def trace(model: nn.Module, x: torch.Tensor) -> Iterator[Trace]:
    """Record a :class:`Trace` of the forward passes of ``x`` run inside; complete on exit.

    Hooks on every sub-module are removed in ``finally``. Only stamps and operation
    numbers are kept, no tensor.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> x = torch.zeros(1, 3, 8, 8)
        >>> with torch.no_grad(), trace(model, x) as t:
        ...     _ = model(x)
        >>> t.calls[id(model[0])], len(t.convs)
        ([ModuleCall(first=1, last=1, output=(1, 1), conv=True)], 1)
    """
    stamps = _Stamps(x)
    result = Trace()
    begun: dict[int, list[tuple[int, int]]] = {}  # per module: (call index, first operation) of calls still running
    calls: dict[int, list[ModuleCall | None]] = {}  # per module, in the order its calls began

    def before(module: nn.Module, inputs: Any) -> None:
        own = calls.setdefault(id(module), [])
        begun.setdefault(id(module), []).append((len(own), stamps.ops + 1))
        own.append(None)

    def after(module: nn.Module, inputs: Any, output: Any) -> None:
        index, first = begun[id(module)].pop()
        last = stamps.ops
        i = bisect.bisect_left(stamps.convs, first)
        conv = i < len(stamps.convs) and stamps.convs[i] <= last
        calls[id(module)][index] = ModuleCall(first, last, stamps.stamp_of(output), conv)

    handles = []
    try:
        for module in model.modules():
            handles.append(module.register_forward_pre_hook(before))
            handles.append(module.register_forward_hook(after))
        with stamps:
            yield result
    finally:
        for handle in handles:
            handle.remove()
    suffix = [math.inf] * (stamps.ops + 2)
    for op in range(stamps.ops, 0, -1):
        suffix[op] = min(suffix[op + 1], stamps.earliest[op - 1])
    result.suffix = suffix
    result.convs = stamps.convs
    result.calls = {key: [c for c in own if c is not None] for key, own in calls.items()}


def _is_pure(module: nn.Module) -> bool:
    """A container whose call only chains its children: ``nn.Sequential`` without its own ``forward``."""
    if isinstance(module, nn.Sequential):
        return type(module).forward is nn.Sequential.forward
    return getattr(module, "original_name", None) == "Sequential"  # a converted TorchScript Sequential


def find_blocks(model: nn.Module, t: Trace) -> list[str]:
    """The stem and every block (see the module docstring), in the order their calls began.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.LazyLinear(2))
        >>> x = torch.zeros(1, 3, 8, 8)
        >>> with torch.no_grad(), trace(model, x) as t:
        ...     _ = model(x)
        >>> find_blocks(model, t)
        ['0', '2']
    """
    found = _split(model, "", t)
    modules = dict(model.named_modules(remove_duplicate=False))
    return sorted(dict.fromkeys(found), key=lambda name: t.calls[id(modules[name])][0].first)


def _children(module: nn.Module, name: str, t: Trace) -> list[tuple[str, nn.Module]]:
    """The children of a module, each never called itself (a ModuleList) replaced by its own children."""
    found = []
    for child, m in module.named_children():
        full = f"{name}.{child}" if name else child
        found.extend(_children(m, full, t) if not t.ran(m) else [(full, m)])
    return found


def _split(module: nn.Module, name: str, t: Trace) -> list[str]:
    """The layers of the children of a module that is split like the root."""
    kids = _children(module, name, t)
    cut = [(n, m) for n, m in kids if t.cut_with_conv(m) is not None]
    if len(cut) == 1:  # a wrapper around the network (or one block): split it like the root if that says more
        inner = _split(cut[0][1], cut[0][0], t)
        if len(inner) >= 2:
            return inner
    return [layer for n, m in cut for layer in _walk(m, n, t)]


def _walk(module: nn.Module, name: str, t: Trace) -> list[str]:
    """The default layers at and under a cut module with a conv, child of a split module."""
    call = t.cut_with_conv(module)
    if call is not None and _is_pure(module):
        cut = [(n, m, c) for n, m in _children(module, name, t) if (c := t.cut_with_conv(m)) is not None]
        if len(cut) >= 2:
            return [layer for n, m, _ in cut for layer in _walk(m, n, t)]
        if len(cut) == 1 and cut[0][2].output == call.output:
            return _walk(cut[0][1], cut[0][0], t)
    return [name]
