"""Write an atlas folder atomically: build it under a temporary name, then rename.

A crash or Ctrl-C leaves the previous atlas or none, never a half-written one.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from convscope.atlas.format import FORMAT
from convscope.errors import AtlasError


def check_out(out: Path, *, record: str = "manifest.json", format: str = FORMAT, what: str = "a convscope atlas") -> None:
    """Refuse ``out`` unless writing there can only replace a folder of ours (default: an atlas).

    ``out`` may be missing, an empty folder, or a previous one: a real folder (not a
    symlink) whose ``record`` file is a regular file (not a symlink) holding a JSON
    object with ``"format": format``. Anything else (a file, a folder of the user's, a
    web app's or browser extension's ``manifest.json``, an unreadable one) raises, and
    nothing is touched. Other folders convscope writes (an evolution folder) pass their
    own ``record``, ``format`` and ``what``.

    Call it before long work (a scan, a training) so that a bad ``--out`` fails fast;
    :func:`atomic_folder` calls it again before replacing anything.

    Raises:
        AtlasError: ``out`` holds something that is not ``what``.

    Example:
        >>> check_out(Path("new-atlas"))  # missing: fine  # doctest: +SKIP
    """
    out = Path(out).absolute()
    hint = f"choose another --out, or remove {out} yourself if it is no longer needed"
    if out.is_symlink():
        raise AtlasError(f"{out} is a symbolic link; convscope does not replace links", hint=f"pass the folder it points to, or {hint}")
    if not out.exists():
        return
    if not out.is_dir():
        raise AtlasError(f"{out} exists and is a file, not {what}", hint=hint)
    marker = out / record
    if not marker.exists() and not marker.is_symlink():
        if any(out.iterdir()):
            raise AtlasError(f"{out} exists, is not empty and is not {what} (it has no {record})", hint=hint)
        return
    if marker.is_symlink() or not marker.is_file():
        raise AtlasError(f"the {record} in {out} is not a regular file, so it is not {what}", hint=hint)
    try:
        data = json.loads(marker.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("format") != format:
        raise AtlasError(
            f"the {record} in {out} is not {what}'s (no \"format\": \"{format}\"): it may be a web app's "
            "or a browser extension's, so the folder is left as it is",
            hint=hint,
        )


@contextmanager
def atomic_folder(out: Path, check: Callable[[Path], None] = check_out) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out`` that replaces ``out`` on success.

    ``out`` may be missing, an empty folder or a previous folder of ours (``check``,
    default :func:`check_out`: an atlas); anything else is refused before anything is
    written, so a user's folder is never deleted.
    """
    out = Path(out).absolute()
    check(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield tmp
        check(out)  # again: the folder may have changed while it was built
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
