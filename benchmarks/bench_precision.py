"""Mixed precision and channels-last memory in the scan: their speed against float32, and how many units' top-9 they change.

The real ImageNet-trained SqueezeNet 1.0 of ../shared/models over the photos of
../shared/data/imagenet-sample (decoded once beforehand, so the times are the scan's own
forward passes, top-k and statistics, the part precision changes), its default layers, k = 9.
Each setting (float32, float32 + channels-last, bfloat16 and float16 under autocast, and
bfloat16 + channels-last) scans the same batches; runs alternate between the settings,
``--repeats`` times, and the median images/s, its spread (min-max) and the ratio to float32
measured in the same round are printed.

Then, against float32, per layer and over all units: the share of units whose top-9 changes
as a set (another image comes in), as an ordered list (the order changes too), whose top-1
changes, and the mean overlap |float32 top-9 & setting's top-9| / 9.

Usage: python benchmarks/bench_precision.py [--images N] [--batch-size B] [--repeats R]
       [--device cpu|cuda] [--settings float32 bfloat16 ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from convscope.data import find_images, load_pixels
from convscope.network.layers import select_layers
from convscope.network.load import load_network
from convscope.scan.scan import ScanResult, scan

SHARED = Path(__file__).resolve().parents[2] / "shared"
WEIGHTS = SHARED / "models" / "squeezenet1_0-imagenet.pth"
PHOTOS = SHARED / "data" / "imagenet-sample"
#: name -> (autocast type or None, channels-last)
SETTINGS = {
    "float32": (None, False),
    "float32+channels-last": (None, True),
    "bfloat16": (torch.bfloat16, False),
    "bfloat16+channels-last": (torch.bfloat16, True),
    "float16": (torch.float16, False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    if not WEIGHTS.is_file() or not PHOTOS.is_dir():
        sys.exit(f"this benchmark needs {WEIGHTS} and {PHOTOS}")
    settings = ["float32"] + [s for s in args.settings if s != "float32"]
    device = torch.device(args.device)
    network = load_network("torchvision:squeezenet1_0", WEIGHTS)
    model = network.model.to(device)
    images = find_images(PHOTOS)
    count = min(args.images, len(images.paths))
    pixels = load_pixels(images, range(count), network.preprocess)
    batches = [
        (pixels[s : s + args.batch_size], torch.arange(s, min(s + args.batch_size, count)),
         torch.ones(len(pixels[s : s + args.batch_size]), dtype=torch.bool), [""] * args.batch_size)
        for s in range(0, count, args.batch_size)
    ]  # fmt: skip
    layers = [(info.name, info.units) for info in select_layers(model, None, network.preprocess.input_size)]

    def run(setting: str) -> tuple[float, ScanResult]:
        precision, channels_last = SETTINGS[setting]
        start = time.perf_counter()
        result = scan(model, layers, batches, network.preprocess.normalize, k=9, total=count, progress=False,
                      precision=precision, channels_last=channels_last)  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return count / (time.perf_counter() - start), result

    run(settings[0])  # warm-up
    rates: dict[str, list[float]] = {s: [] for s in settings}
    ratios: dict[str, list[float]] = {s: [] for s in settings}
    results: dict[str, ScanResult] = {}
    for _ in range(args.repeats):
        for setting in settings:
            rate, results[setting] = run(setting)
            rates[setting].append(rate)
            ratios[setting].append(rate / rates["float32"][-1])
    print(f"SqueezeNet 1.0 (ImageNet weights), {count} photos decoded beforehand, batch {args.batch_size}, {args.device}, "
          f"{torch.get_num_threads()} threads, {len(layers)} layers ({sum(u for _, u in layers)} units), {args.repeats} runs")  # fmt: skip
    print(f"\n{'setting':<24}{'images/s':>10}{'spread':>16}{'speed / float32':>18}{'spread':>14}")
    for setting in settings:
        r, q = rates[setting], ratios[setting]
        print(f"{setting:<24}{statistics.median(r):>10.1f}{f'{min(r):.1f}-{max(r):.1f}':>16}"
              f"{statistics.median(q):>17.2f}x{f'{min(q):.2f}-{max(q):.2f}':>14}")  # fmt: skip
    reference = results["float32"]
    for setting in settings[1:]:
        print(f"\n{setting} against float32: units whose top-9 changes")
        print(f"{'layer':<22}{'units':>6}{'as a set':>10}{'in order':>10}{'top-1':>8}{'mean overlap':>14}")
        totals = [0, 0, 0, 0, 0.0]
        for name, units in layers:
            a = reference.layers[name].topk.images.tolist()
            b = results[setting].layers[name].topk.images.tolist()
            as_set = sum(set(x) != set(y) for x, y in zip(a, b))
            in_order = sum(x != y for x, y in zip(a, b))
            top1 = sum(x[0] != y[0] for x, y in zip(a, b))
            overlap = sum(len(set(x) & set(y)) / len(x) for x, y in zip(a, b))
            for i, v in enumerate((units, as_set, in_order, top1, overlap)):
                totals[i] += v
            print(f"{name:<22}{units:>6}{as_set / units:>10.1%}{in_order / units:>10.1%}{top1 / units:>8.1%}{overlap / units:>14.3f}")
        units = totals[0]
        print(f"{'all':<22}{units:>6}{totals[1] / units:>10.1%}{totals[2] / units:>10.1%}{totals[3] / units:>8.1%}{totals[4] / units:>14.3f}")


if __name__ == "__main__":
    main()
