"""How fast the offline viewer draws a layer of a real atlas from file://, and how little it loads.

Builds the atlas of torchvision AlexNet (random weights: no download here; its five conv
layers, k = 9) over ../shared/data/imagenet-sample (1,000 photos), then opens
``index.html#<layer>`` in headless Chromium (1280x800) for the first layer and the largest
one and measures, per run in a fresh browser context (cold cache):

* **drawn**: milliseconds from navigation start until the layer view is built, every
  card that intersects the viewport has its patches drawn on its canvas from the stored
  images (and its projection PNG, if any, loaded and decoded), and one more animation
  frame has run;
* **bytes loaded**: the sum of the on-disk sizes of every file:// URL requested up to that
  moment, against the size of the whole atlas.

Target (issue 8): the first layer view under one second. ``--atlas DIR`` measures an atlas
already built instead (issue 22: ResNet-50 with every conv, from ``bench_atlas.py --model
resnet50 --layers convs --batch-size 32 --keep DIR``: its biggest layer, 2,048 units).

Run:  python benchmarks/bench_viewer.py [--runs 5] [--images 1000] [--atlas DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import torch
import torchvision

from convscope import make_atlas
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]

DRAWN_JS = """async () => {
  const onScreen = (el) => { const r = el.getBoundingClientRect();
    return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth; };
  while (true) {
    const main = document.getElementById("main");
    if (main && main.dataset.view === "layer") {
      const cards = [...document.querySelectorAll(".cards .card")].filter(onScreen);
      const imgs = cards.flatMap(c => [...c.querySelectorAll("img")]);
      const canvases = cards.flatMap(c => [...c.querySelectorAll("canvas")]);
      if (cards.length && canvases.every(c => c.dataset.drawn === "1") && imgs.every(i => i.getAttribute("src") && i.complete)) {
        await Promise.all(imgs.map(i => i.decode()));
        await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        return {ms: performance.now(), cards: cards.length};
      }
    }
    await new Promise(r => setTimeout(r, 5));
  }
}"""


def folder_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def measure(browser, url: str) -> tuple[float, int, int]:
    """(drawn ms, bytes loaded, files loaded) for one cold page load."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    result = page.evaluate(DRAWN_JS)
    urls = list(dict.fromkeys(requested))
    context.close()
    sizes = [Path(unquote(urlsplit(u).path)).stat().st_size for u in urls if u.startswith("file://")]
    return result["ms"], sum(sizes), len(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--atlas", type=Path, metavar="DIR", help="measure this atlas instead of building AlexNet's")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"needs {SHARED}")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for path in sorted(SHARED.glob("*.jpg"))[: args.images]:
            (folder / path.name).symlink_to(path)
        started = time.perf_counter()
        if args.atlas is None:
            torch.manual_seed(0)
            network = Network(torchvision.models.alexnet().eval(), "torchvision:alexnet", Preprocess())
            root = make_atlas(network, folder, Path(tmp) / "atlas", k=9, batch_size=64, progress=False, resume=False)
        else:
            root = args.atlas.absolute()
        built = time.perf_counter() - started
        manifest = json.loads((root / "manifest.json").read_text())
        source, count = manifest["model"]["source"], manifest["dataset"]["image_count"]
        atlas_bytes = folder_bytes(root)
        layers = json.loads((root / "manifest.json").read_text())["layers"]
        biggest = max(range(len(layers)), key=lambda i: layers[i]["units"])
        results = {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for index in dict.fromkeys([0, biggest]):
                url = root.as_uri() + "/index.html#" + layers[index]["name"]
                results[index] = [measure(browser, url) for _ in range(args.runs)]
            browser.close()

    print(f"{source} atlas over {count} photos: {len(layers)} layers, built in {built:.1f} s, "
          f"{atlas_bytes / 1e6:.1f} MB; Chromium headless 1280x800, file://")
    for index, runs in results.items():
        times = [r[0] for r in runs]
        _, loaded, files = runs[-1]
        name = f"{layers[index]['name']} ({layers[index]['units']} units)"
        print(f"  {name:<24} drawn median {statistics.median(times):5.0f} ms (min {min(times):.0f}, max {max(times):.0f}, "
              f"{len(times)} cold loads); {files} files, {loaded / 1e6:.2f} MB loaded ({loaded / atlas_bytes:.1%} of the atlas)")


if __name__ == "__main__":
    main()
