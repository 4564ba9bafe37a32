"""Bau's test held out: the trained CIFAR-10 ResNet-20 of ../shared, its units chosen on one half
of the CIFAR-10 test images and tested on the other.

``ablate`` picks each class's top-n units and tests them on the same images (on ImageNet's
sample, one photo per class, nothing else is possible). Here CIFAR-10 has 1,000 test images per
class: the units of ``--layer`` are ablated one at a time over a seeded sample A (``--images``,
classes by label), each class's top-n units by drop are taken from A, and on a disjoint sample B
of as many images they are zeroed together, against n random units (``--repeats`` seeded draws),
each a masked forward of B's images of that class. Prints, per class, the drops on A and on B
and the share of classes where the top units beat the random ones on B. Not a timing: one run.

    .venv/bin/python benchmarks/bau_resnet20.py [--layer layer3.2] [--images 1000] [--n 5] [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from convscope import find_images, load_network, load_pixels, select_layers
from convscope.circuits import ablate, sample_images
from convscope.circuits.substitute import substituted

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def zeroed_logits(model: torch.nn.Module, layer: str, x: torch.Tensor, units: list[int]) -> torch.Tensor:
    """``model(x)`` ``(n, classes)`` with ``units`` of ``layer`` zeroed together."""

    def zero(out: torch.Tensor) -> torch.Tensor:
        out = out.clone()
        out[:, units] = 0
        return out

    with torch.no_grad(), substituted(model, layer, zero):
        return model(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layer", default="layer3.2")
    parser.add_argument("--images", type=int, default=1000, help="images in each of the two samples")
    parser.add_argument("--n", type=int, default=5, help="units per set")
    parser.add_argument("--repeats", type=int, default=5, help="random sets per class")
    args = parser.parse_args()
    weights, folder = SHARED / "models" / "resnet20-cifar10.th", SHARED / "data" / "cifar10-test"
    if not weights.is_file() or not folder.is_dir():
        raise SystemExit(f"needs {weights} and {folder}")
    net = load_network(str(ROOT / "examples" / "resnet20_cifar.py") + ":resnet20", weights)
    net = dataclasses.replace(net, preprocess=dataclasses.replace(net.preprocess, input_size=(32, 32), resize=32))
    model = net.model.eval()
    (layer,) = select_layers(model, [args.layer], (32, 32))
    images = find_images(folder)
    both = sample_images(len(images.paths), 2 * args.images, seed=0)
    order = np.random.default_rng(0).permutation(len(both))
    a, b = np.sort(both[order[: args.images]]), np.sort(both[order[args.images :]])
    labels = np.asarray(images.labels)
    frames = {}

    def load(indices) -> torch.Tensor:
        missing = [int(i) for i in indices if int(i) not in frames]
        for i, pixels in zip(missing, load_pixels(images, missing, net.preprocess) if missing else []):
            frames[i] = pixels
        return net.preprocess.normalize(torch.stack([frames[int(i)] for i in indices]))

    found = ablate(model, layer, load, a, labels[a], bau_n=args.n, repeats=args.repeats, progress=None)
    generator = torch.Generator().manual_seed(1)
    beats, rows = [], []
    x_b = load(b)
    for k, name in enumerate(images.class_names):
        mine = torch.as_tensor(np.flatnonzero(labels[b] == k))
        if not len(mine):
            continue
        x = x_b[mine]
        with torch.no_grad():
            base = model(x)[:, k]
        top = [u for u, _ in found.units_for(k, args.n)]
        drop_top = float((base - zeroed_logits(model, layer.name, x, top)[:, k]).mean())
        drop_random = float(np.mean([
            (base - zeroed_logits(model, layer.name, x, torch.randperm(layer.units, generator=generator)[: args.n].tolist())[:, k]).mean()
            for _ in range(args.repeats)
        ]))
        beats.append(drop_top > drop_random)
        rows.append(f"  {name:>10} ({len(mine)} images in B): top {top}: drop {found.bau_top[k]:.2f} on A, {drop_top:.2f} on B; "
                    f"{args.n} random: {drop_random:.2f} on B")
    print(f"ResNet-20 {layer.name} ({layer.units} units), {args.images} CIFAR-10 test images to choose each class's top {args.n} "
          f"units (A), {args.images} others to test them (B), {args.repeats} random sets per class; ablation {found.method}")
    print("\n".join(rows))
    print(f"held out: the top {args.n} units beat {args.n} random units for {np.mean(beats):.0%} of {len(beats)} classes "
          f"(in sample on A: {found.top_beats_random:.0%})")


if __name__ == "__main__":
    main()
