"""Analyses kept inside an atlas: ``--atlas ATLAS`` writes ``ATLAS/<name>/`` and refreshes its viewer.

The viewer shows every analysis folder directly inside its atlas (see
:func:`convscope.atlas.viewer.find_analyses`); a command that writes one there calls
:func:`analysis_folder` before its long work (so a wrong ``--atlas`` fails at once) and
:func:`refresh_viewer` after it has written.
"""

from __future__ import annotations

from pathlib import Path

from convscope.atlas.format import read_manifest
from convscope.atlas.viewer import write_viewer
from convscope.errors import AtlasError


def analysis_folder(atlas: str | Path, name: str) -> Path:
    """``ATLAS/name``, after checking that ``atlas`` is an atlas folder (its ``manifest.json``
    says ``"format": "convscope-atlas"``, of a version this convscope reads).

    Raises:
        AtlasError: ``atlas`` is missing or not an atlas; the message names ``--atlas``.

    Example:
        >>> analysis_folder("no/such/atlas", "evolution")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        convscope.errors.AtlasError: --atlas no/such/atlas: no atlas folder at no/such/atlas...
    """
    try:
        read_manifest(Path(atlas))
    except AtlasError as error:
        raise AtlasError(f"--atlas {atlas}: {error.message}", hint=error.hint or "pass a folder that `convscope atlas` wrote") from None
    return Path(atlas) / name


def refresh_viewer(atlas: str | Path) -> Path:
    """Rewrite the atlas's viewer so that it shows the analyses now inside it; returns its ``index.html``."""
    write_viewer(Path(atlas))
    return Path(atlas) / "index.html"
