"""The demo's photographs: the ones scikit-image ships inside its wheel.

Only images stored in the wheel itself are used, so nothing is downloaded (the
other ``skimage.data`` images need ``pooch`` and a network). Greyscale photos are
converted to RGB. The photos serve twice: in memory as the demo network's
training images, and as JPEG files in a folder that the scan reads as its dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

#: The photographs, by ``skimage.data`` function name: colour first, then greyscale.
PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
    "camera",
    "brick",
    "grass",
    "gravel",
    "moon",
    "coins",
    "clock",
    "page",
    "text",
    "cell",
)

#: Exported JPEGs are shrunk so that their long side is at most this many pixels.
EXPORT_LONG_SIDE = 640


def load_photo(name: str) -> Image.Image:
    """One photo of :data:`PHOTOS` as an RGB image, at its original size.

    ``stereo_motorcycle`` is a stereo pair; its left view is used.

    Example:
        >>> load_photo("camera").mode
        'RGB'
    """
    pixels = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":
        pixels = pixels[0]
    return Image.fromarray(np.asarray(pixels)).convert("RGB")


def load_photos() -> dict[str, Image.Image]:
    """Every photo of :data:`PHOTOS`, by name, in that order, as RGB images."""
    return {name: load_photo(name) for name in PHOTOS}


def export_photos(folder: Path) -> list[Path]:
    """Write every photo as ``folder/<name>.jpg`` (long side at most 640 pixels).

    Files are written to a temporary name and renamed, so a crash never leaves a
    truncated JPEG. Existing files of the same name are replaced.

    Returns:
        the written paths, in :data:`PHOTOS` order.

    Example:
        >>> paths = export_photos(Path("demo-photos"))  # doctest: +SKIP
        >>> [p.name for p in paths[:2]]  # doctest: +SKIP
        ['astronaut.jpg', 'chelsea.jpg']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in load_photos().items():
        image.thumbnail((EXPORT_LONG_SIDE, EXPORT_LONG_SIDE), Image.Resampling.LANCZOS)
        path = folder / f"{name}.jpg"
        tmp = folder / f".{name}.jpg.tmp"
        image.save(tmp, format="JPEG", quality=90)
        os.replace(tmp, path)
        paths.append(path)
    return paths
