"""Invariance sweeps (Zeiler & Fergus 2014, Figure 5) and Zhang (2019)'s shift consistency.

For each image, in the model-input frame, and each transformation of :mod:`.transforms`:

- the *first layer*: the first ``nn.Conv2d`` that runs, its whole output map flattened;
- the *late layer*: the penultimate layer, the input of the classifier head: the last default
  layer (:func:`~convscope.network.layers.default_layers`) whose output is not the model's
  output, globally average-pooled to ``(C,)`` (on a ResNet exactly the last Linear's input;
  on SqueezeNet the last Fire module, pooled);
- distance: ``||f(T x) - f(x)|| / ||f(x)||``, the Euclidean distance relative to the original's
  norm (the paper draws raw distances; relative ones compare across layers and networks);
- the softmax probability of the image's true class, where it is known;
- optionally one unit's spatial maximum.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from convscope.analysis.transforms import Sweep, translate
from convscope.errors import LayerError
from convscope.hooks import capture
from convscope.network.layers import conv_layers, default_layers, output_shapes
from convscope.network.load import Network


def feature_layers(network: Network) -> tuple[str, str]:
    """``(first, late)``: the first conv that runs and the penultimate default layer (see the module doc).

    Example:
        >>> feature_layers(load_network("torchvision:alexnet"))  # doctest: +SKIP
        ('features.0', 'features.10')
    """
    size = network.preprocess.input_size
    convs = conv_layers(network.model, size)
    if not convs:
        raise LayerError("the model has no nn.Conv2d that runs", hint="invariance needs a ConvNet")
    shapes, _ = output_shapes(network.model, size)
    with torch.no_grad():
        was = network.model.training
        network.model.eval()
        try:
            out_numel = network.model(torch.zeros(1, 3, *size, device=_device(network))).numel()
        finally:
            network.model.train(was)
    late = [n for n in default_layers(network.model, size) if int(np.prod(shapes[n])) != out_numel]
    return convs[0], (late[-1] if late else convs[-1])


def _device(network: Network) -> torch.device:
    return next(network.model.parameters()).device


@dataclass(frozen=True)
class Curves:
    """One image under one sweep; every array has one value per swept value.

    Attributes:
        kind, values: the sweep.
        first, late: relative feature distances at the first and late layer.
        probability: the true class's probability, or ``None`` (label unknown).
        unit: the chosen unit's spatial maximum, or ``None``.
    """

    kind: str
    values: tuple[float, ...]
    first: tuple[float, ...]
    late: tuple[float, ...]
    probability: tuple[float, ...] | None = None
    unit: tuple[float, ...] | None = None

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _features(network: Network, batch: torch.Tensor, layers: tuple[str, str], unit: tuple[str, int] | None) -> tuple[torch.Tensor, ...]:
    """float pixels ``(N, 3, H, W)`` -> first ``(N, D1)``, late ``(N, C)``, probabilities ``(N, K)``, unit ``(N,)``."""
    seen: dict[str, torch.Tensor] = {}
    names = list(dict.fromkeys([*layers, *([unit[0]] if unit else [])]))
    model = network.model
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), capture(model, names, lambda name, out: seen.__setitem__(name, out.detach().float())):
            logits = model(network.preprocess.standardize(batch.to(_device(network))))
    finally:
        model.train(was)
    first = seen[layers[0]].flatten(1)
    late = seen[layers[1]]
    late = late.mean(dim=(2, 3)) if late.dim() == 4 else late.flatten(1)
    u = seen[unit[0]][:, unit[1]].flatten(1).amax(1) if unit else torch.zeros(len(batch))
    return first.cpu(), late.cpu(), logits.float().flatten(1).softmax(1).cpu(), u.cpu()


def sweep_curves(
    network: Network, image: torch.Tensor, sweep: Sweep, *, label: int | None = None, unit: tuple[str, int] | None = None, layers: tuple[str, str] | None = None
) -> Curves:
    """The curves of one image ``(3, H, W)`` (float, ``[0, 1]``, model-input frame) under ``sweep``.

    Example:
        >>> from torch import nn
        >>> from convscope.network.preprocess import Preprocess
        >>> model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
        >>> network = Network(model.eval(), "example", Preprocess(input_size=(16, 16), resize=None))
        >>> curves = sweep_curves(network, torch.rand(3, 16, 16), Sweep("rotation", (0.0, 90.0)), label=1)
        >>> curves.first[0], curves.late[0], len(curves.probability)  # 0 degrees changes nothing
        (0.0, 0.0, 2)
    """
    layers = layers or feature_layers(network)
    fill = network.preprocess.mean
    batch = torch.stack([image] + [sweep.apply(image, v, fill) for v in sweep.values])
    first, late, prob, u = _features(network, batch, layers, unit)

    def relative(f: torch.Tensor) -> tuple[float, ...]:
        norm = float(f[0].norm()) or 1.0
        return tuple(float((f[i] - f[0]).norm()) / norm for i in range(1, len(f)))

    probability = tuple(float(p) for p in prob[1:, label]) if label is not None and 0 <= label < prob.shape[1] else None
    return Curves(sweep.kind, sweep.values, relative(first), relative(late), probability, tuple(float(v) for v in u[1:]) if unit else None)


def shift_consistency(network: Network, image: torch.Tensor, shift: int, *, pairs: int = 20, generator: torch.Generator | None = None) -> float:
    """Zhang (2019): the share of ``pairs`` pairs of random shifts (rows and cols in ``-shift..shift``,
    mean-colour fill, not circular) of ``image`` ``(3, H, W)`` whose top-1 classes agree.

    Example:
        >>> shift_consistency(network, torch.rand(3, 32, 32), 4, generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
        0.85
    """
    generator = generator or torch.Generator().manual_seed(0)
    offsets = torch.randint(-shift, shift + 1, (pairs, 2, 2), generator=generator).tolist()
    fill = network.preprocess.mean
    batch = torch.stack([translate(image, r, fill, c) for pair in offsets for r, c in pair])
    model = network.model
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            top = model(network.preprocess.standardize(batch.to(_device(network)))).flatten(1).argmax(1).cpu().view(pairs, 2)
    finally:
        model.train(was)
    return int((top[:, 0] == top[:, 1]).sum()) / pairs


@dataclass(frozen=True)
class ImageInvariance:
    """One image's curves for every sweep, its true class and its shift consistency."""

    image: str
    label: int | None
    curves: tuple[Curves, ...]
    consistency: float

    def to_dict(self) -> dict:
        return {"image": self.image, "label": self.label, "shift_consistency": self.consistency, "curves": [c.to_dict() for c in self.curves]}


@dataclass(frozen=True)
class Invariance:
    """The whole experiment: layers, sweeps, unit and every image's result."""

    first_layer: str
    late_layer: str
    unit: tuple[str, int] | None
    shift: int
    images: tuple[ImageInvariance, ...] = field(default=())

    @property
    def mean_consistency(self) -> float:
        return float(np.mean([i.consistency for i in self.images])) if self.images else float("nan")

    def to_dict(self) -> dict:
        return {
            "first_layer": self.first_layer,
            "late_layer": self.late_layer,
            "unit": None if self.unit is None else {"layer": self.unit[0], "unit": self.unit[1]},
            "max_shift_px": self.shift,
            "distance": "||f(T x) - f(x)|| / ||f(x)||; late layer globally average-pooled",
            "mean_shift_consistency": self.mean_consistency,
            "images": [i.to_dict() for i in self.images],
        }


def invariance(
    network: Network,
    images: Sequence[tuple[str, torch.Tensor, int | None]],
    sweeps: Sequence[Sweep],
    *,
    shift: int,
    unit: tuple[str, int] | None = None,
    pairs: int = 20,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
) -> Invariance:
    """Every image ``(name, pixels (3, H, W) in [0, 1], label or None)`` under every sweep.

    Example:
        >>> invariance(network, [("a.png", torch.rand(3, 32, 32), 0)], default_sweeps((32, 32)), shift=9)  # doctest: +SKIP
    """
    layers = feature_layers(network)
    results = []
    for name, pixels, label in images:
        curves = tuple(sweep_curves(network, pixels, s, label=label, unit=unit, layers=layers) for s in sweeps)
        score = shift_consistency(network, pixels, shift, pairs=pairs, generator=torch.Generator().manual_seed(seed))
        results.append(ImageInvariance(name, label, curves, score))
        if progress:
            progress()
    return Invariance(layers[0], layers[1], unit, shift, tuple(results))
