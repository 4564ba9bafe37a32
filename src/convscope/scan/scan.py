"""Pass 1: one streaming pass over every image, keeping each unit's hits and statistics.

All chosen layers are observed in the same forward pass; each layer's output is
reduced inside its hook to two values per (image, unit), the image's strongest and
weakest activation and where they were. The strongest feed the top hits, the
distribution (:class:`~convscope.stats.RunningQuantiles`), the moments and firing
rate (:class:`~convscope.stats.RunningMoments`) and, with labels, the per-class
means (:class:`~convscope.stats.RunningClassMeans`); the bottom hits come from the
weakest (see :class:`LayerScan`). Nothing of the size of the data set is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from convscope.errors import LayerError
from convscope.network.device import model_device, model_dtype
from convscope.network.layers import to_nchw
from convscope.network.modes import channels_last as channels_last_memory
from convscope.network.modes import eval_mode
from convscope.hooks import capture, run_until_captured
from convscope.scan.progress import BatchProgress
from convscope.scan.topk import RunningTopK, TopK
from convscope.stats import DEFAULT_BUDGET, ClassMeans, Distribution, Moments, RunningClassMeans, RunningMoments, RunningQuantiles

#: The quantile levels kept of each unit's distribution (its exact min and max are kept besides).
QUANTILE_LEVELS = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)

#: A batch from the data loader: ``(pixels (N, 3, H, W) uint8, indices (N,), ok (N,) bool, errors)``.
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]


@dataclass(frozen=True)
class LayerScan:
    """What pass 1 learnt about one layer.

    Attributes:
        topk: every unit's hits: ``(units, k)`` values, image indices, flat positions.
        cols: the layer's output width, to turn a flat position into ``(row, col)``.
        mean: ``(units,)`` mean over the images of each image's strongest finite
            activation (NaN for a unit that never had one).
        signature: ``(M, units)`` each image's strongest activation for a seeded
            sample of ``M`` images spread over the whole data set (see
            :func:`signature_sample`), used to tell units apart (see render.selection);
            ``-inf`` where an image had no finite activation of the unit.
        nonfinite: ``(units,)`` how many NaN or infinite activations each unit had
            (counted in every image where one reached the unit's max: every NaN and
            ``+inf``, and ``-inf`` where it is all a map holds); they never become hits
            and are left out of ``mean``.
        bottom: every unit's bottom hits, weakest first: ``(units, k)`` values, image
            indices (``-1`` where none), flat positions. For a unit that went below zero
            somewhere they are its k most negative activations, one per image (each image's
            minimum); for a unit never below zero (after a ReLU), the k images whose
            *strongest* activation is lowest, at the place of that maximum. Ties: earlier image first.
        bottom_min: ``(units,)`` bool, True where ``bottom`` holds minima (the unit went below zero).
        moments: mean, spread, firing rate (share of images whose strongest activation
            is above zero), dead and always-on flags of each image's strongest activation.
        distribution: quantiles and histogram of each image's strongest activation.
        class_means: with labels, each unit's mean strongest activation per class; else ``None``.
    """

    topk: TopK
    cols: int
    mean: torch.Tensor
    signature: torch.Tensor
    nonfinite: torch.Tensor
    bottom: TopK | None = None
    bottom_min: torch.Tensor | None = None
    moments: Moments | None = None
    distribution: Distribution | None = None
    class_means: ClassMeans | None = None


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


def signature_sample(images: int, size: int = 256, seed: int = 0) -> torch.Tensor:
    """``(min(size, images),)`` sorted image indices drawn without replacement from all
    ``images``, the same for the same arguments (an ImageFolder sorted by class gets
    every class its share, not the first one or two).

    Example:
        >>> signature_sample(10, 4).tolist()
        [1, 4, 5, 7]
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(images, generator=generator)[:size].sort().values


class _LayerStats:
    """Running top-k, bottom-k, signature, non-finite count and statistics of one layer.

    Statistics live on the CPU in float64 / int64 (MPS has no float64); the top-k and
    bottom-k live on the model's device. The bottom-k keep the *negated* values, so
    that the running top-k's rule (largest first, earlier image on ties) picks the
    lowest.
    """

    def __init__(self, units: int, k: int, signature: torch.Tensor, device: torch.device, classes: int = 0, budget: int = DEFAULT_BUDGET) -> None:
        self.topk = RunningTopK(units, k, device)
        self.bottom_of_max = RunningTopK(units, k, device)
        self.bottom_of_min = RunningTopK(units, k, device)
        self.moments = RunningMoments(units)
        self.quantiles = RunningQuantiles(units, budget)
        self.classes = RunningClassMeans(units, classes) if classes else None
        self.nonfinite = torch.zeros(units, dtype=torch.int64)
        self.signature_images = signature
        self.signature: list[torch.Tensor] = []
        self.units = units
        self.cols = 0

    def add(self, output: torch.Tensor, images: torch.Tensor, labels: torch.Tensor | None = None, block: int | None = None) -> None:
        """``output`` ``(N, units, rows, cols)`` or ``(N, units)``; ``images`` ``(N,)`` their indices; ``labels`` ``(N,)`` or None;
        ``block`` the batch's number in the data set (see :mod:`convscope.stats.tree`)."""
        if output.dim() == 2:
            output = output[:, :, None, None]
        n, units, _, cols = output.shape
        self.cols = cols
        flat = highs = lows = output.reshape(n, units, -1)
        values, least = flat.amax(dim=2), flat.amin(dim=2)
        # A NaN wins a max (torch's max propagates it), and so does +inf: a finite max means
        # the map is clean of both, and the full check (a pass as long as the max) runs only
        # when it is not.
        if not (torch.isfinite(values).all() and torch.isfinite(least).all()):
            bad = ~torch.isfinite(flat)  # NaN and infinities never win: they count, and are left out
            self.nonfinite += bad.sum(dim=(0, 2)).cpu()
            highs, lows = flat.masked_fill(bad, float("-inf")), flat.masked_fill(bad, float("inf"))
            values, least = highs.amax(dim=2), lows.amin(dim=2)
        # Values for all, positions only for the candidates that enter a top or bottom k (an
        # argmax over every map costs five times the max alone).
        at_max = lambda rows, unit: highs[rows, unit].argmax(dim=1)  # noqa: E731
        self.topk.add(values, images, at_max)
        self.bottom_of_max.add(-values, images, at_max)
        self.bottom_of_min.add(-least, images, lambda rows, unit: lows[rows, unit].argmin(dim=1))
        values = values.float().cpu()
        self.moments.add(values, block)
        self.quantiles.add(values)
        if self.classes is not None and labels is not None:
            self.classes.add(values, labels, block)
        sample = torch.isin(images.cpu(), self.signature_images)
        if sample.any():
            self.signature.append(values[sample])

    def skip(self, block: int) -> None:
        """A batch none of whose images could be read: an empty block, so the statistics' tree stays whole."""
        empty = torch.zeros(0, self.units)
        self.moments.add(empty, block)
        if self.classes is not None:
            self.classes.add(empty, torch.zeros(0, dtype=torch.long), block)

    def merge(self, other: _LayerStats) -> None:
        """Absorb ``other``, the same layer scanned over the next shard of images (higher indices)."""
        self.topk.merge(other.topk.result())
        self.bottom_of_max.merge(other.bottom_of_max.result())
        self.bottom_of_min.merge(other.bottom_of_min.result())
        self.moments.merge(other.moments)
        self.quantiles.merge(other.quantiles)
        if self.classes is not None and other.classes is not None:
            self.classes.merge(other.classes)
        self.nonfinite += other.nonfinite
        self.signature += other.signature
        self.cols = self.cols or other.cols

    def result(self) -> LayerScan:
        moments = self.moments.result()
        mean = torch.from_numpy(moments.mean.copy()).float()  # NaN for a unit without a finite value
        low, high = self.bottom_of_min.result(), self.bottom_of_max.result()
        went_negative = low.values[:, 0] > 0  # the negated minimum: the unit went below zero
        pick = went_negative[:, None]
        bottom = TopK(
            -torch.where(pick, low.values, high.values),
            torch.where(pick, low.images, high.images),
            torch.where(pick, low.positions, high.positions),
        )
        return LayerScan(
            self.topk.result(), self.cols, mean, self._signature(), self.nonfinite.clone(), bottom, went_negative,
            moments, self.quantiles.result(QUANTILE_LEVELS), self.classes.result() if self.classes is not None else None,
        )

    def _signature(self) -> torch.Tensor:
        return torch.cat(self.signature) if self.signature else torch.zeros(0, self.units)

    def state_dict(self) -> dict:
        return {
            "topk": self.topk.state_dict(),
            "bottom_of_max": self.bottom_of_max.state_dict(),
            "bottom_of_min": self.bottom_of_min.state_dict(),
            "moments": self.moments.state_dict(),
            "quantiles": self.quantiles.state_dict(),
            "classes": self.classes.state_dict() if self.classes is not None else None,
            "nonfinite": self.nonfinite,
            "signature_images": self.signature_images,
            "signature": self._signature(),
            "cols": self.cols,
        }

    def load_state_dict(self, state: dict) -> None:
        if not torch.equal(state["signature_images"], self.signature_images):
            raise ValueError("state has another signature sample")
        if (state["classes"] is None) != (self.classes is None):
            raise ValueError("state was scanned with labels and this scan without, or the other way round")
        self.topk.load_state_dict(state["topk"])
        self.bottom_of_max.load_state_dict(state["bottom_of_max"])
        self.bottom_of_min.load_state_dict(state["bottom_of_min"])
        self.moments.load_state_dict(state["moments"])
        self.quantiles.load_state_dict(state["quantiles"])
        if self.classes is not None:
            self.classes.load_state_dict(state["classes"])
        self.nonfinite = state["nonfinite"]
        self.signature = [state["signature"]] if len(state["signature"]) else []
        self.cols = state["cols"]


class ScanState:
    """Everything pass 1 has gathered so far, at a batch boundary.

    ``seen`` images (read or not) have been consumed, in image order, so an
    interrupted scan resumes with image ``seen``. :meth:`state_dict` holds only
    tensors, numbers and strings (it loads with ``torch.load(weights_only=True)``).
    """

    def __init__(
        self, layers: Sequence[tuple[str, int]], k: int, signature: torch.Tensor, device: torch.device,
        labels: Sequence[int] | None = None, classes: int = 0, budget: int = DEFAULT_BUDGET,
    ) -> None:
        """``labels``: per image index its class in ``range(classes)`` or -1; with them, class means are kept;
        ``budget``: items each unit's quantiles keep (exact up to that many images, then a sketch)."""
        self.labels = torch.as_tensor(list(labels), dtype=torch.long) if labels is not None and classes else None
        classes = classes if self.labels is not None else 0
        self.layers = {name: _LayerStats(units, k, signature, device, classes, budget) for name, units in layers}
        self.seen = 0
        self.count = 0
        self.failed: list[tuple[int, str]] = []
        self.block_size = 0  # images per batch: batch ``i`` starts at image ``i * block_size``
        self.block = 0  # the number of the next batch (its block in the statistics' trees)

    def merge(self, other: ScanState) -> None:
        """Absorb ``other``: the same scan over the next shard of images (every image above this
        state's, whole batches of the same size); the result is what one pass over both gives."""
        if sorted(other.layers) != sorted(self.layers):
            raise ValueError(f"cannot merge the scan of layers {sorted(other.layers)} into {sorted(self.layers)}")
        for name, layer in self.layers.items():
            layer.merge(other.layers[name])
        self.seen = max(self.seen, other.seen)
        self.count += other.count
        self.failed += other.failed
        self.block_size = self.block_size or other.block_size
        self.block = max(self.block, other.block)

    def result(self) -> ScanResult:
        return ScanResult(
            layers={name: s.result() for name, s in self.layers.items()},
            image_count=self.count,
            failed=tuple(self.failed),
        )

    def state_dict(self) -> dict:
        return {
            "seen": self.seen,
            "block_size": self.block_size,
            "block": self.block,
            "count": self.count,
            "failed": [[i, reason] for i, reason in self.failed],
            "layers": {name: s.state_dict() for name, s in self.layers.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        if sorted(state["layers"]) != sorted(self.layers):
            raise ValueError(f"state holds layers {sorted(state['layers'])}, expected {sorted(self.layers)}")
        self.seen, self.count, self.block_size, self.block = state["seen"], state["count"], state["block_size"], state["block"]
        self.failed = [(int(i), str(reason)) for i, reason in state["failed"]]
        for name, layer_state in state["layers"].items():
            self.layers[name].load_state_dict(layer_state)


def scan(
    model: nn.Module,
    layers: Sequence[tuple[str, int]],
    batches: Iterable[Batch],
    normalize: Callable[[torch.Tensor], torch.Tensor],
    *,
    k: int = 9,
    total: int | None = None,
    signature: torch.Tensor | None = None,
    layouts: dict[str, tuple[int, int, int]] | None = None,
    progress: bool = True,
    labels: Sequence[int] | None = None,
    classes: int = 0,
    state: ScanState | None = None,
    checkpoint: Callable[[ScanState], None] | None = None,
    checkpoint_every: int = 1000,
    precision: torch.dtype | None = None,
    channels_last: bool = False,
) -> ScanResult:
    """Scan every batch and keep each unit's top and bottom ``k`` hits (one per image at most) and statistics.

    Args:
        model: the network; its device is used and its train/eval mode restored.
        layers: ``(layer name, units)`` for every layer to scan.
        batches: :data:`Batch` tuples in image order, all of one size but the last; batch
            ``i`` is block ``state.block + i`` of the statistics' trees
            (:mod:`convscope.stats.tree`: a shard that starts at image ``s`` sets
            ``state.block_size`` and ``state.block = s // block_size``); when resuming,
            starting at image ``state.seen``.
        normalize: ``uint8 (N, 3, H, W)`` pixels to the model input, e.g.
            ``Preprocess.normalize``; it is cast to the model's dtype.
        k: hits kept per unit.
        total: number of images, for the progress bar.
        signature: ``(M,)`` sorted indices of the images that make up each unit's
            signature; default: :func:`signature_sample` of ``total`` images (of the
            first 256 when ``total`` is not given).
        layouts: per layer whose output is not ``(N, units, rows, cols)``, the tensor dims
            of its units, rows and cols (``LayerInfo.dims``, e.g. ``(3, 1, 2)`` for NHWC).
        labels: per image index its class in ``range(classes)`` (or -1): adds each unit's
            per-class means (ignored when ``state`` is given: it holds its own).
        classes: the number of classes of ``labels``.
        state: a :class:`ScanState` to go on from (an interrupted scan's).
        checkpoint: called with the state at a batch boundary every
            ``checkpoint_every`` images, e.g. to save it for a resume.
        precision: ``torch.bfloat16`` or ``torch.float16`` runs the forward passes under
            ``torch.autocast`` in that type (the layers' outputs are then widened to float32
            for the hits and statistics); ``None``: the model's own type.
        channels_last: run the model and its inputs in channels-last memory (the model's
            tensors are given back after).

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 2, 3))
        >>> batch = (torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.arange(4),
        ...          torch.ones(4, dtype=torch.bool), [""] * 4)
        >>> result = scan(model, [("0", 2)], [batch], lambda p: p.float(), k=3, progress=False)
        >>> result.layers["0"].topk.images.tolist()
        [[0, 1, 2], [0, 1, 2]]
    """
    device, dtype = model_device(model), model_dtype(model)
    if state is None:
        sample = signature if signature is not None else signature_sample(total or 256, 256)
        state = ScanState(layers, k, sample, device, labels, classes)
    stats = state.layers
    current: dict[str, torch.Tensor] = {}

    def on_output(name: str, output: torch.Tensor) -> None:
        if layouts and name in layouts and output.dim() == 4:
            output = to_nchw(output, layouts[name])
        if precision is not None and output.is_floating_point():
            output = output.to(torch.float32, memory_format=torch.contiguous_format)  # exact: every bfloat16 and float16 is a float32
        units = output.shape[1] if output.dim() > 1 else 0
        if units != stats[name].units:
            raise LayerError(
                f"layer {name!r} gave {units} units during the scan, {stats[name].units} in the dry run",
                hint="the model's output shape depends on its input; use a fixed --input-size",
            )
        stats[name].add(output, current["images"], current.get("labels"), current["block"])

    bar = BatchProgress(state, total, progress=progress, checkpoint=checkpoint, every=checkpoint_every)
    autocast = torch.autocast(device.type, dtype=precision) if precision is not None else nullcontext()
    memory = torch.channels_last if channels_last else torch.contiguous_format
    try:
        with (
            eval_mode(model),
            channels_last_memory(model, channels_last),
            torch.inference_mode(),
            autocast,
            capture(model, [n for n, _ in layers], on_output, stop_after_last=True),
        ):
            for pixels, indices, ok, errors in batches:
                state.failed.extend((int(i), e) for i, e, good in zip(indices, errors, ok) if not good)
                if not state.block_size:  # the first batch: its number in the whole data set
                    state.block_size, state.block = len(indices), state.seen // len(indices)
                current["block"] = block = state.block
                state.block += 1
                if not ok.any():
                    for layer in stats.values():
                        layer.skip(block)
                else:
                    current["images"] = indices[ok].to(device)
                    if state.labels is not None:
                        current["labels"] = state.labels[indices[ok]]
                    on_device = pixels.to(device, non_blocking=True)  # from pinned memory, an asynchronous copy
                    x = normalize(on_device if ok.all() else on_device[ok.to(device)]).to(dtype, memory_format=memory)
                    run_until_captured(model, x)
                    state.count += int(ok.sum())
                state.seen += len(indices)
                bar.advance(state, len(indices))
    finally:
        bar.close()
    return state.result()
