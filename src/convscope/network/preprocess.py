"""Preprocessing that travels with a model: resize, centre crop, normalise.

Images are brought into the *model-input frame* (resized and cropped RGB pixels,
``uint8``); boxes and patches live in that frame. Normalisation happens on the
device, on whole batches.

The frame is exactly what torchvision's ``Resize(resize)`` + ``CenterCrop(input_size)``
give on a PIL image (v1 ``transforms`` and v2 alike), and :meth:`Preprocess.normalize`
what ``ToTensor()`` + ``Normalize(mean, std)`` give after them, so activations equal
the ones a user computes with the standard eval transform:

- the short side becomes ``resize``, the long side ``int(resize * long / short)``
  (truncated, as torchvision does), with Pillow's ``Image.resize``; an image
  whose size already is that is left alone;
- the crop starts at ``int(round((size - crop) / 2))`` along each axis (Python's
  round, halves to even); a side shorter than the crop is padded with black,
  ``(crop - size) // 2`` pixels before it and the rest after.

That is the frame of the default ``decoder``, ``"pillow"``. The other decoders,
``"torchcodec"`` and ``"nvjpeg"`` (:mod:`convscope.data.codec`), decode into tensors
and make the frame with :meth:`Preprocess.tensor_to_model_frame`: the same geometry,
with torchvision's tensor ``Resize`` (antialiased), whose pixels differ from Pillow's
by a level or two where the image is resized (on the CPU, bilinear, ../shared's photos
resized to 240: 0.7% of the values, by 2 at most; ``benchmarks/bench_decode.py``;
nearest neighbour may take the next source pixel on large downscales).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: How image files become pixels: Pillow (the default), TorchCodec on the CPU, or
#: TorchCodec's nvJPEG on the CUDA GPU, in batches (see :mod:`convscope.data.codec`).
DECODERS = ("pillow", "torchcodec", "nvjpeg")

#: torchvision's tensor modes for Pillow's filters; ``nearest-exact`` is the nearest-neighbour
#: rule of Pillow's (torchvision's ``nearest`` is half a pixel off), though on large downscales
#: it may take the next source pixel; lanczos has no tensor mode.
_TENSOR_MODES = {"nearest": "nearest-exact", "bilinear": "bilinear", "bicubic": "bicubic"}

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
        fast_decode: let a JPEG be decoded at a reduced scale (Pillow's ``draft``:
            1/2, 1/4 or 1/8, never below what the resize needs) before the
            resize. Faster on large photos, but the pixels are no longer exactly
            torchvision's; ``False`` (the default) decodes at full resolution.
        decoder: how files become pixels (:data:`DECODERS`): ``"pillow"`` (the
            default, exactly torchvision's PIL transforms), ``"torchcodec"`` (TorchCodec's
            decoder and torchvision's tensor transforms, on the CPU) or ``"nvjpeg"`` (the
            same on the current CUDA device, JPEGs decoded there in batches).

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
    fast_decode: bool = False
    decoder: str = "pillow"

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
        if self.resize is not None and self.resize < 1:
            raise GeometryError(f"resize must be a positive integer or None, got {self.resize}")
        if not isinstance(self.fast_decode, bool):
            raise GeometryError(f"fast_decode must be True or False, got {self.fast_decode!r}")
        if self.decoder not in DECODERS:
            raise GeometryError(f"unknown decoder {self.decoder!r}", hint=f"use one of {', '.join(DECODERS)}")
        if self.decoder != "pillow" and self.fast_decode:
            raise GeometryError("fast decoding is Pillow's draft mode", hint="leave out --fast-decode, or use --decoder pillow")
        if self.decoder != "pillow" and self.interpolation not in _TENSOR_MODES:
            raise GeometryError(
                f"the {self.decoder} decoder resizes tensors, which have no {self.interpolation} filter",
                hint=f"use --decoder pillow, or one of {', '.join(_TENSOR_MODES)}",
            )

    def to_model_frame(self, image: Image.Image) -> Image.Image:
        """Resize and centre-crop an RGB image to ``input_size``, as torchvision does; returns RGB.

        With ``resize=None`` the whole image is resized straight to ``input_size``
        (torchvision's ``Resize((h, w))``).
        """
        h, w = self.input_size
        resample = _RESAMPLE[self.interpolation]
        if self.resize is None:
            return image if image.size == (w, h) else image.resize((w, h), resample)
        new_h, new_w = resized_size(image.height, image.width, self.resize)
        if (new_w, new_h) != image.size:
            image = image.resize((new_w, new_h), resample)
        top = crop_start(new_h, h)
        left = crop_start(new_w, w)
        # Pillow fills the part of a crop box outside the image with zeros: torchvision's black padding
        return image.crop((left, top, left + w, top + h))

    def tensor_to_model_frame(self, image: torch.Tensor) -> torch.Tensor:
        """Resize and centre-crop ``uint8`` RGB ``(3, h, w)`` to ``uint8`` ``(3, H, W)`` on its
        device, as torchvision's tensor ``Resize`` (antialiased) + ``CenterCrop`` do.

        Example:
            >>> Preprocess((224, 224), 256).tensor_to_model_frame(torch.zeros(3, 480, 640, dtype=torch.uint8)).shape
            torch.Size([3, 224, 224])
        """
        from torchvision.transforms.v2 import functional

        h, w = self.input_size
        size = [h, w] if self.resize is None else list(resized_size(image.shape[1], image.shape[2], self.resize))
        if list(image.shape[1:]) != size:
            mode = functional.InterpolationMode(_TENSOR_MODES[self.interpolation])
            image = functional.resize(image, size, interpolation=mode, antialias=True)
        top, left = crop_start(size[0], h), crop_start(size[1], w)
        frame = image.new_zeros(3, h, w)  # black where the image is shorter than the crop
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + h, size[0]), min(left + w, size[1])
        frame[:, y0 - top : y1 - top, x0 - left : x1 - left] = image[:, y0:y1, x0:x1]
        return frame

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Float pixels ``(N, 3, H, W)`` in ``[0, 1]`` to the model input ``(N, 3, H, W)``, out of
        place, so that gradients flow back to ``x`` (style transfer, feature visualisation)."""
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std

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
            fast_decode=bool(d.get("fast_decode", False)),
            decoder=d.get("decoder", "pillow"),
        )


def resized_size(height: int, width: int, short: int) -> tuple[int, int]:
    """The ``(height, width)`` torchvision's ``Resize(short)`` gives an image of this size.

    The short side (the width when both are equal) becomes ``short``; the long side
    ``int(short * long / short_side)``, truncated.

    Example:
        >>> resized_size(375, 500, 256)
        (256, 341)
    """
    if width <= height:
        return int(short * height / width), short
    return short, int(short * width / height)


def crop_start(size: int, crop: int) -> int:
    """Where torchvision's ``CenterCrop`` starts along an axis of ``size`` pixels.

    ``int(round((size - crop) / 2))`` (halves round to even); negative when the
    crop is longer than the axis: the image is then padded by ``(crop - size) // 2``
    pixels before it.

    Example:
        >>> crop_start(341, 224), crop_start(343, 224), crop_start(200, 224)
        (58, 60, -12)
    """
    if crop > size:
        return -((crop - size) // 2)
    return int(round((size - crop) / 2.0))
