"""Deconvnet projections of all 9 hits of every unit of AlexNet's five conv layers.

Over ../shared/data/imagenet-sample (1,000 photos, 224x224 centre crops) with a
random-weight AlexNet, in one run:

1. the scan (pass 1) that finds the real top-9 hits of all 1,152 units: its time is
   the yardstick the projections are compared with;
2. *convscope*: ``project_hits`` over all 10,368 hits, batched, each hit on the crop
   its receptive field needs (crop classes checked once per layer), hits on the same
   image and crop sharing one forward pass;
3. *plain*: one full-image forward and backward per hit, Captum's ``Deconvolution``
   on a wrapper whose output is the single activation. It is timed on a random
   subsample stratified by layer (``--plain-per-layer``, default 40 hits), where the
   pictures of both ways are also compared (max abs difference).

Run: ``python benchmarks/bench_projection.py [--images 1000] [--plain-per-layer 40]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch
import torchvision

from convscope.data import ImageDataset, find_images, load_pixels, make_loader
from convscope.network.layers import select_layers
from convscope.network.preprocess import Preprocess
from convscope.project import project_hits
from convscope.scan.gather import UNITS_PER_CHUNK
from convscope.scan.scan import scan

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "project"))
from project_helpers import SingleActivation  # noqa: E402  (the tests' Captum wrapper)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"
CHUNK = 2304  # hits per project_hits call (a whole layer but conv3): their inputs are 2304 x 0.6 MB


def hits_of(result, layer: str) -> tuple[torch.Tensor, ...]:
    """``(image, unit, row, col)`` of every hit of ``layer``, each ``(units * k,)``."""
    top = result.layers[layer].topk
    units, k = top.images.shape
    unit = torch.arange(units).repeat_interleave(k)
    positions, width = top.positions.flatten(), result.layers[layer].cols
    return top.images.flatten(), unit, positions // width, positions % width


def ours(model, layer, rf, pixels, pre, hits, chunk: int = CHUNK, per_layer_checks: bool = True) -> torch.Tensor:
    """convscope's projections of ``hits``, ``chunk`` hits per call, the crop classes
    checked once for the layer or (``per_layer_checks=False``) anew in every call."""
    image, unit, row, col = hits
    out, checks = [], {}
    for s in range(0, len(unit), chunk):
        part = slice(s, s + chunk)
        x = pre.normalize(pixels[image[part]])
        out.append(project_hits(model, layer, x, unit[part], row[part], col[part], "deconvnet", receptive_field=rf,
                                crop_checks=checks if per_layer_checks else {}, image_ids=image[part].tolist()))  # fmt: skip
    return torch.cat(out)


def plain(model, layer, pixels, pre, hits) -> torch.Tensor:
    from captum.attr import Deconvolution

    image, unit, row, col = hits
    out = [Deconvolution(SingleActivation(model, layer, int(u), int(r), int(c))).attribute(pre.normalize(pixels[int(i)][None]))
           for i, u, r, c in zip(image, unit, row, col)]  # fmt: skip
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--plain-per-layer", type=int, default=40)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is missing: this benchmark needs the shared ImageNet sample folder")
    warnings.filterwarnings("ignore", module="captum")
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = torchvision.models.alexnet().eval()
    pre = Preprocess()
    images = find_images(DATA)
    images = type(images)(images.root, images.paths[: args.images], None, None, ())
    layers = select_layers(model, None, pre.input_size)
    t = time.perf_counter()
    result = scan(model, [(l.name, l.units) for l in layers], make_loader(ImageDataset(images, pre), 32, 0),
                  pre.normalize, k=9, progress=False)  # fmt: skip
    t_scan = time.perf_counter() - t
    pixels = load_pixels(images, range(len(images.paths)), pre)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, random-weight AlexNet, "
          f"{result.image_count} images; scan (pass 1) {t_scan:.1f} s")  # fmt: skip
    rows, t_chunks = [], []
    for info in layers:
        hits = hits_of(result, info.name)
        pick = torch.randperm(len(hits[0]), generator=g)[: args.plain_per_layer]
        sub = tuple(h[pick] for h in hits)
        t = time.perf_counter()
        every = ours(model, info.name, info.receptive_field, pixels, pre, hits)
        t_all = time.perf_counter() - t
        t = time.perf_counter()
        dealt = ours(model, info.name, info.receptive_field, pixels, pre, hits, UNITS_PER_CHUNK * 9, per_layer_checks=False)
        t_chunks.append((t_all, time.perf_counter() - t, float((dealt - every).abs().max())))
        t = time.perf_counter()
        theirs = plain(model, info.name, pixels, pre, sub)
        t_plain = time.perf_counter() - t
        diff = float((every[pick] - theirs).abs().max())
        rows.append((info.name, len(hits[0]), t_all, len(pick), t_plain, diff, float(theirs.abs().max())))
        print(f"  {info.name} done", flush=True)
    print(f"\n{'layer':<12}{'hits':>6}{'convscope s':>12}{'hit/s':>8}{'plain hit/s':>12}{'ratio':>8}"
          f"{'max|diff|':>11}{'max|plain|':>12}")  # fmt: skip
    for name, n, t_all, n_sub, t_plain, diff, scale in rows:
        print(f"{name:<12}{n:>6}{t_all:>12.1f}{n / t_all:>8.1f}{n_sub / t_plain:>12.2f}"
              f"{(n / t_all) / (n_sub / t_plain):>7.1f}x{diff:>11.2e}{scale:>12.2e}")  # fmt: skip
    total, t_total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    plain_estimate = sum(r[1] * r[4] / r[3] for r in rows)  # each layer's plain rate times its hits
    print(f"{'all':<12}{total:>6}{t_total:>12.1f}{total / t_total:>8.1f}{total / plain_estimate:>12.2f}"
          f"{plain_estimate / t_total:>7.1f}x{max(r[5] for r in rows):>11.2e}")  # fmt: skip
    print(f"\nplain way for all hits, from its per-layer rates: {plain_estimate:.0f} s")
    print(f"projections / scan time: {t_total / t_scan:.1f}x (convscope), {plain_estimate / t_scan:.1f}x (plain)")
    ratios = [chunked / whole for whole, chunked, _ in t_chunks]
    print(f"crop classes checked per chunk of {UNITS_PER_CHUNK} units (the atlas's way, each chunk on its own) / once per layer: "
          f"{sum(c for _, c, _ in t_chunks) / sum(w for w, _, _ in t_chunks):.2f}x in all (per layer {min(ratios):.2f}-{max(ratios):.2f}x); "
          f"max|difference| of their pictures {max(d for _, _, d in t_chunks):.2e}")


if __name__ == "__main__":
    main()
