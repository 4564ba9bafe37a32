"""What pass 2 sends rank 0 per chunk: the chunk's results as computed vs as a worker packs them.

Scans ../shared's photos with the real SqueezeNet (default layers), computes every chunk of
64 units as a worker does (hits gathered, deconvnet projections, figures drawn), and pickles
each chunk's results two ways: whole (every hit's full frame and every view's raw picture,
what workers sent before) and packed by :func:`convscope.atlas.build._for_writer` (the
figures, and each winning image once, JPEG-encoded, by the first chunk that shows it).
Prints the bytes of both and the time packing takes, against the time computing the chunks took.

Usage: python benchmarks/bench_transport.py [--images N] [--projection deconvnet|none]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--projection", default="deconvnet", choices=["deconvnet", "guided", "none"])
    args = parser.parse_args()
    weights = SHARED / "models" / "squeezenet1_0-imagenet.pth"
    if not weights.exists():
        sys.exit(f"needs {weights}")

    from convscope.atlas.build import RenderOptions, _chunk_results, _for_writer, plan_layer, views_for
    from convscope.data import image_source, take
    from convscope.network.layers import select_layers
    from convscope.network.load import load_network
    from convscope.scan.gather import NewImages, PixelCache, unit_chunks
    from convscope.scan.job import ScanJob, run_scan

    network = load_network("torchvision:squeezenet1_0", weights)
    images = take(image_source(SHARED / "data" / "imagenet-sample"), limit=args.images)
    layers = select_layers(network.model, None, network.preprocess.input_size)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_scan(network, images, layers, Path(tmp) / "atlas", ScanJob(batch_size=32, progress=False, resume=False))
    options = RenderOptions(projection=None if args.projection == "none" else args.projection)
    views = views_for(network, options)
    cache = PixelCache(images, network.preprocess)
    new = NewImages()
    whole = packed = chunks = 0
    computing = packing = 0.0
    for info in layers:
        scan = result.layers[info.name]
        plan = plan_layer(info, scan, views, 9, options, False, new)
        for number, units in enumerate(unit_chunks(info.units)):
            start = time.perf_counter()
            results = _chunk_results(info, scan, units, views, cache, plan, 9, options)
            middle = time.perf_counter()
            slim = pickle.dumps(_for_writer(results, plan.new_images[number]), protocol=pickle.HIGHEST_PROTOCOL)
            packing += time.perf_counter() - middle
            computing += middle - start
            whole += len(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))
            packed += len(slim)
            chunks += 1
    print(f"SqueezeNet 1.0, default layers, {len(images)} photos, projection {args.projection}: {chunks} chunks of up to 64 units")
    print(f"sent to rank 0: whole {whole / 2**20:.1f} MiB, packed {packed / 2**20:.1f} MiB ({whole / packed:.1f}x less)")
    print(f"packing (JPEG-encoding the new images and pickling) {packing:.1f} s, {100 * packing / computing:.1f}% of computing the chunks ({computing:.1f} s)")


if __name__ == "__main__":
    main()
