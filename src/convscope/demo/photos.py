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


def export_tiles(folder: Path, *, size: int = 96, short_sides: tuple[int, ...] = (224, 320, 448), stride: int = 96) -> int:
    """Cut every photo into ``size`` x ``size`` tiles: the demo scan's data set.

    Each photo is resized so its short side is each of ``short_sides`` (the scales the
    demo network was trained at: its crops cover 30-90% of a 224-pixel short side),
    then tiled every ``stride`` pixels. Tiles go to ``folder/<photo>/<side>-<row>-<col>.jpg``,
    an ImageFolder layout whose labels are the photo names. Existing files are replaced.

    Returns:
        the number of tiles written (about 750 with the defaults).
    """
    folder = Path(folder)
    count = 0
    for name, photo in load_photos().items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for side in short_sides:
            scale = side / min(photo.size)
            image = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)
            for top in range(0, image.height - size + 1, stride):
                for left in range(0, image.width - size + 1, stride):
                    path = folder / name / f"{side}-{top // stride:02d}-{left // stride:02d}.jpg"
                    tmp = path.with_name(f".{path.name}.tmp")
                    image.crop((left, top, left + size, top + size)).save(tmp, format="JPEG", quality=92)
                    os.replace(tmp, path)
                    count += 1
    return count
