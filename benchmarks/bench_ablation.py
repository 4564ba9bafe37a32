"""Time batched unit ablation (`convscope.circuits.ablation.ablate`) against the plain loop on the
real SqueezeNet 1.0 of ../shared: all 512 units of features.12 over N photos of imagenet-sample.

The plain loop is one full forward pass per unit and image batch, the unit zeroed by a hook.
Over 512 units x 500 photos that is 256,000 image forwards, too slow to run whole: it runs on the
first ``--plain-units`` units and its time is scaled linearly to 512 units (said in the output).
``ablate`` runs whole, Bau's test included (its second pass of N x (1 + repeats) rows is part of
the time). The photos are decoded once beforehand; both sides read the same tensor.

Prints per round the two times and their ratio, then the median and [min, max] of the ratio
over the rounds (alternating: batched, plain, batched, plain, ...). Target: >= 10x.

    .venv/bin/python benchmarks/bench_ablation.py [--images 500] [--plain-units 16] [--repeats 3] [--batch-size 32] [--threads 0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bau_squeezenet import squeezenet_photos


def plain_loop(model, layer: str, load, images, units: int, batch_size: int) -> None:
    """One full forward per unit and image batch with the unit zeroed (the results are discarded)."""
    import torch

    from convscope.circuits.substitute import substituted

    def zero(u: int):
        def replace(out: torch.Tensor) -> torch.Tensor:
            out = out.clone()
            out[:, u] = 0
            return out

        return replace

    with torch.no_grad():
        for u in range(units):
            with substituted(model, layer, zero(u)):
                for start in range(0, len(images), batch_size):
                    model(load(images[start:start + batch_size]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--plain-units", type=int, default=16, help="units the plain loop runs on (scaled to 512)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of batched + plain")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    import torch

    from convscope.circuits.ablation import ablate

    if args.threads:
        torch.set_num_threads(args.threads)
    net, layer, picked, labels, load, _ = squeezenet_photos(args.images, 0)
    net.model.eval()
    units = layer.units
    print(f"SqueezeNet 1.0 features.12 ({units} units), {len(picked)} photos, batch {args.batch_size}, threads {torch.get_num_threads()}")
    print(f"plain loop: one full forward per unit and image batch, timed on {args.plain_units} units and scaled x{units / args.plain_units:g} to {units}")
    ratios, fast, slow = [], [], []
    for r in range(args.repeats):
        start = time.perf_counter()
        found = ablate(net.model, layer, load, picked, labels, batch_size=args.batch_size)
        fast.append(time.perf_counter() - start)
        start = time.perf_counter()
        plain_loop(net.model, layer.name, load, picked.tolist(), args.plain_units, args.batch_size)
        slow.append((time.perf_counter() - start) * units / args.plain_units)
        ratios.append(slow[-1] / fast[-1])
        print(f"  round {r + 1}: batched ({found.method}) {fast[-1]:.2f} s, plain (scaled) {slow[-1]:.2f} s, ratio {ratios[-1]:.1f}x")
    print(f"batched {statistics.median(fast):.2f} s [{min(fast):.2f}, {max(fast):.2f}]; "
          f"plain (scaled from {args.plain_units} units) {statistics.median(slow):.2f} s [{min(slow):.2f}, {max(slow):.2f}]")
    print(f"ratio plain / batched: median {statistics.median(ratios):.1f}x [{min(ratios):.1f}, {max(ratios):.1f}] (target >= 10x)")


if __name__ == "__main__":
    main()
