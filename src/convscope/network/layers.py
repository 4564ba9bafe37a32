"""Which layers a model has, what they output, and which ones convscope scans by default.

Discovery is a dry run: one forward pass of a zero image with a hook on every
sub-module, recording the shape of what each returns (and, for the default layers,
where the network's data flow narrows: :mod:`convscope.network.blocks`), then one
geometry pass that finds each layer's per-unit receptive fields and where its units,
rows and cols live.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from convscope.errors import ConvscopeWarning, LayerError
from convscope.network.blocks import find_blocks, trace
from convscope.network.device import model_device
from convscope.network.geometry import ReceptiveField, UnitFields, unit_geometry
from convscope.network.modes import dry_run
from convscope.hooks import capture

#: Module types whose 4-d output is always ``(N, C, H, W)``.
NCHW_TYPES = frozenset(
    "Conv2d ConvTranspose2d LazyConv2d BatchNorm2d LazyBatchNorm2d SyncBatchNorm InstanceNorm2d MaxPool2d "
    "AvgPool2d AdaptiveAvgPool2d AdaptiveMaxPool2d LPPool2d FractionalMaxPool2d Upsample UpsamplingNearest2d "
    "UpsamplingBilinear2d PixelShuffle PixelUnshuffle Dropout2d ZeroPad2d ConstantPad2d ReflectionPad2d "
    "ReplicationPad2d CircularPad2d LocalResponseNorm LayerNorm2d".split()  # LayerNorm2d: torchvision ConvNeXt
)
NCHW = (1, 2, 3)


@dataclass(frozen=True)
class LayerInfo:
    """One candidate layer.

    Attributes:
        name: dotted module name (``features.3``).
        type: the module's class name (``Conv2d``).
        shape: output ``(units, rows, cols)`` for the dry-run input, whatever the
            tensor's layout (an NHWC output ``(N, H, W, C)`` gives ``(C, H, W)``);
            ``(units, 1, 1)`` for a flat ``(N, units)`` output. Where ``dims`` is
            ``None`` the layout is not known and this is the tensor's own order.
        fields: the receptive field of every unit, ``None`` where unknown.
        calls: how often it runs in one forward pass (more than 1: cannot be scanned).
        dims: the output's tensor dims of ``(units, rows, cols)``, batch at 0:
            ``(1, 2, 3)`` for NCHW, ``(3, 1, 2)`` for NHWC (see :func:`to_nchw`); ``None``
            for a 4-d output whose layout is not known (it cannot be scanned). A flat
            ``(N, units)`` layer has ``(1, 2, 3)``: viewed as ``(N, units, 1, 1)`` first.
    """

    name: str
    type: str
    shape: tuple[int, int, int]
    fields: UnitFields | None
    calls: int = 1
    dims: tuple[int, int, int] | None = NCHW

    @property
    def units(self) -> int:
        return self.shape[0]

    @property
    def receptive_field(self) -> ReceptiveField | None:
        """The one field shared by every unit; ``None`` when unknown or per unit (see ``fields``)."""
        return self.fields.uniform if self.fields is not None else None

    def to_dict(self) -> dict:
        """JSON-friendly: ``receptive_fields`` is :meth:`UnitFields.to_list` (or ``None``);
        ``receptive_field`` (the one shared field, or ``None``) stays for older readers."""
        return {
            "name": self.name,
            "type": self.type,
            "shape": list(self.shape),
            "dims": list(self.dims) if self.dims else None,
            "receptive_field": self.receptive_field.to_dict() if self.receptive_field else None,
            "receptive_fields": self.fields.to_list() if self.fields else None,
            "units": self.units,
        }


def to_nchw(output: torch.Tensor, dims: tuple[int, int, int]) -> torch.Tensor:
    """An output with its ``(units, rows, cols)`` at tensor ``dims`` as ``(N, units, rows, cols)`` (a view).

    Example:
        >>> to_nchw(torch.zeros(2, 5, 6, 7), (3, 1, 2)).shape
        torch.Size([2, 7, 5, 6])
    """
    return output.permute(0, *dims)


def output_shapes(model: nn.Module, input_size: tuple[int, int]) -> tuple[dict[str, tuple[int, ...]], Counter]:
    """Dry-run output shapes (without the batch dim) of every sub-module that returns a tensor.

    Returns the shapes and how many times each module ran.
    """
    shapes, calls, _ = _dry_forward(model, input_size)
    return shapes, calls


def _dry_forward(
    model: nn.Module, input_size: tuple[int, int], blocks: bool = False
) -> tuple[dict[str, tuple[int, ...]], Counter, list[str] | None]:
    """:func:`output_shapes` and, with ``blocks``, the same forward's :func:`~convscope.network.blocks.find_blocks`."""
    names = [name for name, _ in model.named_modules() if name]
    shapes: dict[str, tuple[int, ...]] = {}
    calls: Counter = Counter()

    def record(name: str, output: object) -> None:
        calls[name] += 1
        if isinstance(output, torch.Tensor):
            shapes[name] = tuple(output.shape[1:])

    x = torch.zeros(1, 3, *input_size, device=model_device(model))
    with dry_run(model, input_size), capture(model, names, record, strict=False):
        if not blocks:
            model(x)
            return shapes, calls, None
        with trace(model, x) as traced:
            model(x)
    return shapes, calls, find_blocks(model, traced)


def discover_layers(model: nn.Module, input_size: tuple[int, int]) -> list[LayerInfo]:
    """Every sub-module whose output is a 4-d map or ``(N, C)``, in forward order.

    Token outputs ``(N, L, C)`` are not listed (no rows and cols to scan).

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2))
        >>> [(l.name, l.shape) for l in discover_layers(model, (32, 32))]
        [('0', (8, 30, 30)), ('1', (8, 30, 30)), ('2', (8, 15, 15))]
    """
    shapes, calls = output_shapes(model, input_size)
    return _describe(model, shapes, calls, input_size)


def _describe(
    model: nn.Module, shapes: dict, calls: Counter, input_size: tuple[int, int], only: Collection[str] | None = None
) -> list[LayerInfo]:
    """:class:`LayerInfo` of every layer with a map or ``(N, C)`` output (of those in ``only`` if given)."""
    modules = dict(model.named_modules())
    names = [n for n in shapes if len(shapes[n]) in (1, 3) and (only is None or n in only)]
    geometry = unit_geometry(model, [n for n in names if len(shapes[n]) == 3 and calls[n] == 1], input_size)
    infos = []
    for name in names:
        kind = _type_name(modules[name])
        if len(shapes[name]) == 1:
            units = shapes[name][0]
            infos.append(LayerInfo(name, kind, (units, 1, 1), UnitFields.of(_global(input_size), units), calls[name]))
            continue
        fields, dims = geometry.get(name, (None, None))
        if dims is None and kind in NCHW_TYPES:
            dims = NCHW  # the module itself says so
        if dims is None:
            fields = None
        shape = tuple(shapes[name][d - 1] for d in dims) if dims else shapes[name]
        if fields is not None and fields.units != shape[0]:
            fields = None
        infos.append(LayerInfo(name, kind, shape, fields, calls[name], dims))  # type: ignore[arg-type]
    return infos


def _global(input_size: tuple[int, int]) -> ReceptiveField:
    """The field of a flat layer: every unit sees the whole input."""
    return ReceptiveField(size=input_size, stride=(0, 0), offset=(0, 0))


def _is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) or getattr(module, "original_name", None) == "Conv2d"  # TorchScript


def default_layers(model: nn.Module, input_size: tuple[int, int] | None = None) -> list[str]:
    """The stem and every block: the layers convscope scans by default, in forward order.

    The rule, from one dry forward (eval mode, no gradients, a zero image of ``input_size``):

    - A *cut* is a tensor through which alone everything after it depends on the input
      (no later operation reads an input-dependent tensor made before it).
    - A module call is a *cut module* when it runs once and returns one tensor that is
      a cut; it *has a conv* when a convolution runs inside it.
    - Walking from the root: the root is split into its children; so is a cut module
      with a conv that is a *pure container* (an ``nn.Sequential``, or a subclass that
      does not override ``forward``) holding at least two cut children with a conv. A
      pure container holding exactly one, which returns the container's own output
      (nothing, not even an in-place ReLU, runs after it), is named by that child
      (``features.1`` holding one MBConv -> ``features.1.0``). Every other cut module
      with a conv is a *block*: one default layer. Everything else is left out
      (activations, norms, pools, heads, the parts of a block, modules that do not
      run). A module that is never called itself (an ``nn.ModuleList`` or
      ``nn.ModuleDict``) is looked through: its children stand in for it. When the
      root has exactly one cut child with a conv (a wrapper such as
      ``Sequential(normalise, net)``), that child is split like a root if that gives
      two or more layers.
    - Blocks that cannot be scanned (no ``(N, C, H, W)``-like map of known layout, nor
      ``(N, C)``) are left out; if no block is left, every ``nn.Conv2d`` that runs
      once is the default (:func:`conv_layers`).

    So a chain of convolutions keeps every conv: AlexNet's ``features.0, 3, 6, 8, 10``,
    VGG's convs. A ResNet gives ``conv1`` and every BasicBlock or Bottleneck
    (``layer1.0`` ...); EfficientNet and MobileNet their stem, every MBConv or
    InvertedResidual and their last conv block; DenseNet ``features.conv0``, the dense
    blocks and the transitions; GoogLeNet and Inception-v3 their stem convs and every
    Inception module; SqueezeNet ``features.0``, the Fire modules and ``classifier``
    (the last conv with its ReLU and global pool, ``(N, classes, 1, 1)``); ConvNeXt
    its stem, every CNBlock and the downsampling convs. ``--layers convs`` asks for
    every conv instead.

    Without ``input_size`` (deprecated) nothing runs and every Conv2d is listed, used or not.

    Example:
        >>> default_layers(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)), (16, 16))
        ['0', '2']
    """
    if input_size is None:
        return [name for name, m in model.named_modules() if name and _is_conv(m)]
    shapes, calls, blocks = _dry_forward(model, input_size, blocks=True)
    infos = {info.name: info for info in _describe(model, shapes, calls, input_size, only=set(blocks or ()))}
    return _scannable(blocks or [], infos) or [n for n in _conv_layers(model, calls, warn=True) if calls[n] == 1]


def conv_layers(model: nn.Module, input_size: tuple[int, int]) -> list[str]:
    """Every ``nn.Conv2d`` that runs in an eval forward pass on an ``input_size`` image, in definition order.

    For AlexNet: the lecture's layers 1 to 5; for ResNet-50 all 53 convs. Convolutions
    that do not run (the auxiliary heads of GoogLeNet and Inception-v3 in eval mode)
    are skipped with a :class:`~convscope.errors.ConvscopeWarning` naming them.

    Example:
        >>> conv_layers(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)), (16, 16))
        ['0', '2']
    """
    _, calls = output_shapes(model, input_size)
    return _conv_layers(model, calls, warn=True)


def _conv_layers(model: nn.Module, calls: Counter, warn: bool) -> list[str]:
    convs = [name for name, m in model.named_modules() if name and _is_conv(m)]
    unused = [name for name in convs if calls[name] == 0]
    if unused and warn:
        shown = ", ".join(unused[:6]) + (f", ... ({len(unused) - 6} more)" if len(unused) > 6 else "")
        warnings.warn(
            f"{len(unused)} Conv2d layer(s) do not run in an eval forward pass and are not scanned: {shown}",
            ConvscopeWarning,
            stacklevel=3,
        )
    return [name for name in convs if calls[name] > 0]


def _scannable(names: Sequence[str], infos: Mapping[str, LayerInfo]) -> list[str]:
    """The names whose layer runs once and has a known layout."""
    return [n for n in names if n in infos and infos[n].calls == 1 and infos[n].dims is not None]


def _type_name(module: nn.Module) -> str:
    """The class name; for a converted TorchScript module, the class it was scripted from."""
    return getattr(module, "original_name", None) or type(module).__name__


#: What ``--layers`` keywords mean (see :func:`_expand`).
KEYWORDS = {
    "blocks": "the stem and every block (the default; see default_layers)",
    "convs": "every Conv2d that runs",
}


def _expand(requested: Sequence[str], infos: dict[str, LayerInfo], keywords: Mapping[str, Sequence[str]]) -> list[str]:
    """Layer names with every keyword and pattern replaced by the scannable layers it stands for.

    A keyword is ``blocks`` (the stem and every block: the default layers) or ``convs``
    (every Conv2d that runs); ``keywords`` gives their layers. It wins over a module of
    that name: name such a module with a glob (``block[s]``). A pattern is a shell glob
    over dotted names (``layer*.conv2``, ``features.*``) or ``type:CLASS``
    (``type:Conv2d``: every layer of that class), expanded in forward order. Layers that
    cannot be scanned (run twice per forward, or of unknown layout) are left out of a
    keyword's or pattern's matches; other names pass through as they are.

    Example:
        >>> infos = {n: LayerInfo(n, t, (1, 1, 1), None) for n, t in [("a.conv", "Conv2d"), ("a.relu", "ReLU"), ("b.conv", "Conv2d")]}
        >>> _expand(["*.conv", "type:ReLU", "x"], infos, {})
        ['a.conv', 'b.conv', 'a.relu', 'x']
        >>> _expand(["blocks", "a.relu"], infos, {"blocks": ["a", "b.conv"]})
        ['b.conv', 'a.relu']
    """
    names: list[str] = []
    for item in requested:
        if item in KEYWORDS:
            matched = list(keywords.get(item, ()))
        elif item.startswith("type:"):
            matched = [n for n, info in infos.items() if info.type == item[5:]]
        elif any(c in item for c in "*?["):
            matched = [n for n in infos if fnmatch.fnmatchcase(n, item)]
        else:
            names.append(item)
            continue
        matched = _scannable(matched, infos)
        if not matched:
            raise LayerError(
                f"no layer that can be scanned matches {item!r}",
                hint="name layers, the keywords blocks (the stem and every block) or convs (every Conv2d that runs), "
                "shell globs over dotted names (layer*.conv2) or type:CLASS (type:Conv2d); "
                "run `convscope layers MODEL` to list the layers",
            )
        names.extend(matched)
    return names


def select_layers(
    model: nn.Module, requested: Sequence[str] | None, input_size: tuple[int, int]
) -> list[LayerInfo]:
    """Validate the requested layers (default: the stem and every block, :func:`default_layers`) and describe them.

    ``requested`` holds names, keywords and patterns (see :func:`_expand`).

    Raises:
        LayerError: a name is unknown, returns no feature map (tokens ``(N, L, C)``
            included), runs twice per forward, or outputs a 4-d tensor whose layout
            (which dims are units, rows, cols) is not known.
    """
    shapes, calls, blocks = _dry_forward(model, input_size, blocks=True)
    infos = {info.name: info for info in _describe(model, shapes, calls, input_size)}
    used = set(requested) if requested else {"blocks"}
    kept = _scannable(blocks or [], infos)
    convs = _scannable(_conv_layers(model, calls, warn="convs" in used or (not kept and "blocks" in used)), infos)
    keywords = {"blocks": kept or convs, "convs": convs}
    names = _expand(requested, infos, keywords) if requested else keywords["blocks"]
    if not names:
        raise LayerError("the model has no Conv2d layer to scan", hint="name layers with --layers; `convscope layers MODEL` lists them")
    modules = dict(model.named_modules())
    chosen = []
    hint = "run `convscope layers MODEL` to list the layers you can pick"
    for name in dict.fromkeys(names):  # drop repeats, keep order
        if name not in modules or not name:
            close = [n for n in infos if n.endswith(name) or name in n][:5]
            raise LayerError(
                f"the model has no layer named {name!r}" + (f" (similar: {', '.join(close)})" if close else ""),
                hint=hint,
            )
        if name not in infos:
            shape = shapes.get(name)
            if shape is not None and len(shape) == 2:
                raise LayerError(
                    f"layer {name!r} outputs tokens (N, {shape[0]}, {shape[1]}), not a map with rows and cols",
                    hint="pick a layer whose output is (N, C, H, W) or (N, H, W, C), e.g. one after the tokens "
                    "are reshaped into a map; " + hint,
                )
            raise LayerError(f"layer {name!r} does not output a feature map (N, C, H, W) or (N, C)", hint=hint)
        info = infos[name]
        if info.calls > 1:
            raise LayerError(
                f"layer {name!r} runs {info.calls} times in one forward pass (a shared module)",
                hint="its outputs cannot be told apart; pick the layer before or after it",
            )
        if info.dims is None:
            raise LayerError(
                f"layer {name!r} outputs a 4-d tensor {tuple(info.shape)} whose layout is not known "
                "(which dims hold units, rows and cols: the receptive-field engine lost track of them)",
                hint="pick a Conv2d, norm or pooling layer nearby, or a layer `convscope layers MODEL` "
                "shows with a receptive field",
            )
        chosen.append(info)
    return chosen
