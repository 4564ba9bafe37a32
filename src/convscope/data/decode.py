"""Decoding one image file to RGB, strictly: a damaged file fails, it is never half-read.

Conversions to RGB, per Pillow mode:

- ``1``, ``L``: grey ``g`` becomes ``(g, g, g)``.
- ``I``, ``I;16*`` (16-bit PNG, TIFF, PGM): values are on the 16-bit scale
  ``0..65535`` and become ``round(v / 257)``, clipped to ``0..255``.
- ``F``: values are on Pillow's ``0..255`` scale, rounded and clipped.
- ``P`` (palette): the palette colours; with a transparent index, as ``RGBA``.
- ``RGBA``, ``LA``, ``PA``, ``RGBa``: composited **over white**. The colour
  of a fully transparent pixel is undefined (often black or junk), so dropping
  alpha would show the network arbitrary colours; white is what an image viewer
  on a page shows.
- ``CMYK``, ``YCbCr`` and the rest: Pillow's own conversion.

EXIF orientation is applied first, so a portrait photo is upright. Truncated
files raise (Pillow's ``LOAD_TRUNCATED_IMAGES`` is left as it is, ``False`` by
default), as do images over Pillow's decompression-bomb limit
(``PIL.Image.MAX_IMAGE_PIXELS``, read, never changed).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

_WHITE = (255, 255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa"})


def open_rgb(path: Path | BinaryIO, min_side: int | None = None) -> Image.Image:
    """Read an image file, upright, as a fully loaded RGB image; the file is closed.

    Args:
        path: the image file (or an open binary file).
        min_side: if given, a JPEG may be decoded at a reduced scale (1/2, 1/4 or
            1/8, Pillow's ``draft``) as long as both sides stay at least this
            many pixels; other formats are read at full size. A reduced decode
            is faster but its pixels differ from a full decode resized to the
            same size; ``None`` (the default) always decodes at full resolution,
            as ``Image.open(path).convert("RGB")`` does.

    Raises:
        Exception: whatever Pillow raises for an unreadable file
            (``UnidentifiedImageError``, ``OSError`` for a truncated file,
            ``DecompressionBombError``, ...); :func:`failure_reason` words it.

    Example:
        >>> open_rgb(Path("cat.png")).mode  # doctest: +SKIP
        'RGB'
    """
    with Image.open(path) as image:
        if min_side is not None:
            image.draft(None, (min_side, min_side))
        image.load()
        upright = ImageOps.exif_transpose(image)
    return to_rgb(upright)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a loaded image of any mode to RGB (rules in the module docstring).

    Example:
        >>> to_rgb(Image.new("L", (2, 2), 128)).getpixel((0, 0))
        (128, 128, 128)
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "I" or mode.startswith("I;16"):
        return _grey_array_to_rgb(np.asarray(image).astype(np.float64) / 257.0)
    if mode == "F":
        return _grey_array_to_rgb(np.asarray(image).astype(np.float64))
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in _ALPHA_MODES:
        over = Image.new("RGBA", image.size, _WHITE)
        return Image.alpha_composite(over, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def failure_reason(error: Exception) -> str:
    """One phrase saying why a file could not be read, for reports and ``skipped`` lists.

    Example:
        >>> failure_reason(OSError("image file is truncated (12 bytes not processed)"))
        'image file is truncated (12 bytes not processed)'
    """
    if isinstance(error, UnidentifiedImageError):
        return "cannot identify image file (not an image, or a format Pillow cannot read)"
    if isinstance(error, Image.DecompressionBombError):
        return f"too many pixels, refused as a possible decompression bomb ({error})"
    return str(error) or type(error).__name__


def _grey_array_to_rgb(values: np.ndarray) -> Image.Image:
    """Grey values ``(H, W)`` on the 0..255 scale to an RGB image ``(W, H)``."""
    grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2))


def channels_first(pixels: np.ndarray) -> torch.Tensor:
    """``uint8 (..., H, W, 3)`` -> a contiguous ``uint8 (..., 3, H, W)`` tensor, transposed in
    numpy: torch's uint8 permute-copy measured ~100x slower on our CPU runner."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(pixels, -1, -3)))
