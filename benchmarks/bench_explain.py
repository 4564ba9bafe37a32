"""Time `convscope.explain` on the real SqueezeNet 1.0 of ../shared: one photo, default layers, top 10 with heatmaps.

Prints, measured side by side in one run (the machine's load changes absolute times, ratios less):
the layer selection (dry runs for the receptive fields), explain() with the layers given, explain()
without heatmaps, and one plain forward + backward of the photo as the unit of cost.

    .venv/bin/python benchmarks/bench_explain.py [--photo PATH] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from convscope import explain, load_network, select_layers

SHARED = Path(__file__).resolve().parents[2] / "shared"


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photo", default=str(SHARED / "data/imagenet-sample/n02088364_beagle.jpg"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    net = load_network("torchvision:squeezenet1_0", SHARED / "models/squeezenet1_0-imagenet.pth")
    start = time.perf_counter()
    infos = select_layers(net.model, None, net.preprocess.input_size)
    select = time.perf_counter() - start
    x = torch.randn(1, 3, *net.preprocess.input_size)

    def plain() -> None:
        xx = x.clone().requires_grad_(True)
        net.model(xx)[0, 0].backward()

    plain()
    unit = timed(plain, args.repeats)
    full = timed(lambda: explain(net, args.photo, layers=infos, top=10), args.repeats)
    light = timed(lambda: explain(net, args.photo, layers=infos, top=10, heatmaps=False), args.repeats)
    print(f"threads {torch.get_num_threads()}, {len(infos)} layers: {', '.join(i.name for i in infos)}")
    print(f"select_layers (once):               {select:.2f} s")
    print(f"explain, top 10 with heatmaps:      {full:.2f} s  ({full / unit:.1f}x one forward+backward)")
    print(f"explain, top 10 without heatmaps:   {light:.2f} s  ({light / unit:.1f}x)")
    print(f"one plain forward+backward:         {unit:.3f} s")


if __name__ == "__main__":
    main()
