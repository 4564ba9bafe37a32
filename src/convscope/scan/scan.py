"""Pass 1: one streaming pass over every image, keeping each unit's strongest hits.

All chosen layers are observed in the same forward pass; each layer's output is
reduced inside its hook to one value per (image, unit), the image's strongest
activation and where it was, and offered to a :class:`RunningTopK`. Nothing of the
size of the data set is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from convscope.errors import LayerError
from convscope.network.device import model_device
from convscope.network.modes import eval_mode
from convscope.scan.hooks import capture, run_until_captured
from convscope.scan.topk import RunningTopK, TopK

#: A batch from the data loader: ``(pixels (N, 3, H, W) uint8, indices (N,), ok (N,) bool, errors)``.
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]


@dataclass(frozen=True)
class LayerScan:
    """What pass 1 learnt about one layer.

    Attributes:
        topk: every unit's hits: ``(units, k)`` values, image indices, flat positions.
        cols: the layer's output width, to turn a flat position into ``(row, col)``.
        mean: ``(units,)`` mean over all images of each image's strongest activation.
        signature: ``(M, units)`` each image's strongest activation for the first
            ``M`` images, used to tell units apart (see render.selection).
    """

    topk: TopK
    cols: int
    mean: torch.Tensor
    signature: torch.Tensor

    def row_col(self, unit: int, rank: int) -> tuple[int, int]:
        position = int(self.topk.positions[unit, rank])
        return divmod(position, self.cols)


@dataclass(frozen=True)
class ScanResult:
    """The output of :func:`scan`.

    Attributes:
        layers: per layer name, its :class:`LayerScan`.
        image_count: images that were read and scanned.
        failed: ``(image index, reason)`` of every image that could not be read.
    """

    layers: dict[str, LayerScan]
    image_count: int
    failed: tuple[tuple[int, str], ...]


class _LayerStats:
    """Running top-k, mean and signature of one layer."""

    def __init__(self, units: int, k: int, signature_images: int, device: torch.device) -> None:
        self.topk = RunningTopK(units, k, device)
        self.total = torch.zeros(units, dtype=torch.float64, device=device)
        self.signature: list[torch.Tensor] = []
        self.signature_left = signature_images
        self.units = units
        self.cols = 0

    def add(self, output: torch.Tensor, images: torch.Tensor) -> None:
        if output.dim() == 2:
            output = output[:, :, None, None]
        n, units, _, cols = output.shape
        self.cols = cols
        values, positions = output.reshape(n, units, -1).max(dim=2)
        self.topk.add(values, images, positions)
        self.total += values.sum(dim=0, dtype=torch.float64)
        if self.signature_left > 0:
            self.signature.append(values[: self.signature_left].float().cpu())
            self.signature_left -= min(n, self.signature_left)

    def result(self, image_count: int) -> LayerScan:
        signature = torch.cat(self.signature) if self.signature else torch.zeros(0, self.units)
        mean = (self.total / max(image_count, 1)).float().cpu()
        return LayerScan(self.topk.result(), self.cols, mean, signature)


def scan(
    model: nn.Module,
    layers: Sequence[tuple[str, int]],
    batches: Iterable[Batch],
    normalize: Callable[[torch.Tensor], torch.Tensor],
    *,
    k: int = 9,
    total: int | None = None,
    signature_images: int = 256,
    progress: bool = True,
) -> ScanResult:
    """Scan every batch and keep each unit's top ``k`` hits, one per image at most.

    Args:
        model: the network; its device is used and its train/eval mode restored.
        layers: ``(layer name, units)`` for every layer to scan.
        batches: :data:`Batch` tuples in image order (see convscope.data).
        normalize: ``uint8 (N, 3, H, W)`` pixels to the model input, e.g.
            ``Preprocess.normalize``.
        k: hits kept per unit.
        total: number of images, for the progress bar.
        signature_images: how many first images make up each unit's signature.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 2, 3))
        >>> batch = (torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.arange(4),
        ...          torch.ones(4, dtype=torch.bool), [""] * 4)
        >>> result = scan(model, [("0", 2)], [batch], lambda p: p.float(), k=3, progress=False)
        >>> result.layers["0"].topk.images.tolist()
        [[0, 1, 2], [0, 1, 2]]
    """
    device = model_device(model)
    stats = {name: _LayerStats(units, k, signature_images, device) for name, units in layers}
    current: dict[str, torch.Tensor] = {}
    failed: list[tuple[int, str]] = []
    count = 0

    def on_output(name: str, output: torch.Tensor) -> None:
        units = output.shape[1] if output.dim() > 1 else 0
        if units != stats[name].units:
            raise LayerError(
                f"layer {name!r} gave {units} units during the scan, {stats[name].units} in the dry run",
                hint="the model's output shape depends on its input; use a fixed --input-size",
            )
        stats[name].add(output, current["images"])

    bar = tqdm(total=total, unit="img", desc="scan", disable=not progress, dynamic_ncols=True)
    try:
        with eval_mode(model), torch.inference_mode(), capture(model, [n for n, _ in layers], on_output, stop_after_last=True):
            for pixels, indices, ok, errors in batches:
                failed.extend((int(i), e) for i, e, good in zip(indices, errors, ok) if not good)
                if ok.any():
                    current["images"] = indices[ok].to(device)
                    x = normalize(pixels[ok].to(device, non_blocking=True))
                    run_until_captured(model, x)
                    count += int(ok.sum())
                bar.update(len(indices))
    finally:
        bar.close()
    return ScanResult(
        layers={name: s.result(count) for name, s in stats.items()},
        image_count=count,
        failed=tuple(failed),
    )
