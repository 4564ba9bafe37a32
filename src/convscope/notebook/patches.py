"""A hit's patch cut from the atlas's stored image, exactly as the atlas and its viewer draw it.

The stored image is the model-input frame (``images/NNNNNN.jpg``); the box is cut with
:func:`convscope.render.patch.crop` (past the border the mean colour for zero padding, the
reflected, repeated or wrapped pixels otherwise; a box longer than
:data:`convscope.views.base.PICTURE_SIDE` sampled like the atlas's pictures) and what lies
past the border striped grey by :func:`convscope.render.patch.mark_padding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from convscope.errors import AtlasError
from convscope.network.geometry import UnitFields
from convscope.notebook.records import Hit
from convscope.render.grid import fit_cell, grid_shape, tile
from convscope.render.patch import crop, mark_padding, mean_colour
from convscope.views.base import PICTURE_SIDE


def cut_patches(root: Path, hits: Sequence[Hit], fill: np.ndarray, padding: str) -> list[Image.Image]:
    """The patches of ``hits``, in order, as RGB images ``(box.height, box.width)`` (fewer
    pixels for a box longer than ``PICTURE_SIDE``).

    Args:
        root: the atlas folder; each hit's ``image_file`` is read from inside it.
        fill: ``uint8 (3,)`` the colour of zero padding (:func:`padding_fill`).
        padding: the unit's padding mode (:func:`padding_mode`).

    Example:
        >>> import tempfile
        >>> from convscope.network.geometry import Box
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     Image.new("RGB", (4, 4), (200, 10, 10)).save(Path(folder, "a.png"))
        ...     hit = Hit(0, 1.0, "a.png", None, "a.png", 0, 0, Box(-1, -1, 2, 2))
        ...     patch = cut_patches(Path(folder), [hit], np.array([0, 0, 255], np.uint8), "zeros")[0]
        >>> patch.size, patch.getpixel((0, 0)), patch.getpixel((0, 1)), patch.getpixel((1, 1))
        ((3, 3), (96, 96, 96), (0, 0, 255), (200, 10, 10))
    """
    return [Image.fromarray(mark_padding(patch, inside)) for patch, inside in cut(root, hits, fill, padding)]


def cut(root: Path, hits: Sequence[Hit], fill: np.ndarray, padding: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per hit its unmarked patch ``uint8 (h, w, 3)`` and ``bool (h, w)`` True on image content
    (what :func:`convscope.render.patch.crop` returns), each stored image read once."""
    pixels: dict[str, np.ndarray] = {}
    out = []
    for hit in hits:
        if hit.image_file not in pixels:
            pixels[hit.image_file] = read_image(root, hit.image_file)
        out.append(crop(pixels[hit.image_file], hit.box, fill, padding, max_side=PICTURE_SIDE))
    return out


def thumbnail(pieces: Sequence[tuple[np.ndarray, np.ndarray]], k: int, cell: int, gap: int = 1) -> np.ndarray:
    """A unit's patches as one small near-square grid ``uint8 (H, W, 3)``, rank 0 top left, each
    fitted into a ``cell``-pixel square and striped at that scale, as the atlas's grids are.

    Example:
        >>> piece = (np.zeros((5, 5, 3), np.uint8), np.ones((5, 5), bool))
        >>> thumbnail([piece] * 4, k=4, cell=10).shape
        (21, 21, 3)
    """
    cells = [fit_cell(patch, cell, inside) for patch, inside in pieces]
    return tile(cells, grid_shape(max(k, 1)), gap)


def read_image(root: Path, relative: str) -> np.ndarray:
    """``uint8 (H, W, 3)`` pixels of an image stored inside the atlas folder ``root``.

    Raises:
        AtlasError: the path leads outside the atlas, or the file is missing or unreadable.
    """
    path = inside(root, relative)
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as error:
        raise AtlasError(f"cannot read the atlas image {path}: {error}", hint="the atlas is incomplete or damaged; rebuild it with `convscope atlas`") from error


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refused when it resolves outside ``root`` (a damaged or hostile atlas)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise AtlasError(
            f"the atlas at {root} names a file outside itself: {relative!r}",
            hint="the atlas was edited or corrupted; rebuild it with `convscope atlas`",
        )
    return path


def padding_fill(manifest: dict[str, Any]) -> np.ndarray:
    """``uint8 (3,)`` the colour of zero padding: the model's mean (black when not stored)."""
    mean = (manifest.get("preprocess") or {}).get("mean") or (0.0, 0.0, 0.0)
    return mean_colour(tuple(float(m) for m in mean))  # type: ignore[arg-type]


def padding_mode(entry: dict[str, Any], unit: int) -> str:
    """How the network padded the image for ``unit`` of a manifest layer ``entry``: its run's
    ``padding``, else the layer field's, else ``"zeros"`` (as the viewer decides).

    Example:
        >>> padding_mode({"receptive_fields": [{"units": [0, 2], "size": [3, 3], "stride": [1, 1],
        ...                                     "offset": [-1, -1], "padding": "reflect"}]}, 1)
        'reflect'
    """
    runs = entry.get("receptive_fields")
    if isinstance(runs, list) and runs:
        try:
            return UnitFields.from_list(runs).field(unit).padding
        except (IndexError, KeyError, TypeError, ValueError):
            pass
    field = entry.get("receptive_field")
    return str(field.get("padding") or "zeros") if isinstance(field, dict) else "zeros"
