"""Neural style transfer (Gatys, Ecker & Bethge 2016) on convscope's hooks.

One call, :func:`stylise`, optimises the pixels of an image so that its features at
the content layers match the content image's and its Gram matrices at the style
layers match the style images'. The network is read through :func:`convscope.hooks.capture`
on the named layers only; each forward stops after the deepest of them. The
network's weights are frozen for the run (``requires_grad`` False, eval mode) and
restored afterwards; hooks are removed in ``finally``. Nothing is written: the result
holds the image and a record of the losses, and the caller saves them.

Losses (see :mod:`convscope.style.losses`), with ``normalize`` (the default) each content
layer's loss is divided by the mean square of its target features, and each style layer's
Gram loss by its own value at the starting image (the content image, or the noise), so
every layer counts alike whatever the scale of its activations (this matters most for
random-weight networks) and a style layer counts by the fraction of its start that is
left, the ratio that :mod:`convscope.style.quality` judges:

    total = content_weight * mean_l content_l + style_weight * mean_l style_l + tv_weight * tv

(Dividing the style layers by their target's mean square instead, the earlier rule, let the
layer that starts furthest from its target in those units dominate: on the real SqueezeNet
with The Starry Night ``features.12`` started at 5x the others and was driven to 0.4x what
the painting itself scores there, while ``features.7`` and ``features.9`` stalled at 2.1x
and 1.8x it after the default 300 steps.)

The *floor* of a style layer is the Gram loss of the style image itself, resized to the
result's shape, against the target (its Gram matrix at its own size): what a picture of the
painting scores. A layer whose floor is high cannot be asked to fall as far as one whose
floor is low; :mod:`convscope.style.quality` allows 1.5x the floor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from convscope.data import failure_reason, open_rgb
from convscope.errors import ConvscopeError, DataError, GeometryError, LayerError
from convscope.hooks import capture, run_until_captured
from convscope.network.device import model_device
from convscope.network.layers import NCHW, select_layers, to_nchw
from convscope.network.load import Network
from convscope.network.modes import eval_mode, frozen
from convscope.style.layers import default_style_layers, resolve
from convscope.style.losses import blend_grams, content_loss, gram, style_loss, tv_loss

#: An image: a file, a PIL image, or ``uint8 (H, W, 3)`` pixels.
ImageLike = str | Path | Image.Image | np.ndarray
#: Called after every step as ``progress(step, losses)`` (``losses`` as in :class:`Losses`).
ProgressFn = Callable[[int, "Losses"], object]

MIN_SIZE = 8
OPTIMIZERS = ("lbfgs", "adam")
#: An L-BFGS step whose loss exceeds this many times the best so far restarts from the best point.
DIVERGED = 2.0
INITS = ("content", "noise")


@dataclass(frozen=True)
class Losses:
    """The losses of one image, unweighted and not normalised (plain MSEs).

    Attributes:
        content: per content layer, the MSE of its features ``(1, C, H, W)``.
        style: per style layer, the MSE of its Gram matrix ``(1, C, C)``.
        tv: total variation of the image.
        total: the weighted, normalised objective that is minimised.
    """

    content: dict[str, float]
    style: dict[str, float]
    tv: float
    total: float

    def to_dict(self) -> dict[str, Any]:
        return {"content": self.content, "style": self.style, "tv": self.tv, "total": self.total}


@dataclass(frozen=True)
class StyleResult:
    """What :func:`stylise` returns.

    Attributes:
        image: the stylised image, ``uint8 (H, W, 3)``.
        start, end: the losses of the starting image (the content image, or the seeded noise) and of
            the result, both at the final size against the final size's targets.
        reference: the losses of the first style image resized to the result's size: a picture
            with the style and none of the content, the scale that ``content_ratios`` measure
            against (``None`` for a texture).
        floor: per style layer, the Gram loss of the style image resized to the result's size
            against the final targets (with several style images, the lowest of theirs).
        history: the objective at every step (before its update), all levels in a row.
        content_layers, style_layers: the dotted names used.
        settings: the arguments of the run (weights, size, init, optimizer, steps, seed...).
        seconds: wall time of the optimisation.
    """

    image: np.ndarray
    start: Losses
    end: Losses
    reference: Losses | None
    history: list[float]
    content_layers: list[str]
    style_layers: list[str]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    floor: dict[str, float] = field(default_factory=dict)

    def style_ratios(self) -> dict[str, float]:
        """Per style layer, the Gram loss at the end divided by the one at the start."""
        return {k: (self.end.style[k] / v if v > 0 else 0.0) for k, v in self.start.style.items()}

    def floor_ratios(self) -> dict[str, float]:
        """Per style layer, its :attr:`floor` divided by its Gram loss at the start (empty without a floor)."""
        return {k: (f / self.start.style[k] if self.start.style.get(k, 0) > 0 else 0.0) for k, f in self.floor.items()}

    def content_ratios(self) -> dict[str, float]:
        """Per content layer, the content loss at the end divided by the style image's (``reference``)."""
        if self.reference is None:
            return {}
        return {k: (self.end.content[k] / v if v > 0 else 0.0) for k, v in self.reference.content.items()}

    def to_dict(self) -> dict[str, Any]:
        """The JSON record written next to the picture."""
        return {
            "content_layers": self.content_layers,
            "style_layers": self.style_layers,
            "settings": self.settings,
            "start": self.start.to_dict(),
            "end": self.end.to_dict(),
            "style_ratio_end_over_start": self.style_ratios(),
            "style_floor": self.floor,
            "style_floor_over_start": self.floor_ratios(),
            "history": self.history,
            "seconds": round(self.seconds, 3),
        }


def stylise(
    network: Network,
    content: ImageLike | None,
    styles: ImageLike | Sequence[ImageLike],
    *,
    content_layers: Sequence[str] | None = None,
    style_layers: Sequence[str] | None = None,
    content_weight: float = 1.0,
    style_weight: float = 100.0,
    style_image_weights: Sequence[float] | None = None,
    tv_weight: float = 0.0,
    size: int = 256,
    init: str = "content",
    optimizer: str = "lbfgs",
    steps: int = 300,
    lr: float | None = None,
    seed: int = 0,
    normalize: bool = True,
    pyramid: int = 1,
    progress: ProgressFn | None = None,
) -> StyleResult:
    """Paint ``content`` in the style of ``styles`` by optimising pixels (Gatys et al.).

    Args:
        network: a loaded network; its ``preprocess`` mean and std normalise the pixels.
        content: the content image; ``None`` synthesises a texture (needs ``init="noise"``;
            the result is ``size`` x ``size``).
        styles: one style image or several; their Gram matrices are averaged with
            ``style_image_weights`` (default: equal).
        content_layers, style_layers: dotted names (or VGG's ``conv4_2``); default: see
            :mod:`convscope.style.layers`.
        content_weight, style_weight, tv_weight: weights of the three terms.
        size: the long side of the result in pixels (style images are resized likewise).
        init: ``content`` (start from the content image) or ``noise`` (uniform, seeded).
        optimizer: ``lbfgs`` (one L-BFGS iteration per step, one forward and backward, no
            line search, ``lr`` default 1) or ``adam`` (``lr`` default 0.02).
        steps: optimiser steps (per pyramid level).
        seed: seeds the noise; runs with equal arguments give equal images.
        normalize: divide each content layer's loss by its target's mean square and each style
            layer's by its value at the starting image (``init``'s, at each pyramid level).
        pyramid: levels, coarse to fine: 3 optimises at size/4, then size/2, then size,
            each level starting from the previous result upsampled.
        progress: called after every step.

    Returns:
        A :class:`StyleResult`; ``image`` is ``uint8 (H, W, 3)``.

    Raises:
        DataError: an image cannot be read. LayerError: a layer is unknown or has no
        spatial map. GeometryError: ``size`` is too small for the network or the layers.

    Example:
        >>> net = load_network("torchvision:vgg19", weights="vgg19.pth")  # doctest: +SKIP
        >>> result = stylise(net, "photo.jpg", "starry_night.jpg", size=256)  # doctest: +SKIP
        >>> result.image.shape  # doctest: +SKIP
        (192, 256, 3)
    """
    _check_args(init, optimizer, steps, size, pyramid, content)
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not style_list:
        raise ConvscopeError("style transfer needs at least one style image")
    content_img = _open(content, "content") if content is not None else None
    style_imgs = [_open(s, "style") for s in style_list]
    model = network.model
    device = model_device(model)
    final_hw = _fit(content_img.size if content_img else (size, size), size)
    content_layers, style_layers = _layers(network, content_layers, style_layers, final_hw, content_img is None)
    settings = {
        "model": network.source, "weights": network.weights, "content_weight": content_weight,
        "style_weight": style_weight, "style_image_weights": list(style_image_weights) if style_image_weights else None,
        "tv_weight": tv_weight, "size": size, "init": init, "optimizer": optimizer, "steps": steps, "lr": lr,
        "seed": seed, "normalize": normalize, "pyramid": pyramid,
    }
    sizes = [max(MIN_SIZE, size // 2 ** (pyramid - 1 - i)) for i in range(pyramid)]
    began = time.perf_counter()
    with eval_mode(model), frozen(model):
        x: torch.Tensor | None = None
        history: list[float] = []
        for level, level_size in enumerate(sizes):
            hw = _fit(content_img.size if content_img else (level_size, level_size), level_size)
            content_px = _pixels(content_img, hw, device) if content_img else None
            style_px = [_pixels(s, _fit(s.size, level_size), device) for s in style_imgs]
            initial = _initial(init, content_px, hw, torch.Generator().manual_seed(seed), device)
            objective = _Objective(
                network, content_layers, style_layers, content_px, style_px, style_image_weights,
                content_weight, style_weight, tv_weight, normalize, initial,
            )
            if x is None:
                x = initial
            else:
                x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False).clamp(0, 1)
            x = objective.optimise(x, optimizer, steps, lr, history, progress, level * steps)
        # Start, end and the reference are all measured at the final size, against the final level's targets.
        start, end = objective.measure(initial), objective.measure(x)
        painted = [objective.measure(_pixels(s, tuple(x.shape[-2:]), device)) for s in style_imgs]
        floor = {n: min(p.style[n] for p in painted) for n in objective.style_layers}
        reference = painted[0] if content_img else None
    image = (x[0].detach().permute(1, 2, 0).cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8)
    return StyleResult(
        image, start, end, reference, history, content_layers, style_layers, settings, time.perf_counter() - began, floor,
    )


class _Objective:
    """The loss of an image ``(1, 3, H, W)`` in ``[0, 1]`` against fixed targets, computed once."""

    def __init__(
        self, network: Network, content_layers: list[str], style_layers: list[str],
        content_px: torch.Tensor | None, style_px: list[torch.Tensor], style_image_weights: Sequence[float] | None,
        content_weight: float, style_weight: float, tv_weight: float, normalize: bool, start_px: torch.Tensor,
    ) -> None:
        self.network = network
        self.content_layers = content_layers if content_px is not None else []
        self.style_layers = style_layers
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        self.weights = (content_weight, style_weight, tv_weight)
        self.dims = {i.name: i.dims or NCHW for i in _infos(network, self.layers, style_px[0].shape[-2:])}
        with torch.no_grad():
            self.content_targets = {}
            if content_px is not None:
                feats = self._first_features(content_px)
                self.content_targets = {name: feats[name].detach() for name in self.content_layers}
            grams = [{n: gram(f).detach() for n, f in self._first_features(s).items() if n in style_layers} for s in style_px]
            try:
                self.gram_targets = {n: blend_grams([g[n] for g in grams], style_image_weights) for n in style_layers}
            except ValueError as exc:
                raise ConvscopeError(str(exc), hint="give one non-negative weight per style image") from None
            start = self.features(start_px) if normalize else {}
        mean_square = lambda t: float(t.pow(2).mean()) if normalize else 1.0  # noqa: E731
        self.content_scale = {n: mean_square(t) for n, t in self.content_targets.items()}
        # A style layer's scale is its loss at the start; one that starts at its target (loss 0) keeps its target's mean square.
        self.style_scale = {
            n: (float(style_loss(start[n], t)) or mean_square(t)) if normalize else 1.0 for n, t in self.gram_targets.items()
        }

    def _first_features(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`features` of a target image, with a network too deep for its size reported as such."""
        try:
            return self.features(pixels)
        except RuntimeError as exc:
            raise GeometryError(
                f"the network cannot run on a {pixels.shape[-2]}x{pixels.shape[-1]} image: {str(exc).splitlines()[0]}",
                hint="use a larger --size",
            ) from None

    def features(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """The layers' outputs ``(1, C, H, W)`` for ``pixels`` ``(1, 3, H, W)`` in ``[0, 1]``."""
        out: dict[str, torch.Tensor] = {}

        def keep(name: str, output: torch.Tensor) -> None:
            if output.dim() != 4:
                raise LayerError(
                    f"layer {name!r} outputs {tuple(output.shape)}, no map with rows and cols, so it has no style",
                    hint="pick a convolutional layer; `convscope layers MODEL` lists them",
                )
            out[name] = to_nchw(output, self.dims.get(name, NCHW)).clone()  # before any in-place ReLU

        with capture(self.network.model, self.layers, keep, stop_after_last=True):
            run_until_captured(self.network.model, self.network.preprocess.standardize(pixels))
        for name, f in out.items():
            if f.shape[-2] * f.shape[-1] <= 1 and name in self.style_layers:
                raise GeometryError(
                    f"layer {name!r} gives a {f.shape[-2]}x{f.shape[-1]} map at {pixels.shape[-2]}x{pixels.shape[-1]} pixels: "
                    "too small for a Gram matrix",
                    hint="use a larger --size or an earlier layer",
                )
        return out

    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, Losses]:
        feats = self.features(x)
        c = {n: content_loss(feats[n], t) for n, t in self.content_targets.items()}
        s = {n: style_loss(feats[n], t) for n, t in self.gram_targets.items()}
        tv = tv_loss(x)
        cw, sw, tw = self.weights
        total = tw * tv
        if c:
            total = total + cw * sum(v / max(self.content_scale[n], 1e-30) for n, v in c.items()) / len(c)
        if s:
            total = total + sw * sum(v / max(self.style_scale[n], 1e-30) for n, v in s.items()) / len(s)
        record = Losses(
            {n: float(v.detach()) for n, v in c.items()}, {n: float(v.detach()) for n, v in s.items()},
            float(tv.detach()), float(total.detach()),
        )
        return total, record

    def measure(self, x: torch.Tensor) -> Losses:
        """The losses of ``x`` ``(1, 3, H, W)``, without gradients."""
        with torch.no_grad():
            return self.losses(x)[1]

    def optimise(
        self, x0: torch.Tensor, optimizer: str, steps: int, lr: float | None,
        history: list[float], progress: ProgressFn | None, offset: int,
    ) -> torch.Tensor:
        """``x0`` ``(1, 3, H, W)`` after ``steps`` optimiser steps; each step's objective is appended to ``history``."""
        x = x0.detach().clone().contiguous().requires_grad_(True)
        step_size = lr or (1.0 if optimizer == "lbfgs" else 0.02)
        opt = _optimizer(optimizer, x, step_size)
        seen: list[Losses] = []

        def closure() -> torch.Tensor:
            opt.zero_grad()
            total, record = self.losses(x.clamp(0, 1))  # zero gradient where a pixel left [0, 1]
            total.backward()
            seen.append(record)
            return total

        best, best_x = float("inf"), x.detach().clone()
        for step in range(steps):
            before = x.detach().clone()
            opt.step(closure)
            loss = seen[-1].total  # the loss at ``before``: no extra forward
            if loss < best:
                best, best_x = loss, before
            elif optimizer == "lbfgs" and not loss <= DIVERGED * best:
                # Without a line search L-BFGS can overshoot into a region it never leaves
                # (e.g. every pixel clamped): go back to the best point, forget the curvature
                # pairs and halve the step.
                step_size /= 2
                opt = _optimizer(optimizer, x, step_size)
                with torch.no_grad():
                    x.copy_(best_x)
            with torch.no_grad():
                x.clamp_(0, 1)  # project back, so that no pixel stays stuck outside
            history.append(loss)
            if progress is not None:
                progress(offset + step + 1, seen[-1])
        return x.detach()


def _optimizer(name: str, x: torch.Tensor, lr: float) -> torch.optim.Optimizer:
    """L-BFGS with one iteration (one forward and backward) per step and no line search, or Adam."""
    if name == "lbfgs":
        return torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=20, tolerance_grad=0.0, tolerance_change=0.0)
    return torch.optim.Adam([x], lr=lr)


def _check_args(init: str, optimizer: str, steps: int, size: int, pyramid: int, content: object) -> None:
    if init not in INITS:
        raise ConvscopeError(f"unknown init {init!r}", hint=f"use one of {', '.join(INITS)}")
    if optimizer not in OPTIMIZERS:
        raise ConvscopeError(f"unknown optimizer {optimizer!r}", hint=f"use one of {', '.join(OPTIMIZERS)}")
    if steps < 0 or pyramid < 1:
        raise ConvscopeError(f"steps must be at least 0 and pyramid at least 1, got {steps} and {pyramid}")
    if size < MIN_SIZE:
        raise GeometryError(f"size {size} is too small", hint=f"use a size of at least {MIN_SIZE} pixels")
    if content is None and init != "noise":
        raise ConvscopeError("texture synthesis (no content image) needs init='noise'", hint="pass --init noise")


def _open(image: ImageLike, what: str) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"the {what} image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        return Image.fromarray(image)
    path = Path(image)
    if not path.is_file():
        raise DataError(f"the {what} image {path} does not exist", hint="check the path")
    try:
        return open_rgb(path)
    except Exception as exc:
        raise DataError(f"cannot read the {what} image {path}: {failure_reason(exc)}", hint="give a readable image file") from None


def _fit(wh: tuple[int, int], size: int) -> tuple[int, int]:
    """``(height, width)`` with the long side ``size`` and the aspect ratio of ``wh`` (PIL's ``(width, height)``)."""
    w, h = wh
    scale = size / max(w, h)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _pixels(image: Image.Image, hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    """``image`` resized to ``hw`` as ``(1, 3, H, W)`` floats in ``[0, 1]``."""
    if image.size != (hw[1], hw[0]):
        image = image.resize((hw[1], hw[0]), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.array(image, dtype=np.float32) / 255).permute(2, 0, 1)[None].to(device)


def _initial(init: str, content: torch.Tensor | None, hw: tuple[int, int], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """The starting image ``(1, 3, H, W)``: the content pixels, or uniform noise from ``generator``."""
    if init == "content" and content is not None:
        return content.clone()
    return torch.rand((1, 3, *hw), generator=generator).to(device)


def _infos(network: Network, layers: list[str], hw: Sequence[int]) -> list:
    try:
        return select_layers(network.model, layers, (int(hw[0]), int(hw[1])))
    except RuntimeError as exc:
        raise GeometryError(
            f"the network cannot run on a {hw[0]}x{hw[1]} image: {str(exc).splitlines()[0]}", hint="use a larger --size"
        ) from None


def _layers(
    network: Network, content_layers: Sequence[str] | None, style_layers: Sequence[str] | None,
    hw: tuple[int, int], texture: bool,
) -> tuple[list[str], list[str]]:
    model = network.model
    if content_layers is None or style_layers is None:
        try:
            default_content, default_style = default_style_layers(model, hw)
        except RuntimeError as exc:
            raise GeometryError(
                f"the network cannot run on a {hw[0]}x{hw[1]} image: {str(exc).splitlines()[0]}", hint="use a larger --size"
            ) from None
    content = resolve(model, content_layers) if content_layers is not None else default_content
    style = resolve(model, style_layers) if style_layers is not None else default_style
    if not style:
        raise LayerError("no style layer: the network has no layer with a spatial map", hint="name layers with --style-layers")
    if not content and not texture:
        raise LayerError("no content layer", hint="name one with --content-layers")
    _infos(network, list(dict.fromkeys(content + style)), hw)  # unknown names fail here, before any work
    return list(content), list(style)
