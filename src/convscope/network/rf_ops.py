"""The engine behind :func:`convscope.network.geometry.receptive_fields`.

One forward pass runs under a :class:`~torch.utils._python_dispatch.TorchDispatchMode`
that sees every ATen operator (after PyTorch's own decomposition of composite ops such
as ``F.linear`` or ``padding='same'``) and gives each produced tensor a *geometry*:

- :class:`Local`: an affine field per axis (:class:`Axis`), plus where the rows and
  cols live in the tensor (dims 2, 3 for NCHW; 1, 2 after a permute to NHWC; one
  merged ``rows * cols`` dim after a flattening view), per run of channels along
  one channel dim (after a concatenation of branches);
- :class:`Global`: every element sees one box of the image (after a global pool, a
  mean over the map, a norm with batch statistics);
- :data:`UNKNOWN`: no exact answer (upsampling, a concat along rows, a softmax over
  cols, a view that merges a per-channel dim, any operator without a rule).

Tensors that do not depend on the input (weights, constants) have no geometry and
are ignored by the rules. Rules never guess: an operator they do not know turns a
local input into :data:`UNKNOWN`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from convscope.network import rf_channels as channels
from convscope.network.rf_algebra import (
    Axis,
    Geometry,
    Global,
    Local,
    UNKNOWN,
    broadcast,
    move_dims,
    shift_axis,
    sliding_window,
    to_global,
    union,
)
from convscope.network.rf_padding import PAD_MODES, CircularPad, pad_rule
from convscope.network.rf_views import reshape

aten = torch.ops.aten

def _pair(value: object, default: Sequence[int] | None = None) -> list[int]:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        value = default
    values = list(value) if isinstance(value, (list, tuple)) else [value]  # type: ignore[arg-type]
    return [int(v) for v in (values * 2 if len(values) == 1 else values)]


def _bind(func: torch._ops.OpOverload, args: tuple, kwargs: dict) -> dict:
    """Arguments by schema name (defaults filled in)."""
    bound = {}
    for i, arg in enumerate(func._schema.arguments):
        if i < len(args):
            bound[arg.name] = args[i]
        elif arg.name in kwargs:
            bound[arg.name] = kwargs[arg.name]
        else:
            bound[arg.name] = arg.default_value if arg.has_default_value() else None
    return bound


#: Elementwise or channel-wise operators that PyTorch does not tag as pointwise.
ELEMENTWISE = frozenset(
    "hardswish hardswish_ hardsigmoid hardsigmoid_ _prelu_kernel prelu mish mish_ softplus elu elu_ "
    "celu celu_ selu selu_ rrelu rrelu_ _to_copy to detach alias lift_fresh lift_fresh_copy contiguous "
    "dropout dropout_ native_dropout feature_dropout feature_dropout_ alpha_dropout alpha_dropout_ "
    "feature_alpha_dropout feature_alpha_dropout_".split()
)
#: Operators whose result has the input's shape but not its values.
SHAPE_ONLY = frozenset(
    "empty_like zeros_like ones_like full_like rand_like randn_like randint_like new_empty new_zeros "
    "new_ones new_full new_empty_strided empty_strided".split()
)
#: Reductions over ``dim`` (all dims when the overload has no ``dim``).
REDUCTIONS = frozenset(
    "mean sum amax amin max min var std var_mean std_mean logsumexp linalg_vector_norm norm prod "
    "argmax argmin any all _softmax _log_softmax softmax log_softmax".split()
)
#: Operators that follow a channel dim split in two by a view (the rest give UNKNOWN).
RESHAPES = frozenset("view _unsafe_view reshape view_copy flatten unflatten squeeze unsqueeze _reshape_alias".split())
SPLIT_SAFE = frozenset("permute transpose t expand".split()) | RESHAPES


class GeometryMode(TorchDispatchMode):
    """Track the geometry of every tensor made during a forward pass.

    Tensors are keyed by ``id`` and kept alive until the mode is dropped, so ids
    are never reused within the pass.

    Example:
        >>> from convscope.network.rf_algebra import identity
        >>> x = torch.zeros(1, 3, 8, 8)
        >>> mode = GeometryMode((8, 8))
        >>> mode.track(x, identity(8, 8))
        >>> with torch.no_grad(), mode:
        ...     y = torch.nn.functional.conv2d(x, torch.ones(2, 3, 3, 3), stride=2)
        >>> mode.geometry(y).rows
        Axis(size=3, stride=2, offset=0, end=None)
    """

    def __init__(self, image: tuple[int, int]) -> None:
        super().__init__()
        self.image = image
        self._table: dict[int, tuple[torch.Tensor, Geometry]] = {}

    def __enter__(self):  # type: ignore[no-untyped-def]
        self._functions = CircularPad(self)
        entered = super().__enter__()
        self._functions.__enter__()
        return entered

    def __exit__(self, *exc):  # type: ignore[no-untyped-def]
        try:
            self._functions.__exit__(*exc)
        finally:
            return super().__exit__(*exc)

    def track(self, tensor: torch.Tensor, geom: Geometry) -> None:
        self._table[id(tensor)] = (tensor, geom)

    def geometry(self, tensor: object) -> Geometry | None:
        """The tensor's geometry; ``None`` when it does not depend on the input."""
        entry = self._table.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outputs = [o for o in (out if isinstance(out, (tuple, list)) else [out]) if isinstance(o, torch.Tensor)]
        if not outputs:
            return out
        inputs = [t for t in _tensors(list(args) + list(kwargs.values())) if self.geometry(t) is not None]
        if not inputs or func.overloadpacket.__name__ in SHAPE_ONLY:
            return out
        try:
            geoms = self._rule(func, args, kwargs, inputs, outputs)
        except Exception:  # a rule that cannot read this call's arguments knows nothing
            geoms = [UNKNOWN] * len(outputs)
        mutated = func._schema.is_mutable
        for tensor, geom in zip(outputs, geoms):
            before = self.geometry(tensor)
            if mutated and before is not None and geom != before:
                self._forget_aliases(tensor)
            self.track(tensor, geom)
        return out

    def _forget_aliases(self, tensor: torch.Tensor) -> None:
        """An in-place change of ``tensor`` changes every view of its storage too."""
        storage = tensor.untyped_storage().data_ptr()
        for key, (other, geom) in list(self._table.items()):
            if other is not tensor and isinstance(geom, Local) and other.untyped_storage().data_ptr() == storage:
                self._table[key] = (other, UNKNOWN)

    def _rule(self, func, args, kwargs, inputs, outputs) -> list[Geometry]:  # type: ignore[no-untyped-def]
        geoms = [self.geometry(t) for t in inputs]
        name = func.overloadpacket.__name__
        pointwise = torch.Tag.pointwise in func.tags or name in ELEMENTWISE or name == "copy_"
        if all(isinstance(g, Global) for g in geoms):
            if pointwise:  # rows and cols stay where they are (broadcast to the output)
                geoms = [broadcast(self.geometry(t), t.shape, outputs[0].shape) for t in inputs]
            else:
                dims = _global_dims(name, _bind(func, args, kwargs), geoms, inputs[0], outputs[0])  # type: ignore[arg-type]
                geoms = [Global(g.box, dims) for g in geoms]  # type: ignore[union-attr]
            return [union(geoms, self.image)] * len(outputs)  # type: ignore[arg-type, list-item]
        if any(g is UNKNOWN for g in geoms):
            return [UNKNOWN] * len(outputs)
        if any(isinstance(g, Local) and g.inner is not None for g in geoms):  # a channel dim split in two
            if not (name in SPLIT_SAFE or (pointwise and len(inputs) == 1)):
                return [UNKNOWN] * len(outputs)
        a = _bind(func, args, kwargs)
        a["__name__"] = name
        first = outputs[0]
        if pointwise:
            sources = [a["src"]] if name == "copy_" else inputs
            parts = [broadcast(self.geometry(t), t.shape, first.shape) for t in sources if self.geometry(t) is not None]
            return [union(parts, self.image)] * len(outputs)  # type: ignore[list-item]
        rule = _RULES.get(name)
        if rule is None:
            return [UNKNOWN] * len(outputs)
        main = next((a[k] for k in ("self", "input") if self.geometry(a.get(k)) is not None), inputs[0])
        geom = self.geometry(main)
        if not isinstance(geom, Local):
            return [UNKNOWN] * len(outputs)
        result = rule(self, geom, main, a, outputs)
        if isinstance(result, list):
            return result
        others = [self.geometry(t) for t in inputs if t is not main]
        if others:  # e.g. a kernel computed from the input: fine only when it is global
            result = UNKNOWN if any(isinstance(o, Local) for o in others) else union([result, *others], self.image)  # type: ignore[list-item]
        return [result] * len(outputs)  # type: ignore[list-item]


def _global_dims(name: str, a: dict, geoms: list[Global], x: torch.Tensor, out: torch.Tensor) -> tuple[int, int] | None:
    """Where rows and cols are after a non-elementwise operator on global tensors (``None``: not known).

    Channel splits, slices, concatenations, views and reductions move them as they
    would move a local field's (after a squeeze-excite gate, MixNet's MixedConv2d and
    GhostNet's Ghost module split and concatenate global maps along channels).
    """
    g = geoms[0]
    rule = _RULES.get(name)
    if rule in (_conv, _pool, _adaptive, _batch_norm, _group_norm) and out.dim() >= 3:
        return out.dim() - 2, out.dim() - 1
    if g.dims is None:
        return None
    if rule is _join:  # a cat along another dim, every input with its rows and cols at the same dims
        stacked = out.dim() != x.dim()
        return None if stacked or a["dim"] % out.dim() in g.dims or any(o.dims != g.dims for o in geoms) else g.dims
    if rule in (_slice, _split, _select, _reshape, _reduce, _expand):
        hw = (x.shape[g.dims[0]], x.shape[g.dims[1]])
        probe = Local(((0, Axis(1, 1, 0), Axis(1, 1, 0)),), g.dims, hw)
        try:  # a reduction over the map with keepdim leaves rows and cols of size 1 (a Global probe)
            moved = rule(SimpleNamespace(image=hw), probe, x, a, [out])  # type: ignore[arg-type]
        except Exception:  # a call the rule cannot read: not known
            return None
        moved = moved[0] if isinstance(moved, list) else moved
        dims = moved.dims if isinstance(moved, (Local, Global)) else None
        return dims if dims is not None and dims[0] != dims[1] else None  # merged rows * cols: not kept
    if out.dim() != x.dim():
        return None
    if rule is _layer_norm:
        return g.dims
    if rule in (_permute, _transpose):
        moved = rule(None, Local(((0, Axis(1, 1, 0), Axis(1, 1, 0)),), g.dims, (1, 1)), x, a, [out])  # type: ignore[arg-type]
        return moved.dims if isinstance(moved, Local) else None
    return None


def _tensors(values: Sequence[object]) -> list[torch.Tensor]:
    found = []
    for v in values:
        if isinstance(v, torch.Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            found.extend(_tensors(v))
    return found


# Each rule: (mode, geometry of the main input, the main input, bound args, outputs)
# -> one geometry for every output, or a list with one per output.
Rule = Callable[[GeometryMode, Local, torch.Tensor, dict, list], "Geometry | list[Geometry]"]


def _conv(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    weight = a["weight"]
    if a.get("transposed") or weight.dim() != 4:
        return UNKNOWN
    kernel = list(weight.shape[2:])
    dilation = _pair(a["dilation"], [1])
    padding = a["padding"]
    if padding == "valid":
        padding = [0, 0]
    elif padding == "same":  # PyTorch puts the odd pixel of padding after
        padding = [d * (k - 1) // 2 for k, d in zip(kernel, dilation)]
    mixed = channels.mix(g, x.dim() - 3, x.shape[-3], int(a.get("groups") or 1), outs[0].shape[-3])
    if not isinstance(mixed, Local):
        return mixed
    return sliding_window(
        mixed, x.dim(), outs[0].shape[-2:], kernel, _pair(a["stride"], [1]), _pair(padding), dilation, mode.image
    )


def _pool(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    kernel = _pair(a["kernel_size"])
    return sliding_window(
        g, x.dim(), outs[0].shape[-2:], kernel, _pair(a["stride"], kernel), _pair(a["padding"], [0]),
        _pair(a.get("dilation"), [1]), mode.image,
    )


def _adaptive(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    in_hw, out_hw = list(x.shape[-2:]), list(outs[0].shape[-2:])
    if in_hw == out_hw:
        return g
    if out_hw == [1, 1]:
        return to_global(g, mode.image)
    if all(i % o == 0 for i, o in zip(in_hw, out_hw)):  # the same as a pool with kernel = stride
        kernel = [i // o for i, o in zip(in_hw, out_hw)]
        return sliding_window(g, x.dim(), out_hw, kernel, kernel, [0, 0], [1, 1], mode.image)
    return UNKNOWN


def _slice(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    dim = a["dim"] % x.dim()
    start = a["start"] or 0
    if start < 0:
        start += x.shape[dim]
    start = min(max(start, 0), x.shape[dim])
    step = a["step"] or 1
    if dim == g.chan:
        return channels.take(g, dim, x.shape[dim], start, step, outs[0].shape[dim])
    return shift_axis(g, dim, start, step, outs[0].shape[dim], mode.image)


def _split(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> list[Geometry]:
    dim = a["dim"] % x.dim()
    geoms, start = [], 0
    for out in outs:
        if dim == g.chan:
            geoms.append(channels.take(g, dim, x.shape[dim], start, 1, out.shape[dim]))
        else:
            geoms.append(shift_axis(g, dim, start, 1, out.shape[dim], mode.image))
        start += out.shape[dim]
    return geoms


def _select(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    dim = a["dim"] % x.dim()
    index = a["index"] % x.shape[dim]
    return channels.pick(g, dim, x.shape[dim], index)


def _permute(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    order = [d % x.dim() for d in a["dims"]]
    return move_dims(g, order.index)


def _transpose(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    d0, d1 = (a["dim0"] % x.dim(), a["dim1"] % x.dim()) if "dim0" in a else (0, 1)
    return move_dims(g, lambda d: d1 if d == d0 else d0 if d == d1 else d)


def _reshape(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    return reshape(g, x.shape, outs[0].shape)


def _expand(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    return broadcast(g, x.shape, outs[0].shape)


def _join(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> list[Geometry]:
    """cat / stack along a channel-like dim: the inputs' channel fields one after another."""
    stack = outs[0].dim() > a["tensors"][0].dim()
    dim = a["dim"] % outs[0].dim()
    parts: list[tuple[Geometry | None, int]] = []
    for t in a["tensors"]:
        if not stack and t.dim() != outs[0].dim():
            continue  # cat skips the legacy empty tensors of shape (0,)
        geom = mode.geometry(t)
        if isinstance(geom, Local) and stack:
            geom = move_dims(geom, lambda d: d + (d >= dim))
        parts.append((geom, 1 if stack else t.shape[dim]))
    return [channels.concat(parts, dim, mode.image)] * len(outs)


def _reduce(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    """Reductions and softmax: over channel-like dims nothing changes, over the whole map it is global."""
    dims = a.get("dim")
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        dims = list(range(x.dim()))
    reduced = {d % x.dim() for d in (dims if isinstance(dims, (list, tuple)) else [dims])}
    spatial = set(g.dims)
    if spatial <= reduced:
        result = to_global(g, mode.image)
        return result if outs[0].dim() == x.dim() or not isinstance(result, Global) else Global(result.box)
    if spatial & reduced:
        return UNKNOWN
    if g.chan in reduced:
        united = channels.unite(g)
        if not isinstance(united, Local):
            return united
        g = united
    if outs[0].dim() == x.dim():  # keepdim or softmax
        return g
    return move_dims(g, lambda d: d - sum(r < d for r in reduced))


def _batch_norm(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> list[Geometry]:
    """With running statistics a per-channel affine map; with batch statistics global."""
    if a.get("training", False):  # mean and variance over the batch and the whole map
        first: Geometry = to_global(g, mode.image) if min(g.dims) >= 2 else UNKNOWN
    else:
        first = g
    return [first] + [UNKNOWN] * (len(outs) - 1)


def _layer_norm(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> list[Geometry]:
    normalized = set(range(x.dim() - len(a["normalized_shape"]), x.dim()))
    first = _reduce(mode, g, x, {"dim": sorted(normalized)}, [x])
    return [first] + [UNKNOWN] * (len(outs) - 1)


def _group_norm(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> list[Geometry]:
    first = to_global(g, mode.image) if min(g.dims) >= 2 else UNKNOWN
    return [first] + [UNKNOWN] * (len(outs) - 1)


def _matmul(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    """mm / addmm / linear with a constant (or global) matrix: rows of the input stay rows."""
    left = a.get("mat1", a.get("self", a.get("input")))
    right = a.get("mat2", a.get("weight"))
    lg, rg = mode.geometry(left), mode.geometry(right)
    if isinstance(lg, Local) and not isinstance(rg, Local) and left.dim() - 1 not in lg.dims:
        return channels.unite(lg) if lg.chan == left.dim() - 1 else lg
    if isinstance(rg, Local) and lg is None and "mat2" in a and rg.dims == (1, 1):
        return channels.unite(rg) if rg.chan == 0 else rg
    return UNKNOWN


def _shuffle(mode: GeometryMode, g: Local, x: torch.Tensor, a: dict, outs: list) -> Geometry:
    """channel_shuffle: an exact permutation of the channels (dim 1)."""
    return channels.shuffle(g, 1, x.shape[1], int(a["groups"]))


_RULES: dict[str, Rule] = {
    **{n: _conv for n in ("convolution", "conv2d", "_convolution", "convolution_overrideable")},
    **{n: _pool for n in ("max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "mkldnn_max_pool2d")},
    **{n: _adaptive for n in ("_adaptive_avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d")},
    **{n: pad_rule for n in (*PAD_MODES, "pad")},
    "channel_shuffle": _shuffle,
    "native_channel_shuffle": _shuffle,
    "slice": _slice,
    "narrow": _slice,
    **{n: _split for n in ("split", "split_with_sizes", "chunk")},
    "select": _select,
    "permute": _permute,
    "transpose": _transpose,
    "t": _transpose,
    **{n: _reshape for n in RESHAPES},
    "expand": _expand,
    "cat": _join,
    "stack": _join,
    **{n: _reduce for n in REDUCTIONS},
    **{n: _batch_norm for n in (
        "native_batch_norm", "batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
        "cudnn_batch_norm", "miopen_batch_norm",
    )},
    "native_layer_norm": _layer_norm,
    "layer_norm": _layer_norm,
    "native_group_norm": _group_norm,
    "group_norm": _group_norm,
    "mm": _matmul,
    "addmm": _matmul,
    "linear": _matmul,
}
