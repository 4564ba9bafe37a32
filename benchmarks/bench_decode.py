"""Decoding into the model frame: images/s of each decoder, and how far its pixels are from Pillow's.

For each decoder (``pillow``, ``torchcodec``, and ``nvjpeg`` where CUDA is there) this times
convscope's :func:`convscope.data.frame_batches` over ../shared's photos (``--repeat-images``
times over), with ``--workers`` loader workers, and nothing else: no model. The decoders run
alternately, ``--repeats`` times; the median and the spread (min-max) are printed, with each
decoder's rate over Pillow's. Then, once, every frame of each decoder is compared with
Pillow's: the largest difference, the mean one, and the share of values that differ.

The photos of ../shared are small (their short side is 256, what ``Resize(256)`` makes of them
anyway), so the resize costs little here; ``--resize`` (default 256) changes that.

Usage: python benchmarks/bench_decode.py [--images N] [--repeat-images R] [--workers W]
       [--batch-size B] [--repeats K] [--resize S] [--threads T]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_distributed import photo_folder  # noqa: E402

from convscope.data import find_images, frame_batches  # noqa: E402
from convscope.network.preprocess import Preprocess  # noqa: E402


def rate(images, preprocess: Preprocess, args: argparse.Namespace, device: torch.device) -> float:
    """Images/s of one pass of ``frame_batches`` (the pixels made, on ``device``)."""
    start = time.perf_counter()
    for batch in frame_batches(images, preprocess, args.batch_size, args.workers, device):
        assert bool(batch.ok.all()), batch.errors
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return len(images) / (time.perf_counter() - start)


def frames(images, preprocess: Preprocess, args: argparse.Namespace, device: torch.device) -> torch.Tensor:
    """Every frame, on the CPU: ``uint8 (N, 3, H, W)``."""
    return torch.cat([batch.pixels.cpu() for batch in frame_batches(images, preprocess, args.batch_size, args.workers, device)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=500, help="photos of ../shared taken (default 500)")
    parser.add_argument("--repeat-images", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads in this process (default: torch's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resize", type=int, default=256, help="the short side before the 224 crop (default 256)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    decoders = ["pillow", "torchcodec", *(["nvjpeg"] if cuda else [])]
    devices = {"pillow": torch.device("cpu"), "torchcodec": torch.device("cpu"), "nvjpeg": torch.device("cuda") if cuda else None}
    with tempfile.TemporaryDirectory() as tmp:
        images = find_images(photo_folder(args.images, args.repeat_images, Path(tmp)))
        pres = {name: Preprocess((224, 224), args.resize, decoder=name) for name in decoders}
        rates: dict[str, list[float]] = {name: [] for name in decoders}
        rate(images, pres["pillow"], args, devices["pillow"])  # warm the page cache
        for _ in range(args.repeats):
            for name in decoders:
                rates[name].append(rate(images, pres[name], args, devices[name]))
        pillow = frames(images, pres["pillow"], args, devices["pillow"]).int()
        print(f"decoding {len(images)} photos into 224x224 frames (resize {args.resize}), batch {args.batch_size}, {args.workers} workers, {torch.get_num_threads()} threads, {args.repeats} runs{'' if cuda else '; no CUDA: nvjpeg not run'}")
        base = statistics.median(rates["pillow"])
        for name in decoders:
            values = rates[name]
            ratios = [v / p for v, p in zip(values, rates["pillow"])]
            line = f"{name:>10}: {statistics.median(values):7.1f} images/s (spread {min(values):.1f}-{max(values):.1f}), {statistics.median(values) / base:.2f}x Pillow (per run {min(ratios):.2f}-{max(ratios):.2f})"
            if name != "pillow":
                diff = (frames(images, pres[name], args, devices[name]).int() - pillow).abs()
                line += f"; pixels vs Pillow: max {int(diff.max())}, mean {diff.float().mean():.4f}, {100 * (diff > 0).float().mean():.2f}% differ"
            print(line)


if __name__ == "__main__":
    main()
