"""The whole atlas against a plain decode-and-forward loop, side by side in one run.

A torchvision model with random weights (no download here; default AlexNet), k = 9, no
projections, over ../shared/data/imagenet-sample (1,000 JPEGs). The plain loop is what a
user writes: ``PIL.Image.open`` + torchvision's ``Resize(256)``, ``CenterCrop(224)``,
``ToTensor()``, ``Normalize`` in a DataLoader (same batch size and workers) and the whole
model's forward under ``inference_mode``. convscope's time is ``make_atlas`` end to end:
layer discovery, the scan, pass 2 (reloading the winning images), the stored images, the
hits, the overview and the viewer (and every unit grid and mosaic with ``--grids``). Runs
alternate, so drift hits both alike; the median and the spread (min-max) of the ratio are
printed, with the atlas's size on disk and its file count.

Targets (issue 8): AlexNet, its five convs, batch 64: <= 1.25x. ResNet-50, every conv
(``--layers convs``, 26,560 units), batch 32: <= 1.5x; with the default layers: <= 1.2x.
Issue 22: ResNet-50, every conv, with statistics (the default): <= 100 MB on disk. The size is
printed by what it holds (images, layer records, unit pictures, viewer, the rest); ``--keep
DIR`` keeps the last atlas there, for ``bench_viewer.py --atlas DIR``.

Usage: python benchmarks/bench_atlas.py [--model alexnet|resnet50] [--layers default|convs]
       [--batch-size B] [--images N] [--repeats R] [--workers W] [--grids] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from PIL import Image
from torchvision import transforms

from convscope import make_atlas
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Photos(torch.utils.data.Dataset):
    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.transform = transforms.Compose(
            [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", default="alexnet", help="a torchvision model name")
    parser.add_argument("--layers", default="default", help="'default', 'convs' (every conv) or a layer pattern")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--grids", action="store_true", help="also write every unit grid and mosaic")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the last atlas in DIR (replaced)")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"needs {SHARED}")
    paths = sorted(SHARED.glob("*.jpg"))[: args.images]
    torch.manual_seed(0)
    model = torchvision.models.get_model(args.model).eval()
    network = Network(model, f"torchvision:{args.model}", Preprocess())
    layers = None if args.layers == "default" else [args.layers]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for path in paths:
            (folder / path.name).symlink_to(path)

        def plain() -> None:
            loader = torch.utils.data.DataLoader(Photos(paths), batch_size=args.batch_size, num_workers=args.workers)
            with torch.inference_mode():
                for x in loader:
                    model(x)

        def atlas() -> None:
            make_atlas(
                network, folder, Path(tmp) / "atlas", layers=layers, k=9, batch_size=args.batch_size,
                workers=args.workers, grids=args.grids, progress=False, resume=False,
            )

        times: dict[str, list[float]] = {"plain": [], "atlas": []}
        for _ in range(args.repeats):
            for name, fn in (("plain", plain), ("atlas", atlas)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        root = Path(tmp) / "atlas"
        files = [f for f in root.rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        parts = size_by_kind(root, files)
        manifest = json.loads((root / "manifest.json").read_text())
        units = sum(layer["units"] for layer in manifest["layers"])
        if args.keep:
            shutil.rmtree(args.keep, ignore_errors=True)
            shutil.copytree(root, args.keep)
    ratios = [a / p for a, p in zip(times["atlas"], times["plain"])]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(paths)} photos, {args.workers} workers, batch {args.batch_size}")
    print(f"  {args.model}, layers {args.layers}: {len(manifest['layers'])} layers, {units} units{', grids' if args.grids else ''}")
    print(f"  atlas on disk {size / 1e6:.1f} MB in {len(files)} files: " + ", ".join(f"{kind} {n / 1e6:.1f} MB" for kind, n in parts.items()))
    for name, t in times.items():
        print(f"  {name:<6} median {statistics.median(t):6.2f} s   runs {', '.join(f'{x:.2f}' for x in t)}")
    print(f"  atlas / plain = {statistics.median(ratios):.2f}x (spread {min(ratios):.2f}-{max(ratios):.2f})")


def size_by_kind(root: Path, files: list[Path]) -> dict[str, int]:
    """Bytes on disk of the atlas's images, layer records, unit pictures, viewer and the rest."""
    parts = dict.fromkeys(("images", "records", "unit pictures", "viewer", "rest"), 0)
    for f in files:
        relative = f.relative_to(root).parts
        kind = ("images" if relative[0] == "images" else "viewer" if relative[0] == "viewer" or f.name == "index.html"
                else "records" if f.name.startswith("hits.") else "unit pictures" if relative[0] == "layers" else "rest")
        parts[kind] += f.stat().st_size
    return parts


if __name__ == "__main__":
    main()
