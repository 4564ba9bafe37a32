"""Write an atlas's files; the folder itself is replaced atomically by :mod:`convscope.atlas.atomic`.

A crash, Ctrl-C or kill leaves the previous atlas or none, never a half-written one.
"""

from __future__ import annotations

import datetime
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from convscope.atlas.atomic import atomic_folder, check_out  # noqa: F401  (re-exported: callers import them from here)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")


def encode_png(image: np.ndarray) -> bytes:
    """``uint8 (H, W, 3)`` as the bytes of a PNG file (fast compression: atlases hold thousands)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=False, compress_level=3)
    return buffer.getvalue()


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(image))


def write_png_atomic(path: Path, image: np.ndarray) -> None:
    """Write a PNG under a temporary name beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def encode_jpeg(image: np.ndarray) -> bytes:
    """``uint8 (H, W, 3)`` as the bytes of the JPEG file a winning image is stored as."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_jpeg(path: Path, image: np.ndarray | bytes) -> None:
    """A winning image, ``uint8 (H, W, 3)`` or already :func:`encode_jpeg` ed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image if isinstance(image, bytes) else encode_jpeg(image))


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
