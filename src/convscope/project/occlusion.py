"""Occlusion sensitivity (Zeiler & Fergus 2014, Fig. 7): slide a grey square, watch a target.

:func:`occlusion_map` returns the target's value for every square position;
:func:`render_occlusion` draws how much it dropped over the image. Squares start
at ``0, stride, 2 * stride, ...`` while they fit inside the input, so a map has
``(H - size) // stride + 1`` rows and ``(W - size) // stride + 1`` cols.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from convscope.errors import ConvscopeError, GeometryError, LayerError
from convscope.network.device import model_device
from convscope.network.geometry import Box
from convscope.network.layers import NCHW, to_nchw
from convscope.network.modes import eval_mode
from convscope.hooks import capture, get_module, run_until_captured


@dataclass(frozen=True)
class UnitTarget:
    """One unit of a layer: its max over positions, or its value at ``position`` (row, col).

    ``dims``: the tensor dims of the layer output's units, rows and cols (``LayerInfo.dims``;
    ``(3, 1, 2)`` for a channels-last layer).
    """

    layer: str
    unit: int
    position: tuple[int, int] | None = None
    dims: tuple[int, int, int] = NCHW


@dataclass(frozen=True)
class ClassTarget:
    """The softmax probability of class ``index`` of the model's output ``(N, classes)``."""

    index: int


Target = UnitTarget | ClassTarget


def target_values(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """The target's value ``(N,)`` for a batch ``x`` ``(N, 3, H, W)``, without gradients.

    Runs in eval mode (each module's flag restored after).

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())
        >>> target_values(model, torch.zeros(4, 3, 8, 8), UnitTarget("1", 0)).shape
        torch.Size([4])
    """
    x = x.to(model_device(model, x.device))
    with torch.no_grad(), eval_mode(model):
        if isinstance(target, ClassTarget):
            logits = model(x)
            if logits.dim() != 2 or not 0 <= target.index < logits.shape[1]:
                raise ConvscopeError(
                    f"class {target.index} is not in the model output of shape {tuple(logits.shape)}",
                    hint="use a class index of the classifier, or a UnitTarget for a hidden layer",
                )
            return logits.softmax(dim=1)[:, target.index]
        get_module(model, target.layer)
        seen: dict[str, torch.Tensor] = {}
        with capture(model, [target.layer], seen.__setitem__, stop_after_last=True):
            run_until_captured(model, x)
    y = seen[target.layer]
    if y.dim() == 4:
        y = to_nchw(y, target.dims)
    if y.dim() != 4 or not 0 <= target.unit < y.shape[1]:
        raise LayerError(
            f"unit {target.unit} is not in layer {target.layer!r} of shape {tuple(y.shape[1:])}",
            hint="pick a unit below the layer's channel count of a convolutional layer",
        )
    plane = y[:, target.unit]
    if target.position is None:
        return plane.flatten(1).max(dim=1).values
    row, col = target.position
    if not (0 <= row < plane.shape[1] and 0 <= col < plane.shape[2]):
        raise LayerError(
            f"position {target.position} is outside layer {target.layer!r} of size {tuple(plane.shape[1:])}",
            hint="use a (row, col) of the layer output, e.g. a hit's",
        )
    return plane[:, row, col]


def occlusion_map(
    model: nn.Module,
    input: torch.Tensor,
    *,
    target: Target,
    size: int,
    stride: int,
    fill: torch.Tensor | float = 0.0,
    batch_size: int = 64,
    region: Box | None = None,
) -> torch.Tensor:
    """The target's value with a ``size x size`` square of ``fill`` at each position.

    Args:
        input: ``(1, 3, H, W)`` normalised model input.
        fill: the square's value, a float or a ``(3,)`` colour in normalised space;
            0 is the dataset's mean colour (the grey square).
        batch_size: occluded copies per forward pass.
        region: slide the square over this box only (e.g. a hit's receptive
            field; it may reach past the image, where the square paints nothing);
            default: the whole input.

    Returns:
        ``((h - size) // stride + 1, (w - size) // stride + 1)`` values on the CPU,
        ``h, w`` the region's size; entry ``[i, j]`` has the square at rows
        ``[top + i * stride, top + i * stride + size)`` and cols likewise.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 1, 1), nn.ReLU())
        >>> occlusion_map(model, torch.randn(1, 3, 8, 8), target=UnitTarget("1", 0), size=4, stride=2).shape
        torch.Size([3, 3])
    """
    if input.dim() != 4 or input.shape[0] != 1:
        raise ConvscopeError(f"occlusion takes one input (1, 3, H, W), not {tuple(input.shape)}", hint="use x[None]")
    height, width = input.shape[-2:]
    region = region if region is not None else Box(0, 0, height, width)
    if size < 1 or stride < 1 or batch_size < 1 or size > min(region.height, region.width):
        raise GeometryError(
            f"square size {size}, stride {stride}, batch_size {batch_size} do not fit a region of "
            f"{region.height}x{region.width}",
            hint="use 1 <= size <= the region's (default: the input's) height and width, stride >= 1, batch_size >= 1",
        )
    device = model_device(model, input.device)
    x = input.to(device)
    colour = torch.as_tensor(fill, dtype=x.dtype, device=device).reshape(-1, 1, 1)
    tops = range(region.top, region.bottom - size + 1, stride)
    lefts = range(region.left, region.right - size + 1, stride)
    positions = [(t, l) for t in tops for l in lefts]
    values = []
    for start in range(0, len(positions), batch_size):
        chunk = positions[start : start + batch_size]
        batch = x.repeat(len(chunk), 1, 1, 1)
        for k, (t, l) in enumerate(chunk):
            batch[k, :, max(t, 0) : max(t + size, 0), max(l, 0) : max(l + size, 0)] = colour
        values.append(target_values(model, batch, target).cpu())
    return torch.cat(values).reshape(len(tops), len(lefts))


def render_occlusion(
    image: np.ndarray, heat: torch.Tensor, size: int, stride: int, *, baseline: float | None = None
) -> np.ndarray:
    """Draw an occlusion map over its ``(H, W, 3)`` uint8 image; returns a new one.

    The drop ``baseline - value`` of each square position colours the pixels
    nearest the square's centre: red where occluding lowers the target (the part
    matters), blue where it raises it, with opacity ``0.7 * |drop| / max |drop|``
    over the image. The square of the largest drop is outlined in yellow, 2 px.
    ``baseline`` is the target's value on the intact image (see
    :func:`target_values`); without it, the map's max is taken.

    Example:
        >>> out = render_occlusion(np.zeros((8, 8, 3), np.uint8), torch.tensor([[1.0, 0.0]]), 4, 4)
        >>> out.shape, out[0, 4].tolist()
        ((8, 8, 3), [255, 255, 0])
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or heat.dim() != 2:
        raise ConvscopeError(
            f"need an (H, W, 3) uint8 image and a (rows, cols) map, not {image.shape} {image.dtype} and "
            f"{tuple(heat.shape)}",
            hint="pass the model-input image as a numpy array and occlusion_map's result",
        )
    values = heat.detach().cpu().double().numpy()
    drop = (values.max() if baseline is None else baseline) - values
    height, width = image.shape[:2]
    rows = np.clip(np.rint((np.arange(height) + 0.5 - size / 2) / stride), 0, values.shape[0] - 1).astype(int)
    cols = np.clip(np.rint((np.arange(width) + 0.5 - size / 2) / stride), 0, values.shape[1] - 1).astype(int)
    per_pixel = drop[rows[:, None], cols[None, :]]
    peak = np.abs(drop).max()
    alpha = 0.7 * np.abs(per_pixel) / peak if peak > 0 else np.zeros_like(per_pixel)
    colour = np.where(per_pixel[..., None] >= 0, [255.0, 0.0, 0.0], [0.0, 0.0, 255.0])
    out = image.astype(np.float64) * (1 - alpha[..., None]) + colour * alpha[..., None]
    out = np.rint(out).astype(np.uint8)
    i, j = np.unravel_index(np.argmax(drop), drop.shape)
    top, left = i * stride, j * stride
    bottom, right = min(top + size, height), min(left + size, width)
    yellow = np.array([255, 255, 0], np.uint8)
    out[top : top + 2, left:right] = yellow
    out[bottom - 2 : bottom, left:right] = yellow
    out[top:bottom, left : left + 2] = yellow
    out[top:bottom, right - 2 : right] = yellow
    return out
