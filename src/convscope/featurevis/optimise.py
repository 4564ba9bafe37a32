"""Feature visualisation by optimisation, many units of one layer in one batch.

:func:`visualise` optimises one image per unit (or several, with a diversity term) so that
the unit's activation is as high as it gets (or as low, with ``negative``): a Fourier
parameterisation with decorrelated colour (:mod:`~convscope.featurevis.param`), a new
random transform of every image at every step (:mod:`~convscope.featurevis.transforms`),
Adam. All images of a batch run through the network together; the forward pass stops after
the layer; the weights are frozen and the model in eval mode for the run and given back
after; hooks are removed in ``finally``. In the first :data:`REDIRECTED_STEPS` steps ReLUs
back-propagate by the ``"redirected"`` rule (:mod:`convscope.project.rules`), so a unit that
starts silent behind a ReLU still gets a gradient. The result records, per image, the unit's spatial max on the final image
without transforms: the statistic the scan ranks dataset hits by.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from convscope.errors import ConvscopeError, GeometryError, LayerError
from convscope.featurevis.objectives import WHERE, diversity, spatial_max, unit_values
from convscope.featurevis.param import FourierImage, colour_matrix
from convscope.featurevis.transforms import Robustness
from convscope.hooks import capture, run_until_captured
from convscope.network.device import model_device, model_dtype
from convscope.network.layers import NCHW, LayerInfo, select_layers, to_nchw
from convscope.network.load import Network
from convscope.network.modes import eval_mode, frozen
from convscope.project.rules import modified_relus

#: Steps at the start whose ReLUs back-propagate by the redirected rule.
REDIRECTED_STEPS = 16
#: The smallest image side optimised (a layer-1 unit of a 7-pixel field still gets room around it).
MIN_SIZE = 32
#: Called after every step of a batch as ``progress(done, total)`` in steps over all batches.
ProgressFn = Callable[[int, int], object]


@dataclass(frozen=True)
class FeatureVis:
    """Optimised images of some units of one layer.

    Attributes:
        layer: the layer.
        units: ``(N,)`` the unit of each image (a unit repeats with ``per_unit`` > 1).
        images: ``uint8 (N, H, W, 3)`` the optimised images, without transforms.
        reached: ``(N,)`` each image's unit at its strongest position on its optimised image.
        objective: ``(N,)`` the objective (centre or map, sign included) on the optimised image.
        size: ``(H, W)``.
        settings: the arguments of the run.
        seconds: wall time.
    """

    layer: str
    units: np.ndarray
    images: np.ndarray
    reached: np.ndarray
    objective: np.ndarray
    size: tuple[int, int]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def image_size(info: LayerInfo, units: Sequence[int], input_size: tuple[int, int]) -> tuple[int, int]:
    """The size that fits ``units`` of the layer ``info``: their largest receptive field, at least
    :data:`MIN_SIZE`, at most ``input_size`` (the whole input where the field is unknown)."""
    height, width = input_size
    if info.fields is None:
        return height, width
    sizes = [info.fields.field(u).size for u in units]
    side = max(max(s) for s in sizes)
    return min(height, max(MIN_SIZE, side)), min(width, max(MIN_SIZE, side))


def visualise(
    network: Network,
    layer: str,
    units: Sequence[int] | None = None,
    *,
    where: str = "centre",
    negative: bool = False,
    per_unit: int = 1,
    diversity_weight: float = 0.0,
    size: int | tuple[int, int] | None = None,
    steps: int = 128,
    lr: float = 0.05,
    seed: int = 0,
    colour: torch.Tensor | None = None,
    robustness: Robustness = Robustness(),
    batch_size: int = 64,
    progress: ProgressFn | None = None,
    info: LayerInfo | None = None,
) -> FeatureVis:
    """Optimise an image for each of ``units`` of ``layer``.

    Args:
        network: a loaded network (its preprocessing normalises the pixels).
        layer: a dotted layer name with a spatial map ``(N, C, H, W)``.
        units: unit indices (default: every unit of the layer).
        where: ``"centre"`` (the unit at the centre position) or ``"map"`` (its mean over the map).
        negative: minimise instead (what the unit responds to least).
        per_unit: images per unit; with ``diversity_weight`` > 0 they are pushed apart.
        size: image side(s); default :func:`image_size`.
        steps, lr: Adam steps and step size.
        seed: seeds the initial images and every random transform.
        colour: ``(3, 3)`` colour matrix (:func:`~convscope.featurevis.param.colour_matrix`); default ImageNet's.
        robustness: the random transforms.
        batch_size: images optimised together.
        progress: called after every step.
        info: the layer's :class:`~convscope.network.layers.LayerInfo` for the model's input size,
            when the caller has it (the atlas does): saves a dry run of the network.

    Returns:
        A :class:`FeatureVis`; ``images`` is ``uint8 (len(units) * per_unit, H, W, 3)``, a unit's images next to each other.

    Raises:
        LayerError: unknown layer, unit out of range, or a layer without a spatial map.
        ConvscopeError: bad arguments.

    Example:
        >>> vis = visualise(load_network("torchvision:alexnet"), "features.3", [0, 1], steps=64)  # doctest: +SKIP
        >>> vis.images.shape  # doctest: +SKIP
        (2, 51, 51, 3)
    """
    if where not in WHERE:
        raise ConvscopeError(f"unknown objective position {where!r}", hint=f"use one of {', '.join(WHERE)}")
    if steps < 1 or per_unit < 1 or batch_size < 1 or lr <= 0:
        raise ConvscopeError(f"steps, per_unit and batch_size must be at least 1 and lr above 0, got {steps}, {per_unit}, {batch_size}, {lr}")
    model = network.model
    input_size = network.preprocess.input_size
    if info is None:
        info = select_layers(model, [layer], input_size)[0]  # unknown names fail here
    if info.shape[1] * info.shape[2] < 1 or info.dims is None:
        raise LayerError(f"layer {layer!r} has no spatial map to optimise", hint="pick a convolutional layer; `convscope layers MODEL` lists them")
    chosen = list(range(info.units)) if units is None else [int(u) for u in units]
    bad = [u for u in chosen if not 0 <= u < info.units]
    if bad:
        raise LayerError(f"layer {layer!r} has {info.units} units; no unit {bad[0]}", hint=f"units are 0 to {info.units - 1}")
    if not chosen:
        raise ConvscopeError("no unit to visualise", hint="name at least one unit")
    hw = _size(size) if size is not None else image_size(info, chosen, input_size)
    every = np.repeat(np.array(chosen, dtype=np.int64), per_unit)
    colour = colour if colour is not None else colour_matrix()
    device = model_device(model)
    settings = {
        "layer": layer, "where": where, "negative": negative, "per_unit": per_unit, "diversity_weight": diversity_weight,
        "size": list(hw), "steps": steps, "lr": lr, "seed": seed, "robustness": vars(robustness) | {"scale": list(robustness.scale)},
    }
    run = _Run(network, layer, info.dims or NCHW, where, -1.0 if negative else 1.0, diversity_weight, robustness, steps, lr)
    began = time.perf_counter()
    images, reached, objective = [], [], []
    per_batch = max(per_unit, batch_size // per_unit * per_unit)  # a unit's images stay in one batch
    total = steps * -(-len(every) // per_batch)
    with eval_mode(model), frozen(model):
        for number, start in enumerate(range(0, len(every), per_batch)):
            batch = torch.from_numpy(every[start : start + per_batch]).to(device)
            generator = torch.Generator().manual_seed(seed * 1_000_003 + number)
            done = number * steps
            shown = None if progress is None else (lambda step, d=done: progress(d + step, total))
            pixels, values, best = run.optimise(batch, hw, colour, generator, shown)
            images.append(pixels)
            reached.append(best)
            objective.append(values)
    return FeatureVis(
        layer, every, np.concatenate(images), np.concatenate(reached), np.concatenate(objective), hw, settings,
        time.perf_counter() - began,
    )


class _Run:
    """The optimisation of one batch; the settings shared by all batches."""

    def __init__(
        self, network: Network, layer: str, dims: tuple[int, int, int], where: str, sign: float,
        diversity_weight: float, robustness: Robustness, steps: int, lr: float,
    ) -> None:
        self.network, self.layer, self.dims = network, layer, dims
        self.where, self.sign, self.diversity_weight = where, sign, diversity_weight
        self.robustness, self.steps, self.lr = robustness, steps, lr

    def output(self, pixels: torch.Tensor) -> torch.Tensor:
        """The layer's output ``(N, C, H, W)`` for ``pixels`` ``(N, 3, H, W)`` in [0, 1]."""
        seen: dict[str, torch.Tensor] = {}
        model = self.network.model
        # Channels-last input: PyTorch's CPU convolutions run about 20% faster that way (ResNet-20,
        # a batch of 64 at 32 px, forward and backward), and the model's own weights stay as they are.
        x = self.network.preprocess.standardize(pixels).to(model_dtype(model)).contiguous(memory_format=torch.channels_last)
        with capture(model, [self.layer], lambda name, out: seen.setdefault(name, out), stop_after_last=True):
            run_until_captured(model, x)
        out = seen[self.layer]
        if out.dim() != 4:
            raise LayerError(f"layer {self.layer!r} outputs {tuple(out.shape)}, no spatial map", hint="pick a convolutional layer")
        return to_nchw(out, self.dims).float()

    def optimise(
        self, units: torch.Tensor, hw: tuple[int, int], colour: torch.Tensor, generator: torch.Generator,
        progress: Callable[[int], object] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        device = units.device
        image = FourierImage(len(units), *hw, colour, generator).to(device)
        optimizer = torch.optim.Adam(image.parameters(), lr=self.lr)
        groups = units
        for step in range(self.steps):
            # The redirected ReLUs wake silent units in the first steps (Lucid does it for 16); after
            # that the plain gradient takes over, without the cost of a Python ReLU at every call.
            with modified_relus(self.network.model, "redirected") if step < REDIRECTED_STEPS else nullcontext():
                optimizer.zero_grad()
                pixels = self.robustness.apply(image(), generator)
                try:
                    out = self.output(pixels)
                except RuntimeError as exc:
                    raise GeometryError(
                        f"the network cannot run on a {hw[0]}x{hw[1]} image: {str(exc).splitlines()[0]}", hint="use a larger size"
                    ) from None
                score = self.sign * unit_values(out, units, self.where)
                if self.diversity_weight > 0:
                    score = score + self.diversity_weight * diversity(out, groups)
                (-score.sum()).backward()
            optimizer.step()
            if progress is not None:
                progress(step + 1)
        with torch.no_grad():
            final = image()
            out = self.output(final)
            values = (self.sign * unit_values(out, units, self.where)).cpu().numpy()
            best = spatial_max(out if self.sign > 0 else -out, units).cpu().numpy() * self.sign
        pixels = (final.permute(0, 2, 3, 1).cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
        return pixels, values, best


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    if min(size) < 8:
        raise GeometryError(f"image size {size} is too small", hint="use at least 8 pixels a side")
    return int(size[0]), int(size[1])
