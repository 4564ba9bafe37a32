"""How much the scan costs over the bare forward pass, and that its memory is bounded.

Three measurements, each side by side in one run (this machine is shared and noisy,
so only ratios measured together mean anything):

1. Preloaded batches, torchvision AlexNet (random weights), all five conv layers:
   the scan (hooks, per-image spatial max, running top-k) against the bare forward
   of the whole model and of its conv part (`model.features`, where the scan stops).
2. End to end over ../shared/data/imagenet-sample: the scan against a plain
   decode-and-forward loop with the same batch size and workers.
3. Peak memory (max RSS of a fresh process) scanning 1,000 vs 10,000 images.

Usage: python benchmarks/bench_scan.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchvision

from convscope.data import ImageDataset, find_images, make_loader
from convscope.network.layers import default_layers
from convscope.network.preprocess import Preprocess
from convscope.scan.scan import scan

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"


def alexnet() -> tuple[torch.nn.Module, list[tuple[str, int]]]:
    torch.manual_seed(0)
    model = torchvision.models.alexnet().eval()
    layers = [(name, model.get_submodule(name).out_channels) for name in default_layers(model)]
    return model, layers


def batches(n_batches: int, batch_size: int, size: int) -> list:
    g = torch.Generator().manual_seed(0)
    out = []
    for b in range(n_batches):
        pixels = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=g)
        idx = torch.arange(b * batch_size, (b + 1) * batch_size)
        out.append((pixels, idx, torch.ones(batch_size, dtype=torch.bool), [""] * batch_size))
    return out


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` runs of ``fn``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def overhead(quick: bool) -> None:
    model, layers = alexnet()
    pre = Preprocess()
    data = batches(2 if quick else 4, 32, 224)

    def bare(module):
        def run():
            with torch.inference_mode():
                for pixels, *_ in data:
                    module(pre.normalize(pixels))
        return run

    def scanned():
        scan(model, layers, data, pre.normalize, k=9, progress=False)

    bare(model)()  # warm up
    rows = []
    repeats = 3 if quick else 5
    # Interleave the three so drift hits all alike.
    t_full, t_feat, t_scan = [], [], []
    for _ in range(repeats):
        t_full.append(timed(bare(model), 1))
        t_feat.append(timed(bare(model.features), 1))
        t_scan.append(timed(scanned, 1))
    images = sum(len(b[1]) for b in data)
    full, feat, sc = (statistics.median(t) for t in (t_full, t_feat, t_scan))
    rows = [
        ("bare forward, whole AlexNet", full),
        ("bare forward, conv part (model.features)", feat),
        ("scan: 5 conv layers, top-9, stops after conv5", sc),
    ]
    print(f"\n1. preloaded batches: {images} images 224x224, batch 32, median of {repeats} interleaved runs")
    for name, t in rows:
        print(f"   {name:<48} {t:7.3f} s  {images / t:7.1f} img/s")
    print(f"   scan / bare whole forward  = {sc / full:.3f}x")
    print(f"   scan / bare conv forward   = {sc / feat:.3f}x   (target <= 1.03x)")


def end_to_end(quick: bool, workers: int) -> None:
    if not SHARED.is_dir():
        print(f"\n2. skipped: {SHARED} is missing")
        return
    model, layers = alexnet()
    pre = Preprocess()
    images = find_images(SHARED)
    if quick:
        images = type(images)(images.root, images.paths[:200], None, None, ())
    dataset = ImageDataset(images, pre)

    def plain():
        with torch.inference_mode():
            for pixels, _, ok, _ in make_loader(dataset, batch_size=32, workers=workers):
                model(pre.normalize(pixels[ok]))

    def scanned():
        scan(model, layers, make_loader(dataset, batch_size=32, workers=workers), pre.normalize, k=9, progress=False)

    t_plain, t_scan = [], []
    for _ in range(2 if quick else 3):
        t_plain.append(timed(plain, 1))
        t_scan.append(timed(scanned, 1))
    p, s = statistics.median(t_plain), statistics.median(t_scan)
    n = len(images.paths)
    print(f"\n2. end to end over {n} ImageNet photos (decode, resize 256, crop 224), batch 32, {workers} workers")
    print(f"   plain decode + whole forward   {p:7.2f} s  {n / p:6.1f} img/s")
    print(f"   convscope scan                 {s:7.2f} s  {n / s:6.1f} img/s")
    print(f"   scan / plain = {s / p:.3f}x   (target <= 1.05x)")


def memory_child(n_images: int) -> None:
    """Scan ``n_images`` (96x96, one batch reused) and print peak RSS in MiB."""
    model, layers = alexnet()
    pre = Preprocess(input_size=(96, 96), resize=96)
    base = batches(1, 50, 96)[0]

    def stream():
        for start in range(0, n_images, 50):
            yield (base[0], torch.arange(start, start + 50), base[2], base[3])

    result = scan(model, layers, stream(), pre.normalize, k=9, progress=False)
    assert result.image_count == n_images
    print(json.dumps({"images": n_images, "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def memory(quick: bool) -> None:
    print("\n3. peak memory of a fresh process scanning AlexNet at 96x96 (max RSS)")
    counts = (1000, 3000) if quick else (1000, 10000)
    for n in counts:
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(n)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"   {r['images']:>6} images: {r['max_rss_mib']:7.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--memory-child", type=int)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    overhead(args.quick)
    end_to_end(args.quick, args.workers)
    memory(args.quick)


if __name__ == "__main__":
    main()
