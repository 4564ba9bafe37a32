"""Fixtures for the viewer tests: a synthetic atlas with its viewer, and a headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from convscope.atlas.viewer import write_viewer
from make_atlas import make_atlas
from oracles import CHROMIUM, need_chromium, need_module

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]


@pytest.fixture(scope="module")
def atlas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An atlas with two normal layers, a 120-unit layer and a hostile layer, viewer written."""
    root = make_atlas(
        tmp_path_factory.mktemp("atlas") / "atlas",
        [("features.0", 40, 8, 8), ("features.3", 5, 4, 4), ("features.6", 120, 2, 2)],
        hostile=True,
        cell=32,
    )
    write_viewer(root)
    return root


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Debian Chromium through Playwright; skipped if either is missing (failed in CI)."""
    sync_api = need_module("playwright.sync_api")
    need_chromium()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
