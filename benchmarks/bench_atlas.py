"""The whole atlas against a plain decode-and-forward loop, side by side in one run.

torchvision AlexNet (random weights: no download here), all five conv layers, k = 9, no
projections, over ../shared/data/imagenet-sample (1,000 JPEGs). The plain loop is what a
user writes: ``PIL.Image.open`` + torchvision's ``Resize(256)``, ``CenterCrop(224)``,
``ToTensor()``, ``Normalize`` in a DataLoader (batch 32, same workers) and the whole
model's forward under ``inference_mode``. convscope's time is ``make_atlas`` end to end:
layer discovery, the scan, pass 2 (reloading the winning images), every unit grid, the
mosaics, the overview and the viewer. Runs alternate, so drift hits both alike; the
median and the spread (min-max) of the ratio are printed.

Usage: python benchmarks/bench_atlas.py [--images N] [--repeats R] [--workers W]
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"needs {SHARED}")
    paths = sorted(SHARED.glob("*.jpg"))[: args.images]
    torch.manual_seed(0)
    model = torchvision.models.alexnet().eval()
    network = Network(model, "torchvision:alexnet", Preprocess())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for path in paths:
            (folder / path.name).symlink_to(path)

        def plain() -> None:
            loader = torch.utils.data.DataLoader(Photos(paths), batch_size=32, num_workers=args.workers)
            with torch.inference_mode():
                for x in loader:
                    model(x)

        def atlas() -> None:
            make_atlas(network, folder, Path(tmp) / "atlas", k=9, batch_size=32, workers=args.workers, progress=False, resume=False)

        times: dict[str, list[float]] = {"plain": [], "atlas": []}
        for _ in range(args.repeats):
            for name, fn in (("plain", plain), ("atlas", atlas)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    ratios = [a / p for a, p in zip(times["atlas"], times["plain"])]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(paths)} photos, {args.workers} workers")
    for name, t in times.items():
        print(f"  {name:<6} median {statistics.median(t):6.2f} s   runs {', '.join(f'{x:.2f}' for x in t)}")
    print(f"  atlas / plain = {statistics.median(ratios):.2f}x (spread {min(ratios):.2f}-{max(ratios):.2f}; target <= 1.25x)")


if __name__ == "__main__":
    main()
