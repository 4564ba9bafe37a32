"""Preprocessing that travels with a model: resize, centre crop, normalise.

Images are brought into the *model-input frame* (resized and cropped RGB pixels,
``uint8``); boxes and patches live in that frame. Normalisation happens on the
device, on whole batches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input.

    Attributes:
        input_size: model input ``(height, width)`` in pixels.
        resize: the short side is resized to this many pixels before the centre
            crop; ``None`` resizes the whole image straight to ``input_size``.
        mean, std: per-channel normalisation of ``[0, 1]`` RGB values.
        interpolation: ``nearest``, ``bilinear``, ``bicubic`` or ``lanczos``.

    Example:
        >>> p = Preprocess(input_size=(224, 224), resize=256)
        >>> p.to_model_frame(Image.new("RGB", (640, 480))).size
        (224, 224)
    """

    input_size: tuple[int, int] = (224, 224)
    resize: int | None = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        from convscope.errors import GeometryError

        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise GeometryError(f"input size must be two positive integers, got {self.input_size}")
        if self.interpolation not in _RESAMPLE:
            raise GeometryError(
                f"unknown interpolation {self.interpolation!r}", hint=f"use one of {sorted(_RESAMPLE)}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise GeometryError("mean and std need three values each, std above zero")

    def to_model_frame(self, image: Image.Image) -> Image.Image:
        """Resize and centre-crop an RGB image to ``input_size``; returns RGB."""
        h, w = self.input_size
        resample = _RESAMPLE[self.interpolation]
        if self.resize is None:
            return image.resize((w, h), resample)
        scale = self.resize / min(image.size)
        new_w = max(w, round(image.width * scale))
        new_h = max(h, round(image.height * scale))
        if (new_w, new_h) != image.size:
            image = image.resize((new_w, new_h), resample)
        left = (new_w - w) // 2
        top = (new_h - h) // 2
        return image.crop((left, top, left + w, top + h))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """``uint8`` pixels ``(N, 3, H, W)`` to the float model input ``(N, 3, H, W)``."""
        x = pixels.float().div_(255)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return x.sub_(mean).div_(std)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Model input ``(N, 3, H, W)`` back to ``[0, 1]`` RGB ``(N, 3, H, W)``."""
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x * std + mean).clamp(0, 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["crop"] = "center" if self.resize is not None else "none"
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocess":
        return cls(
            input_size=tuple(d["input_size"]),  # type: ignore[arg-type]
            resize=d.get("resize"),
            mean=tuple(d["mean"]),  # type: ignore[arg-type]
            std=tuple(d["std"]),  # type: ignore[arg-type]
            interpolation=d.get("interpolation", "bilinear"),
        )
