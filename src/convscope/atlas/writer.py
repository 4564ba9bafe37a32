"""Write an atlas folder atomically: build it under a temporary name, then rename.

A crash or Ctrl-C leaves the previous atlas or none, never a half-written one.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from convscope.atlas.format import FORMAT
from convscope.errors import AtlasError


def check_out(out: Path) -> None:
    """Refuse ``out`` unless writing an atlas there can only replace a convscope atlas.

    ``out`` may be missing, an empty folder, or a previous atlas: a real folder
    (not a symlink) whose ``manifest.json`` is a regular file (not a symlink)
    holding a JSON object with ``"format": "convscope-atlas"``. Anything else (a
    file, a folder of the user's, a web app's or browser extension's
    ``manifest.json``, an unreadable one) raises, and nothing is touched.

    Call it before long work (a scan, a training) so that a bad ``--out`` fails fast;
    :func:`atomic_folder` calls it again before replacing anything.

    Raises:
        AtlasError: ``out`` holds something that is not a convscope atlas.

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
        raise AtlasError(f"{out} exists and is a file, not a convscope atlas", hint=hint)
    manifest = out / "manifest.json"
    if not manifest.exists() and not manifest.is_symlink():
        if any(out.iterdir()):
            raise AtlasError(f"{out} exists, is not empty and is not a convscope atlas (it has no manifest.json)", hint=hint)
        return
    if manifest.is_symlink() or not manifest.is_file():
        raise AtlasError(f"{out} has a manifest.json that is not a regular file, so it is not a convscope atlas", hint=hint)
    try:
        data = json.loads(manifest.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise AtlasError(
            f"{out} holds a manifest.json that is not a convscope atlas's (no \"format\": \"{FORMAT}\"); "
            "it may be a web app or a browser extension, so it is left as it is",
            hint=hint,
        )


@contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out`` that replaces ``out`` on success.

    ``out`` may be missing, an empty folder or a previous convscope atlas (see
    :func:`check_out`); anything else is refused before anything is written, so a
    user's folder is never deleted.
    """
    out = Path(out).absolute()
    check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield tmp
        check_out(out)  # again: the folder may have changed while the atlas was built
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


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, optimize=False, compress_level=3)


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


def write_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=90)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
