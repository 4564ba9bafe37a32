"""What a unit is for: the change in every class's logit and accuracy when one unit of a layer is
zeroed (its output set to 0 at every position), over a sample of images.

For unit ``u`` and class ``k``, ``drops[u, k]`` is the mean over the images of class ``k`` of
``base logit k - logit k with u zeroed``; ``ablated_accuracy[u, k]`` is the share of those images
still classified as ``k``. An image's class is its label (mapped onto the model's classes by the
caller) or its predicted class.

Batched, not one full forward per unit and image: per batch of ``B`` images one full forward
gives the base logits and the layer's output ``A``; then, for ``m`` units at a time, the rest of
the network runs once on ``B * m`` rows, ``A`` repeated ``m`` times with unit ``j`` zeroed in copy
``j`` (:func:`~convscope.circuits.substitute.substituted`; the model's input is then one image,
which only feeds the layers below). That is right only where nothing after the layer reads a
tensor from before it (a skip connection over it), so the first batch is computed both ways for
two units; where they disagree or the batched way fails, the whole layer is done the plain way
(one full forward per unit and image batch). ``LayerAblation.method`` says which.

Rows per batched pass: about :data:`PASS_ELEMENTS` values of the layer's output (256 rows of
SqueezeNet's ``features.12``, 512 x 13 x 13: 89 MB in float32), so ``m = rows // B``.

Bau's test (:mod:`~convscope.circuits.bau`) follows in a second, small pass over the images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from convscope.atlas.circuits_data import classes_of_unit, units_of_class
from convscope.circuits.bau import bau_masks, bau_means
from convscope.circuits.substitute import agrees, substituted
from convscope.errors import ConvscopeError, LayerError
from convscope.hooks import capture, run_until_captured
from convscope.network.layers import NCHW, LayerInfo
from convscope.network.modes import eval_mode, frozen

#: ``load(image_indices) -> (n, 3, H, W)`` float: the normalised model inputs, on the model's device.
LoadFn = Callable[[Sequence[int]], torch.Tensor]
#: Values of the layer's output per batched pass (its rows times one image's map): 256 rows of a 512 x 13 x 13 map.
PASS_ELEMENTS = 256 * 512 * 13 * 13
#: Units computed both ways on the first batch to choose the batched way.
PROBE_UNITS = 2


@dataclass(frozen=True)
class LayerAblation:
    """Every unit of a layer zeroed alone (see the module's docstring); ``K`` classes, ``N`` images.

    Attributes:
        layer: the layer (dotted name).
        images: ``(N,)`` int64: the sampled image indices (into the caller's image list).
        classes_of_images: ``(N,)`` int64: each image's class.
        class_by: ``"label"`` or ``"predicted"``.
        base_logits: ``(N, K)`` float32.
        drops: ``(units, K)`` float32: per class the mean over its images of its logit's drop when
            the unit is zeroed; NaN for classes without images.
        accuracy: ``(K,)`` float32: share of each class's images whose argmax is the class (NaN without images).
        ablated_accuracy: ``(units, K)`` float32: the same with the unit zeroed.
        counts: ``(K,)`` int64: images per class.
        bau_top: ``(K,)`` float32: the class's mean logit drop with its top ``bau_n`` units zeroed together.
        bau_random: ``(K,)`` float32: the same with ``bau_n`` random units (mean over the draws).
        bau_n: units per set in Bau's test.
        method: ``"batched"`` or ``"plain"``.
    """

    layer: str
    images: np.ndarray
    classes_of_images: np.ndarray
    class_by: str
    base_logits: np.ndarray
    drops: np.ndarray
    accuracy: np.ndarray
    ablated_accuracy: np.ndarray
    counts: np.ndarray
    bau_top: np.ndarray
    bau_random: np.ndarray
    bau_n: int
    method: str

    def matters_for(self, unit: int, n: int = 10) -> list[tuple[int, float, float]]:
        """The ``n`` classes whose logit drops most when ``unit`` is zeroed, as ``(class, drop,
        accuracy change)``, largest drop first (lower class first on ties); classes with images only.

        Example:
            >>> found = _example()
            >>> found.matters_for(0)
            [(1, 2.0, -0.5), (0, 0.5, 0.0)]
        """
        return classes_of_unit(self.drops, self.accuracy, self.ablated_accuracy, self.counts, unit, n)

    def units_for(self, k: int, n: int = 10) -> list[tuple[int, float]]:
        """The ``n`` units whose zeroing drops class ``k``'s logit most, as ``(unit, drop)``, largest
        first (lower unit first on ties); empty for a class without images.

        Example:
            >>> _example().units_for(1)
            [(0, 2.0), (1, -1.0)]
        """
        return units_of_class(self.drops, self.counts, k, n)

    @property
    def top_beats_random(self) -> float:
        """Share of the classes with images whose top units drop their logit more than random ones
        (NaN without any).

        Example:
            >>> _example().top_beats_random
            0.5
        """
        seen = self.counts > 0
        return float(np.mean(self.bau_top[seen] > self.bau_random[seen])) if seen.any() else float("nan")


def _example() -> LayerAblation:
    """A hand-made result with 2 units, 3 classes (class 2 without images), for the examples."""
    nan = float("nan")
    return LayerAblation(
        "features.12", np.array([0, 1, 2]), np.array([0, 1, 1]), "label", np.zeros((3, 3), np.float32),
        np.array([[0.5, 2.0, nan], [0.0, -1.0, nan]], np.float32), np.array([1.0, 1.0, nan], np.float32),
        np.array([[1.0, 0.5, nan], [1.0, 1.0, nan]], np.float32), np.array([1, 2, 0]),
        np.array([1.0, 3.0, nan], np.float32), np.array([2.0, 0.5, nan], np.float32), 1, "batched",
    )


def sample_images(count: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` of ``count`` image indices drawn without replacement (a ``torch.Generator`` seeded
    with ``seed``), sorted ``(n,)`` int64.

    Example:
        >>> sample_images(10, 4, seed=0).tolist() == sample_images(10, 4, seed=0).tolist(), len(sample_images(10, 10))
        (True, 10)
    """
    if n > count:
        raise ConvscopeError(
            f"an ablation sample of {n} images is larger than the data ({count} images)",
            hint=f"ask for at most {count} images, or add images",
        )
    if n < 1:
        raise ConvscopeError(f"an ablation sample needs at least 1 image, got {n}", hint="ask for e.g. 500 images")
    generator = torch.Generator().manual_seed(seed)
    return np.sort(torch.randperm(count, generator=generator)[:n].numpy()).astype(np.int64)


def ablate(
    model: nn.Module,
    layer: LayerInfo,
    load: LoadFn,
    images: Sequence[int],
    classes_of_images: Sequence[int] | None,
    *,
    batch_size: int = 32,
    units_per_pass: int | None = None,
    bau_n: int = 5,
    repeats: int = 3,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> LayerAblation:
    """Zero every unit of ``layer`` alone over ``images``, and run Bau's test.

    Args:
        model: the classifier (its output ``(N, K)`` logits); its train/eval flags and
            ``requires_grad`` are given back after, and no hook stays on it.
        layer: the layer; its ``dims`` say where the units are in its output (a flat
            ``(N, units)`` output has them at dim 1).
        load: the normalised model inputs ``(n, 3, H, W)`` of image indices, on the model's device.
        images: the image indices (e.g. :func:`sample_images`).
        classes_of_images: each image's class in ``[0, K)``; ``None``: its predicted class.
        batch_size: images per batch.
        units_per_pass: units per batched pass (``B * units_per_pass`` rows); default about
            :data:`PASS_ELEMENTS` values of the layer's output.
        bau_n: Bau's test: units zeroed together per set.
        repeats: Bau's test: random sets drawn per class.
        seed: the seed of those random sets.
        progress: called as ``progress(done, total)`` after each pass, counting (image, mask) rows:
            ``total = units * N + N * (1 + repeats)``.

    Example:
        >>> from convscope.network.layers import LayerInfo
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        >>> found = ablate(model, LayerInfo("1", "ReLU", (4, 6, 6), None), lambda i: torch.rand(len(i), 3, 8, 8), range(5), None)
        >>> found.drops.shape, found.method, found.class_by
        ((4, 3), 'batched', 'predicted')
    """
    images = np.asarray(list(images), dtype=np.int64)
    for name, value, least in (("batch size", batch_size, 1), ("units per pass", 1 if units_per_pass is None else units_per_pass, 1), ("bau_n", bau_n, 1), ("repeats", repeats, 1)):
        if value < least:
            raise ConvscopeError(f"{name} must be at least {least}, got {value}", hint="pass a positive number")
    if len(images) == 0:
        raise ConvscopeError("an ablation needs at least one image", hint="pass a sample, e.g. sample_images(len(data), 500)")
    if classes_of_images is not None and len(classes_of_images) != len(images):
        raise ConvscopeError(f"{len(classes_of_images)} classes for {len(images)} images", hint="pass one class per image")
    units, per_image = layer.units, int(np.prod(layer.shape))
    rows = max(1, PASS_ELEMENTS // max(per_image, 1))
    total, done = units * len(images) + len(images) * (1 + repeats), 0
    wanted = None if classes_of_images is None else torch.as_tensor(np.asarray(classes_of_images, dtype=np.int64))
    base = classes = drop_sums = correct = None
    batched = True
    with eval_mode(model), frozen(model), torch.no_grad():
        for start in range(0, len(images), batch_size):
            at = slice(start, min(start + batch_size, len(images)))
            x = load(images[at].tolist())
            output, logits = _base(model, layer.name, x)
            axis = _unit_axis(output, layer)
            if output.shape[axis] != units:
                raise LayerError(f"layer {layer.name!r} has {output.shape[axis]} units, its LayerInfo says {units}", hint="take the LayerInfo from the same model")
            if base is None:
                classes_count = logits.shape[1]
                base = np.zeros((len(images), classes_count), np.float32)
                classes = np.zeros(len(images), np.int64)
                drop_sums = torch.zeros(units, classes_count, dtype=torch.float64)
                correct = torch.zeros(units, classes_count, dtype=torch.float64)
            own = logits.argmax(dim=1).cpu() if wanted is None else wanted[at]
            if own.min() < 0 or own.max() >= base.shape[1]:
                raise ConvscopeError(f"image classes must lie in [0, {base.shape[1]}), got {int(own.min())}..{int(own.max())}", hint="map labels onto the model's classes, or classify by predicted class")
            base[at], classes[at] = logits.float().cpu().numpy(), own.numpy()
            if start == 0:
                batched = _batched_agrees(model, layer.name, x, output, axis, units)
            m = units_per_pass or max(1, rows // len(own))
            for first in range(0, units, m):
                chosen = torch.arange(first, min(first + m, units))
                found = _unit_rows(model, layer.name, x, output, axis, chosen, batched)  # (m, B, K) float64
                _add(drop_sums, correct, chosen, found, logits.double().cpu(), own)
                done += len(chosen) * len(own)
                if progress is not None:
                    progress(done, total)
        counts = np.bincount(classes, minlength=base.shape[1]).astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = np.where(counts > 0, counts, np.nan)
            drops = (drop_sums.numpy() / per_class).astype(np.float32)
            ablated = (correct.numpy() / per_class).astype(np.float32)
            accuracy = (np.bincount(classes, weights=(base.argmax(axis=1) == classes), minlength=base.shape[1]) / per_class).astype(np.float32)
        masks = bau_masks(drops, counts, bau_n, repeats, seed)
        sums = np.zeros((base.shape[1], 1 + repeats), dtype=np.float64)
        order = np.argsort(classes, kind="stable")  # a class's images together: the plain way runs few forwards
        step = min(batch_size, max(1, rows // (1 + repeats)))
        for start in range(0, len(order), step):
            at = order[start:start + step]
            x = load(images[at].tolist())
            own = torch.from_numpy(classes[at])
            output = _layer_output(model, layer.name, x) if batched else None
            zero = masks[own].reshape(-1, units)  # rows image-major: (B * (1 + repeats), units)
            which = torch.arange(len(at)).repeat_interleave(1 + repeats)
            found = _masked_logits(model, layer.name, x, output, axis, which, zero, batched).double().cpu()
            dropped = torch.from_numpy(base[at]).double()[which, own[which]] - found[torch.arange(len(which)), own[which]]
            np.add.at(sums, classes[at], dropped.view(len(at), 1 + repeats).numpy())
            done += len(which)
            if progress is not None:
                progress(done, total)
    bau_top, bau_random = bau_means(sums, counts)
    return LayerAblation(
        layer.name, images, classes, "predicted" if wanted is None else "label", base, drops, accuracy, ablated,
        counts, bau_top, bau_random, min(bau_n, units), "batched" if batched else "plain",
    )


def _add(drop_sums: torch.Tensor, correct: torch.Tensor, chosen: torch.Tensor, found: torch.Tensor, base: torch.Tensor, own: torch.Tensor) -> None:
    """Add one pass into the sums ``(units, K)``: ``found`` ``(m, B, K)`` the logits with unit
    ``chosen[j]`` zeroed, ``base`` ``(B, K)``, ``own`` ``(B,)`` the images' classes."""
    m, b = len(chosen), len(own)
    index = (chosen[:, None].expand(m, b), own[None, :].expand(m, b))
    mine = found.gather(2, own.view(1, b, 1).expand(m, b, 1)).squeeze(2)
    drop_sums.index_put_(index, base[torch.arange(b), own][None, :] - mine, accumulate=True)
    correct.index_put_(index, (found.argmax(dim=2) == own[None, :]).double(), accumulate=True)


def _unit_axis(output: torch.Tensor, layer: LayerInfo) -> int:
    """The tensor dim of the layer's units: 1 for a flat ``(N, units)`` output, else ``dims[0]``."""
    if output.dim() == 2:
        return 1
    if output.dim() == 4:
        return (layer.dims or NCHW)[0]
    raise LayerError(f"layer {layer.name!r} gives a {output.dim()}-d output; ablation needs (N, C, H, W) or (N, C)", hint="pick a convolutional or flat layer")


def _logits(out: object, rows: int) -> torch.Tensor:
    """The model's output as ``(rows, K)`` logits, or an error."""
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise ConvscopeError("the model's output is not class logits (N, classes)", hint="ablation needs a classifier")
    if out.shape[0] != rows:
        raise RuntimeError(f"the model gave {out.shape[0]} rows for {rows}")  # a batch mixed with the dummy's
    return out


def _base(model: nn.Module, layer: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One full forward: the layer's output (a copy: a later in-place op cannot change it) and the logits."""
    seen: dict[str, torch.Tensor] = {}
    with capture(model, [layer], lambda name, out: seen.__setitem__(name, out.detach().clone())):
        logits = _logits(model(x), len(x))
    return seen[layer], logits


def _layer_output(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The layer's output, the forward stopped there."""
    seen: dict[str, torch.Tensor] = {}
    with capture(model, [layer], lambda name, out: seen.__setitem__(name, out.detach().clone()), stop_after_last=True):
        run_until_captured(model, x)
    return seen[layer]


def zeroed_rows(output: torch.Tensor, which: torch.Tensor, zero: torch.Tensor, axis: int) -> torch.Tensor:
    """Rows ``output[which]`` ``(R, ...)`` with, in row ``i``, the units ``zero[i]`` (``(R, units)``
    bool) set to 0 at every position; ``axis`` is the units' dim of ``output``.

    Example:
        >>> zeroed_rows(torch.ones(1, 3, 1, 1), torch.tensor([0, 0]), torch.tensor([[True, False, False], [False, False, True]]), 1).flatten(1)
        tensor([[0., 1., 1.],
                [1., 1., 0.]])
    """
    rows = output[which.to(output.device)]
    shape = [len(rows)] + [1] * (output.dim() - 1)
    shape[axis] = output.shape[axis]
    return rows.masked_fill_(zero.to(output.device).view(shape), 0)


def _masked_logits(
    model: nn.Module, layer: str, x: torch.Tensor, output: torch.Tensor | None, axis: int, which: torch.Tensor, zero: torch.Tensor, batched: bool
) -> torch.Tensor:
    """Logits ``(R, K)`` of rows: image ``which[i]`` of ``x`` with units ``zero[i]`` zeroed.

    Batched: one pass of the network above the layer on every row, the layer's ``output`` of
    ``x`` substituted (the model's input is ``x[:1]``, which only feeds the layers below). Plain:
    one full forward of the images per distinct mask."""
    if batched:
        replacement = zeroed_rows(output, which, zero, axis)
        with substituted(model, layer, lambda out: replacement):
            return _logits(model(x[:1]), len(which))
    groups: dict[bytes, list[int]] = {}
    for i, row in enumerate(zero.numpy()):
        groups.setdefault(row.tobytes(), []).append(i)
    parts = []
    for picked in groups.values():
        mask = zero[picked[:1]]
        with substituted(model, layer, lambda out, mask=mask: zeroed_rows(out, torch.arange(len(out)), mask.expand(len(out), -1), axis)):
            parts.append(_logits(model(x[which[picked].to(x.device)]), len(picked)))
    order = torch.tensor([i for picked in groups.values() for i in picked])
    return torch.cat(parts)[torch.argsort(order).to(parts[0].device)]


def _unit_rows(model: nn.Module, layer: str, x: torch.Tensor, output: torch.Tensor, axis: int, chosen: torch.Tensor, batched: bool) -> torch.Tensor:
    """Logits ``(m, B, K)`` float64 (CPU) with unit ``chosen[j]`` zeroed in ``[j]``; rows unit-major."""
    b, units = len(x), output.shape[axis]
    which = torch.arange(b).repeat(len(chosen))
    zero = torch.zeros(len(which), units, dtype=torch.bool)
    zero[torch.arange(len(which)), chosen.repeat_interleave(b)] = True
    return _masked_logits(model, layer, x, output, axis, which, zero, batched).double().cpu().view(len(chosen), b, -1)


def _batched_agrees(model: nn.Module, layer: str, x: torch.Tensor, output: torch.Tensor, axis: int, units: int) -> bool:
    """Whether the batched way gives the plain way's logits for the first units of this batch."""
    probe = torch.arange(min(PROBE_UNITS, units))
    plain = _unit_rows(model, layer, x, output, axis, probe, False)
    try:
        fast = _unit_rows(model, layer, x, output, axis, probe, True)
    except (RuntimeError, ValueError, IndexError):  # a skip connection over the layer: shapes that do not fit
        return False
    return agrees(fast, plain)
