"""The independent oracles the tests compare convscope with, and what a missing one does.

On a developer's machine a missing oracle (Captum, Playwright with Debian's Chromium, the
real networks and photos in ``../shared``) skips the tests that need it. Under CI (the
environment variable ``CI`` set, as ``.ci/run`` does) it fails them instead: CI installs
every oracle, so a missing one is a broken setup, never a silent pass.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest
import torch

from convscope.network.geometry import Box

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
SHARED = Path(__file__).resolve().parents[2] / "shared"
CHROMIUM = Path("/usr/bin/chromium")


def missing(reason: str) -> NoReturn:
    """Skip (locally) or fail (in CI) the test or module being collected."""
    if IN_CI:
        pytest.fail(f"an oracle is missing in CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def need_module(name: str) -> ModuleType:
    """Import an oracle library (``captum.attr``, ``playwright.sync_api``)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(f"{name} is not installed ({exc}); pip install -e '.[test]'")


def need_chromium() -> Path:
    """Debian's Chromium, which the browser tests drive."""
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return CHROMIUM


def need_shared(*paths: str) -> Path:
    """``../shared``, checked to hold every one of ``paths`` (relative to it)."""
    absent = [p for p in paths if not (SHARED / p).exists()]
    if absent:
        missing(f"needs {SHARED} with {', '.join(absent)}")
    return SHARED


def support_box(grad: torch.Tensor) -> Box | None:
    """Bounding box of the non-zero pixels of an input gradient ``(3, H, W)``: the receptive-field
    oracle (``None`` when the activation depends on no pixel)."""
    rows, cols = torch.nonzero(grad.abs().sum(dim=0), as_tuple=True)
    if len(rows) == 0:
        return None
    return Box(int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1)
