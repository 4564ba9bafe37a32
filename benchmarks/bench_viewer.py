"""How fast the offline viewer draws a big layer from file://, and how little it loads.

Builds a synthetic atlas of 5 layers x 256 units x 9 hits (real 3x3 grid PNGs of
64-pixel cells with 2-pixel gaps, patches and projections, 224x224 JPEG images),
writes the viewer, opens ``index.html#<first layer>`` in headless Chromium
(1280x800) and measures, per run in a fresh browser context (cold cache):

* **drawn**: milliseconds from navigation start until the layer view is built,
  every card image whose card intersects the viewport has loaded and
  ``img.decode()`` has resolved, and one more animation frame has run;
* **bytes loaded**: the sum of the on-disk sizes of every file:// URL requested
  up to that moment, against the size of the whole atlas.

Run:  python benchmarks/bench_viewer.py [--runs 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "viewer"))
from make_atlas import make_atlas  # noqa: E402

from convscope.atlas.viewer import write_viewer  # noqa: E402

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]
LAYERS, UNITS, K, CELL, GAP = 5, 256, 9, 64, 2

DRAWN_JS = """async () => {
  const onScreen = (el) => { const r = el.getBoundingClientRect();
    return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth; };
  while (true) {
    const main = document.getElementById("main");
    if (main && main.dataset.view === "layer") {
      const imgs = [...document.querySelectorAll(".cards .card")].filter(onScreen).flatMap(c => [...c.querySelectorAll("img")]);
      if (imgs.length && imgs.every(i => i.getAttribute("src") && i.complete)) {
        await Promise.all(imgs.map(i => i.decode()));
        await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        return {ms: performance.now(), images: imgs.length};
      }
    }
    await new Promise(r => setTimeout(r, 5));
  }
}"""


def grid_maker(seed: int = 0, variants: int = 48):
    """grid_png(layer, unit, projection) returning one of ``variants`` smooth-noise 3x3 grids."""
    rng = np.random.default_rng(seed)
    size = 3 * CELL + 2 * GAP
    encoded = []
    for _ in range(variants):
        small = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
        image = Image.fromarray(small).resize((size, size), Image.BILINEAR)
        noisy = np.asarray(image, dtype=np.int16) + rng.integers(-6, 7, (size, size, 3))
        buffer = io.BytesIO()
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return lambda layer, unit, projection: encoded[(layer * 7 + unit * 2 + projection) % variants]


def folder_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def measure(browser, url: str) -> tuple[float, int, int, int]:
    """(drawn ms, bytes loaded, files loaded, grid PNGs loaded) for one cold page load."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    result = page.evaluate(DRAWN_JS)
    urls = list(dict.fromkeys(requested))
    context.close()
    sizes = [Path(unquote(urlsplit(u).path)).stat().st_size for u in urls if u.startswith("file://")]
    grids = sum(1 for u in urls if "/units/" in u)
    return result["ms"], sum(sizes), len(sizes), grids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        layers = [(f"features.{3 * i}", UNITS, 27 - 4 * i, 27 - 4 * i) for i in range(LAYERS)]
        root = make_atlas(Path(tmp) / "atlas", layers, k=K, cell=CELL, gap=GAP, input_size=(224, 224),
                          image_count=600, grid_png=grid_maker())
        built = time.perf_counter() - started
        started = time.perf_counter()
        write_viewer(root)
        viewer_s = time.perf_counter() - started
        atlas_bytes = folder_bytes(root)
        layer_dir = root / "layers" / layers[0][0]
        layer_bytes = folder_bytes(layer_dir)
        data_js = (root / "viewer" / "data" / "layer-0.js").stat().st_size

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            runs = [measure(browser, root.as_uri() + "/index.html#" + layers[0][0]) for _ in range(args.runs)]
            browser.close()

    times = [r[0] for r in runs]
    _, loaded, files, grids = runs[-1]
    print(f"atlas: {LAYERS} layers x {UNITS} units x {K} hits, cell {CELL} gap {GAP}, projections; "
          f"built in {built:.1f} s, write_viewer {viewer_s * 1000:.0f} ms; Chromium headless 1280x800, file://")
    print()
    print(f"{'measure':<44} {'value':>16}")
    print(f"{'-' * 44} {'-' * 16}")
    print(f"{'first layer drawn, median of ' + str(len(times)) + ' cold loads (ms)':<44} {statistics.median(times):>16.0f}")
    print(f"{'  min / max (ms)':<44} {min(times):>7.0f} / {max(times):>6.0f}")
    print(f"{'files loaded':<44} {files:>16}")
    print(f"{'grid PNGs loaded / in the layer':<44} {grids:>7} / {2 * UNITS:>6}")
    print(f"{'bytes loaded':<44} {loaded:>16,}")
    print(f"{'  of which layer-0.js':<44} {data_js:>16,}")
    print(f"{'bytes of the first layer folder':<44} {layer_bytes:>16,}")
    print(f"{'bytes of the whole atlas':<44} {atlas_bytes:>16,}")
    print(f"{'loaded / whole atlas':<44} {loaded / atlas_bytes:>15.2%}")


if __name__ == "__main__":
    main()
