"""Which layers a model has, what they output, and which ones convscope scans by default.

Discovery is a dry run: one forward pass of a zero image with a hook on every
sub-module, recording the shape of what each returns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from convscope.errors import LayerError
from convscope.network.device import model_device
from convscope.network.geometry import ReceptiveField, receptive_fields
from convscope.network.modes import dry_run
from convscope.hooks import capture


@dataclass(frozen=True)
class LayerInfo:
    """One candidate layer.

    Attributes:
        name: dotted module name (``features.3``).
        type: the module's class name (``Conv2d``).
        shape: output ``(units, rows, cols)`` for the dry-run input; ``(units, 1, 1)``
            for a layer with a flat ``(N, units)`` output.
        receptive_field: the geometry of its positions, ``None`` where unknown.
        calls: how often it runs in one forward pass (more than 1: cannot be scanned).
    """

    name: str
    type: str
    shape: tuple[int, int, int]
    receptive_field: ReceptiveField | None
    calls: int = 1

    @property
    def units(self) -> int:
        return self.shape[0]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "shape": list(self.shape),
            "receptive_field": self.receptive_field.to_dict() if self.receptive_field else None,
            "units": self.units,
        }


def output_shapes(model: nn.Module, input_size: tuple[int, int]) -> tuple[dict[str, tuple[int, ...]], Counter]:
    """Dry-run output shapes (without the batch dim) of every sub-module that returns a tensor.

    Returns the shapes and how many times each module ran.
    """
    names = [name for name, _ in model.named_modules() if name]
    shapes: dict[str, tuple[int, ...]] = {}
    calls: Counter = Counter()

    def record(name: str, output: object) -> None:
        calls[name] += 1
        if isinstance(output, torch.Tensor):
            shapes[name] = tuple(output.shape[1:])

    with dry_run(model, input_size), capture(model, names, record, strict=False):
        model(torch.zeros(1, 3, *input_size, device=model_device(model)))
    return shapes, calls


def discover_layers(model: nn.Module, input_size: tuple[int, int]) -> list[LayerInfo]:
    """Every sub-module whose output is ``(N, C, H, W)`` or ``(N, C)``, in forward order.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2))
        >>> [(l.name, l.shape) for l in discover_layers(model, (32, 32))]
        [('0', (8, 30, 30)), ('1', (8, 30, 30)), ('2', (8, 15, 15))]
    """
    shapes, calls = output_shapes(model, input_size)
    modules = dict(model.named_modules())
    names = [n for n in shapes if len(shapes[n]) in (1, 3)]
    fields = receptive_fields(model, [n for n in names if len(shapes[n]) == 3 and calls[n] == 1], input_size)
    infos = []
    for name in names:
        shape = shapes[name] if len(shapes[name]) == 3 else (shapes[name][0], 1, 1)
        infos.append(
            LayerInfo(
                name=name,
                type=_type_name(modules[name]),
                shape=shape,  # type: ignore[arg-type]
                receptive_field=fields.get(name) if len(shapes[name]) == 3 else _global(input_size),
                calls=calls[name],
            )
        )
    return infos


def _global(input_size: tuple[int, int]) -> ReceptiveField:
    """The field of a flat layer: every unit sees the whole input."""
    return ReceptiveField(size=input_size, stride=(0, 0), offset=(0, 0))


def default_layers(model: nn.Module) -> list[str]:
    """Every ``nn.Conv2d`` in definition order (for AlexNet: the lecture's layers 1 to 5)."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) or getattr(m, "original_name", None) == "Conv2d"  # a converted TorchScript conv
    ]


def _type_name(module: nn.Module) -> str:
    """The class name; for a converted TorchScript module, the class it was scripted from."""
    return getattr(module, "original_name", None) or type(module).__name__


def select_layers(
    model: nn.Module, requested: Sequence[str] | None, input_size: tuple[int, int]
) -> list[LayerInfo]:
    """Validate the requested layer names (default: every Conv2d) and describe them.

    Raises:
        LayerError: a name is unknown, returns no feature map, or runs twice per forward.
    """
    infos = {info.name: info for info in discover_layers(model, input_size)}
    names = list(requested) if requested else default_layers(model)
    if not names:
        raise LayerError("the model has no Conv2d layer to scan", hint="name layers with --layers; `convscope layers MODEL` lists them")
    modules = dict(model.named_modules())
    chosen = []
    for name in dict.fromkeys(names):  # drop repeats, keep order
        if name not in modules or not name:
            close = [n for n in infos if n.endswith(name) or name in n][:5]
            raise LayerError(
                f"the model has no layer named {name!r}"
                + (f" (similar: {', '.join(close)})" if close else ""),
                hint="run `convscope layers MODEL` to list the layers you can pick",
            )
        if name not in infos:
            raise LayerError(
                f"layer {name!r} does not output a feature map (N, C, H, W) or (N, C)",
                hint="run `convscope layers MODEL` to list the layers you can pick",
            )
        if infos[name].calls > 1:
            raise LayerError(
                f"layer {name!r} runs {infos[name].calls} times in one forward pass (a shared module)",
                hint="its outputs cannot be told apart; pick the layer before or after it",
            )
        chosen.append(infos[name])
    return chosen

