"""Bau's test for real: SqueezeNet 1.0's features.12 over photos of ../shared/data/imagenet-sample,
classes by label (file names ``<wnid>_<name>.jpg``; class index = the wnid's position among the
sorted wnids of all files, which is torchvision's ImageNet order).

Prints the share of classes whose top-n units (by single-unit drops) zeroed together drop their
logit more than n random units, the mean drops, and three classes' top units with their drops.
Not a timing: one run.

    .venv/bin/python benchmarks/bau_squeezenet.py [--images 500] [--n 5] [--repeats 3] [--threads 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def squeezenet_photos(count: int, seed: int):
    """The network, the features.12 LayerInfo, the sampled image indices, their labels and a load function."""
    import torch

    from convscope import find_images, load_network, load_pixels, select_layers
    from convscope.circuits.ablation import sample_images

    net = load_network("torchvision:squeezenet1_0", SHARED / "models/squeezenet1_0-imagenet.pth")
    (layer,) = select_layers(net.model, ["features.12"], net.preprocess.input_size)
    photos = find_images(SHARED / "data/imagenet-sample")
    wnids = [Path(p).name.split("_")[0] for p in photos.paths]
    order = {w: i for i, w in enumerate(sorted(set(wnids)))}
    picked = sample_images(len(photos.paths), count, seed=seed)
    labels = [order[wnids[i]] for i in picked]
    x = torch.cat([net.model_input(load_pixels(photos, picked[s:s + 64].tolist(), net.preprocess)) for s in range(0, len(picked), 64)])
    position = {int(i): p for p, i in enumerate(picked)}
    return net, layer, picked, labels, (lambda indices: x[[position[int(i)] for i in indices]]), photos


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--n", type=int, default=5, help="units per set")
    parser.add_argument("--repeats", type=int, default=3, help="random draws per class")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    import torch

    from convscope.circuits.ablation import ablate

    if args.threads:
        torch.set_num_threads(args.threads)
    net, layer, picked, labels, load, _ = squeezenet_photos(args.images, 0)
    start = time.perf_counter()
    found = ablate(net.model, layer, load, picked, labels, bau_n=args.n, repeats=args.repeats)
    seconds = time.perf_counter() - start
    seen = found.counts > 0
    print(f"SqueezeNet 1.0 features.12, {len(picked)} photos, {int(seen.sum())} classes with images, method {found.method}, {seconds:.0f} s")
    print(f"Bau's test (n={found.bau_n}, {args.repeats} random draws): top units beat random ones in {found.top_beats_random:.1%} of the classes")
    print(f"mean logit drop: top-{found.bau_n} {np.nanmean(found.bau_top):.3f}, random {np.nanmean(found.bau_random):.3f}; "
          f"single units: mean {np.nanmean(found.drops):.4f}, largest {np.nanmax(found.drops):.3f}")
    print(f"accuracy {np.nanmean(found.accuracy):.3f} (mean over classes)")
    names = net.class_names or [str(k) for k in range(found.drops.shape[1])]
    for k in np.flatnonzero(seen)[:: max(1, int(seen.sum()) // 3)][:3]:
        tops = ", ".join(f"{u} ({d:+.3f})" for u, d in found.units_for(int(k), 5))
        print(f"  class {k} {names[k]} ({found.counts[k]} images): top units {tops}; top-{found.bau_n} together {found.bau_top[k]:+.3f}, random {found.bau_random[k]:+.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
