"""explain's folder mode against the atlas's pass 1, side by side in one run.

Over N photos of ../shared/data/imagenet-sample (default all 1,000), the real SqueezeNet 1.0 of
../shared/models, its default layers (the atlas's), batch size 32: ``explain_classes`` (one
forward and one backward per batch, gradient x activation per class, top 10) against
``run_scan`` (pass 1 of ``convscope atlas``: one forward per batch with the scan's hooks),
both decoding the same files with the same workers. They alternate, ``--repeats`` times each;
the script prints each one's median [min, max] seconds and the ratio of the medians
(issue 23's target: the folder mode at most 4x pass 1). Only ratios measured together mean
anything on a shared machine.

Usage: python benchmarks/bench_explain_classes.py [--images N] [--repeats R] [--batch-size B] [--workers W]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from convscope.data import find_images, take
from convscope.explain import explain_classes
from convscope.network.layers import select_layers
from convscope.network.load import load_network
from convscope.scan.job import ScanJob, run_scan

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="photos to use (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, alternating (default 3)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = SHARED / "models" / "squeezenet1_0-imagenet.pth"
    photos = SHARED / "data" / "imagenet-sample"
    if not weights.is_file() or not photos.is_dir():
        raise SystemExit(f"needs {weights} and {photos}")
    network = load_network("torchvision:squeezenet1_0", weights)
    images = take(find_images(photos), args.images)
    infos = select_layers(network.model, None, network.preprocess.input_size)
    print(f"{len(images)} photos, SqueezeNet 1.0, layers {', '.join(i.name for i in infos)}, batch {args.batch_size}, "
          f"workers {args.workers}, {torch.get_num_threads()} threads")
    times: dict[str, list[float]] = {"pass 1 (scan)": [], "explain folder": []}
    with tempfile.TemporaryDirectory() as tmp:
        job = ScanJob(batch_size=args.batch_size, workers=args.workers, resume=False, checkpoint_every=10**9, progress=False)

        def scan() -> None:
            run_scan(network, images, infos, Path(tmp) / "atlas", job)

        def folder() -> None:
            explain_classes(network, images, layers=infos, top=10, batch_size=args.batch_size, workers=args.workers, progress=False)

        for _ in range(args.repeats):
            for name, fn in (("pass 1 (scan)", scan), ("explain folder", folder)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
                print(f"  {name}: {times[name][-1]:.2f} s", flush=True)
    for name, values in times.items():
        print(f"{name:>15}: {statistics.median(values):.2f} s [{min(values):.2f}, {max(values):.2f}] "
              f"({len(images) / statistics.median(values):.1f} img/s)")
    ratio = statistics.median(times["explain folder"]) / statistics.median(times["pass 1 (scan)"])
    print(f"explain folder / pass 1: {ratio:.2f}x (target: at most 4x)")


if __name__ == "__main__":
    main()
