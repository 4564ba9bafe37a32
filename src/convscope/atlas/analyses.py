"""Analyses kept inside an atlas outlive its rebuild: the new atlas of the same model takes them over.

``convscope evolve --atlas`` and ``invariance --atlas`` write their folders inside an atlas
(:mod:`convscope.analysis.in_atlas`), ``convscope explain ATLAS IMAGE`` its ``explain/<name>``
folders (:mod:`convscope.explain.in_atlas`; :func:`find_analyses` names them ``explain/<name>``). Writing the atlas again builds a new folder that
replaces the old one whole (:func:`~convscope.atlas.writer.atomic_folder`), so before the
swap its analysis folders are linked into the new one (hard links: no copy of the data, and
the old atlas stays whole until the swap). An atlas of another model does not take them: they
describe a network that is no longer there, and the caller says so.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from convscope.atlas.format import read_manifest
from convscope.atlas.viewer import find_analyses
from convscope.errors import AtlasError


def carry_analyses(old: Path, new: Path, model: dict[str, Any]) -> list[str]:
    """Link the analysis folders of the atlas at ``old`` into ``new`` when it is of the same
    ``model`` (the manifest's ``"model"``: the same source and weights).

    Returns:
        The names of the analysis folders left behind (``old`` is an atlas of another model).
    """
    try:
        previous = read_manifest(old)["model"]
    except (AtlasError, KeyError, TypeError):
        return []  # no atlas there (or one this convscope cannot read): nothing to carry
    found = [name for _, name, _ in find_analyses(old)]
    if not _same_model(previous, model):
        return found
    for name in found:
        if not (new / name).exists():  # an analysis never takes the name of the atlas's own folders
            shutil.copytree(old / name, new / name, symlinks=True, copy_function=_link)
    return []


def _same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same source and weights (by their digest when both have one, else by name)."""
    if a.get("source") != b.get("source"):
        return False
    if a.get("weights_sha256") and b.get("weights_sha256"):
        return a["weights_sha256"] == b["weights_sha256"]
    return a.get("weights") == b.get("weights")


def _link(source: str, target: str) -> None:
    """A hard link where the file system allows one, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
