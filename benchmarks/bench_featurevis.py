"""Feature visualisation: quality on the trained ResNet-20 of ../shared, and speed against Lucent.

1. Quality: the scan over the 10,000 CIFAR-10 test images gives every unit's top dataset
   activation (its spatial max, as the atlas ranks hits); ``convscope.featurevis.visualise``
   then optimises one image per unit of ``layer2.2`` and ``layer3.2`` (all units in one batch,
   default settings) and the ratio reached / top is reported for the live units (top > 0):
   the share at 1.0 or more (target 99%) and the median.
2. Speed, side by side on the same units: Lucent's ``render_vis`` (one unit at a time, as its
   API works) against convscope's batch, with the same steps, image size (32 px), optimiser
   (Adam, lr 0.05), parameterisation (Lucent's ``param.image(fft=True, decorrelate=True)``)
   and transforms (convscope's :class:`Robustness` handed to Lucent as its transform list).
   Lucent (``torch-lucent``, unmaintained, needs kornia <= 0.4.1) is not a dependency of
   convscope; install it into a folder for this script only:
   ``pip install --no-deps --target /tmp/lucent-pkgs torch-lucent==0.1.8 kornia==0.4.1 decorator``
   (its optional IPython display is stubbed). The per-unit time of convscope's whole-layer
   batch of ``layer3.2`` is reported against the 0.5 s target.

Usage: python benchmarks/bench_featurevis.py [--steps 128] [--lucent-units 8] [--lucent /tmp/lucent-pkgs]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from convscope.data import ImageDataset, find_images, make_loader
from convscope.featurevis import Robustness, visualise
from convscope.network.load import load_network
from convscope.scan.scan import scan

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LAYERS = ("layer2.2", "layer3.2")


def resnet20():
    network = load_network(f"{ROOT / 'examples' / 'resnet20_cifar.py'}:resnet20", SHARED / "models" / "resnet20-cifar10.th")
    return replace(network, preprocess=replace(network.preprocess, input_size=(32, 32), resize=None))


def top_activations(network) -> dict[str, np.ndarray]:
    images = find_images(SHARED / "data" / "cifar10-test")
    units = {name: network.model.get_submodule(name).conv2.out_channels for name in LAYERS}
    loader = make_loader(ImageDataset(images, network.preprocess), batch_size=256, workers=1)
    result = scan(network.model, list(units.items()), loader, network.preprocess.normalize, k=1, total=len(images), progress=False)
    return {name: result.layers[name].topk.values[:, 0].numpy() for name in LAYERS}


def lucent_loop(network, layer: str, units: list[int], steps: int, path: str) -> float:
    """Seconds for Lucent's render_vis over ``units``, one call per unit."""
    sys.path.insert(0, path)
    display = types.ModuleType("IPython.display")
    display.display = display.HTML = display.Image = lambda *a, **k: None
    sys.modules.setdefault("IPython", types.ModuleType("IPython")).display = display
    sys.modules.setdefault("IPython.display", display)
    from lucent.optvis import objectives, param, render

    robust = Robustness()
    generator = torch.Generator().manual_seed(0)
    name = layer.replace(".", "_")
    began = time.perf_counter()
    for unit in units:
        render.render_vis(
            network.model, objectives.channel(name, unit), lambda: param.image(32, fft=True, decorrelate=True),
            transforms=[lambda x: robust.apply(x, generator)], thresholds=(steps,), show_image=False, progress=False,
            fixed_image_size=32, preprocess=True,
        )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--lucent-units", type=int, default=64)
    parser.add_argument("--lucent", default="/tmp/lucent-pkgs")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    network = resnet20()
    tops = top_activations(network)
    for layer in LAYERS:
        began = time.perf_counter()
        vis = visualise(network, layer, steps=args.steps)
        seconds = time.perf_counter() - began
        live = tops[layer] > 0
        ratio = vis.reached[live] / tops[layer][live]
        print(
            f"{layer}: {live.sum()} live units of {len(live)}; reached/top >= 1.0 for {np.mean(ratio >= 1):.1%} "
            f"(target 99%), median {np.median(ratio):.2f}, min {ratio.min():.2f}; {seconds:.1f} s, {seconds / len(live):.3f} s per unit"
            + (" (target 0.5 s)" if layer == "layer3.2" else "")
        )
    if not Path(args.lucent).is_dir():
        print(f"Lucent not found at {args.lucent}: skipped the speed comparison (see the docstring to install it)")
        return
    units = list(range(args.lucent_units))
    ours, theirs = [], []
    for _ in range(args.repeats):
        began = time.perf_counter()
        visualise(network, "layer3.2", units, steps=args.steps)
        ours.append(time.perf_counter() - began)
        theirs.append(lucent_loop(network, "layer3.2", units, args.steps, args.lucent))
    each = [t / o for t, o in zip(theirs, ours)]
    print(
        f"layer3.2, units 0-{units[-1]}, {args.steps} steps: Lucent {statistics.median(theirs):.1f} s, convscope "
        f"{statistics.median(ours):.1f} s: {statistics.median(theirs) / statistics.median(ours):.1f}x "
        f"(per repeat {min(each):.1f}-{max(each):.1f}x; target 10x)"
    )


if __name__ == "__main__":
    main()
