"""Every unit's inputs against the atlas they come from, side by side in one run.

Over N photos of ../shared/data/imagenet-sample (default all 1,000), the real SqueezeNet 1.0 of
../shared/models with its default layers (the stem, eight Fire blocks, the classifier), k = 9:
``make_atlas`` (the whole atlas: scan, pass 2, images, records, overview, viewer) against
``make_circuits`` on that atlas without ablation (every unit's inputs from the layer before it,
averaged over its 9 hits: nine layer pairs, 3,560 units, 32,040 hits; the weights view where a
pair is a direct convolution; the circuits folder and the rewritten viewer). Each repeat builds
the atlas and then its circuits; the script prints each one's median [min, max] seconds and the
ratio per repeat (issue 25's target: the circuits at most 0.3x the atlas's own time).

The circuits cost what their hits cost: the images that hold a hit are run once more (to the
deepest lower layer) and each hit's window of the lower map once forward and backward, so the
ratio falls as the data set grows (the atlas reads every image; the circuits only the hits'
images, at most units x k). ``--images`` shows it.

``--model resnet20``: the trained CIFAR-10 ResNet-20 of ../shared/models (examples/resnet20_cifar.py)
over the 10,000 CIFAR-10 test images instead, its default layers (the stem and nine residual
blocks: nine pairs, 336 units, 3,024 hits): a data set three times larger than its hits.

Usage: python benchmarks/bench_circuits.py [--model squeezenet|resnet20] [--images N] [--repeats R] [--batch-size B] [--threads T]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from convscope import make_atlas
from convscope.circuits.api import make_circuits
from convscope.data import find_images
from convscope.network.load import load_network

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["squeezenet", "resnet20"], default="squeezenet")
    parser.add_argument("--images", type=int, default=None, help="images to scan (default all: 1,000 photos, 10,000 CIFAR images)")
    parser.add_argument("--repeats", type=int, default=3, help="atlas + circuits runs (default 3)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model == "squeezenet":
        weights, photos = SHARED / "models" / "squeezenet1_0-imagenet.pth", SHARED / "data" / "imagenet-sample"
        source, name = "torchvision:squeezenet1_0", "SqueezeNet 1.0"
    else:
        weights, photos = SHARED / "models" / "resnet20-cifar10.th", SHARED / "data" / "cifar10-test"
        source, name = str(Path(__file__).resolve().parents[1] / "examples" / "resnet20_cifar.py") + ":resnet20", "ResNet-20"
    if not weights.is_file() or not photos.is_dir():
        raise SystemExit(f"needs {weights} and {photos}")
    network = load_network(source, weights)
    if args.model == "resnet20":  # CIFAR's 32 x 32 images as they are (convscope atlas --input-size 32)
        network = dataclasses.replace(network, preprocess=dataclasses.replace(network.preprocess, input_size=(32, 32), resize=32))
    count = min(args.images or 10**9, len(find_images(photos)))
    print(f"{count} images, {name}, default layers, k 9, batch {args.batch_size}, {torch.get_num_threads()} threads")
    atlas_times, circuit_times, ratios = [], [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "atlas"
            start = time.perf_counter()
            make_atlas(network, photos, out, k=9, batch_size=args.batch_size, limit=count, progress=False)
            atlas_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            found = make_circuits(out, progress=False)
            circuit_times.append(time.perf_counter() - start)
        ratios.append(circuit_times[-1] / atlas_times[-1])
        methods = ", ".join(f"{pair.layer} {pair.method}" for pair in found.inputs)
        print(f"  repeat {repeat + 1}: atlas {atlas_times[-1]:.2f} s, circuits {circuit_times[-1]:.2f} s, "
              f"ratio {ratios[-1]:.2f}x ({methods})", flush=True)
    for name, values in (("atlas", atlas_times), ("circuits", circuit_times)):
        print(f"{name:>9}: {statistics.median(values):.2f} s [{min(values):.2f}, {max(values):.2f}]")
    print(f"circuits / atlas: {statistics.median(ratios):.2f}x [{min(ratios):.2f}, {max(ratios):.2f}] (target: at most 0.3x)")


if __name__ == "__main__":
    main()
