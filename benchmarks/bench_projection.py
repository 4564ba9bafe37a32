"""Deconvnet projections of all 9 hits of every unit of AlexNet's five conv layers.

Side by side on the same hits, in one run:

- *convscope*: ``project_hits`` with the receptive field (batched, each hit on its crop);
- *plain*: one full-image forward and backward per hit, by Captum's ``Deconvolution``
  on a wrapper whose output is the single activation (what Captum does for one hit).

The plain way is timed on a random subsample stratified by layer (default 40 hits
per layer), and the pictures of both ways are compared there (max abs diff). The
full 10,368 hits are timed with convscope only.

Hits are realistic random, not a scan: per unit, 9 (image, row, col) drawn
uniformly over the images and the layer's positions with a seeded generator
(random weights make a scan's ranking meaningless anyway; the cost of a hit does
not depend on its rank, only on whether its box touches the border).

Run: ``python benchmarks/bench_projection.py [--images 64] [--plain-per-layer 40]``.
Needs /work/shared/data/imagenet-sample (224x224 centre crops of 256-resized images).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn

from convscope.network.geometry import ReceptiveField
from convscope.network.preprocess import Preprocess
from convscope.project import project_hits
from convscope.scan.hooks import capture, run_until_captured

DATA = Path("/work/shared/data/imagenet-sample")
#: AlexNet conv layers: (receptive field, units, positions per side), worked out by hand.
LAYERS = {
    "features.0": (ReceptiveField((11, 11), (4, 4), (-2, -2)), 64, 55),
    "features.3": (ReceptiveField((51, 51), (8, 8), (-18, -18)), 192, 27),
    "features.6": (ReceptiveField((99, 99), (16, 16), (-34, -34)), 384, 13),
    "features.8": (ReceptiveField((131, 131), (16, 16), (-50, -50)), 256, 13),
    "features.10": (ReceptiveField((163, 163), (16, 16), (-66, -66)), 256, 13),
}
HITS_PER_UNIT = 9
CHUNK = 512  # hits per project_hits call (inputs are per hit: 512 x 0.6 MB)


class SingleActivation(nn.Module):
    """The activation ``layer[unit, row, col]`` as the model output ``(N,)``, for Captum."""

    def __init__(self, model: nn.Module, layer: str, unit: int, row: int, col: int) -> None:
        super().__init__()
        self.model, self.layer, self.where = model, layer, (unit, row, col)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen: dict[str, torch.Tensor] = {}
        with capture(self.model, [self.layer], seen.__setitem__, stop_after_last=True):
            run_until_captured(self.model, x)
        unit, row, col = self.where
        return seen[self.layer][:, unit, row, col]


def load_images(count: int) -> torch.Tensor:
    """``(count, 3, 224, 224)`` normalised inputs from the first ``count`` sample images."""
    pre = Preprocess()
    paths = sorted(p for p in DATA.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:count]
    pixels = [torch.from_numpy(np.array(pre.to_model_frame(Image.open(p).convert("RGB")))) for p in paths]
    return pre.normalize(torch.stack(pixels).permute(0, 3, 1, 2))


def random_hits(units: int, side: int, images: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """``(image, unit, row, col)`` of 9 random hits per unit, each ``(units * 9,)``."""
    n = units * HITS_PER_UNIT
    unit = torch.arange(units).repeat_interleave(HITS_PER_UNIT)
    return (torch.randint(0, images, (n,), generator=g), unit,
            torch.randint(0, side, (n,), generator=g), torch.randint(0, side, (n,), generator=g))  # fmt: skip


def ours(model: nn.Module, layer: str, rf: ReceptiveField, x: torch.Tensor, hits: tuple, batch: int) -> torch.Tensor:
    image, unit, row, col = hits
    out = []
    for s in range(0, len(unit), CHUNK):
        part = slice(s, s + CHUNK)
        out.append(project_hits(model, layer, x[image[part]], unit[part], row[part], col[part], "deconvnet",
                                receptive_field=rf, batch_size=batch))  # fmt: skip
    return torch.cat(out)


def plain(model: nn.Module, layer: str, x: torch.Tensor, hits: tuple) -> torch.Tensor:
    from captum.attr import Deconvolution

    image, unit, row, col = hits
    out = [Deconvolution(SingleActivation(model, layer, int(u), int(r), int(c))).attribute(x[int(i)][None].clone())
           for i, u, r, c in zip(image, unit, row, col)]  # fmt: skip
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--plain-per-layer", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip-full", action="store_true", help="time the subsample only")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is missing: this benchmark needs the shared ImageNet sample folder")
    import warnings

    warnings.filterwarnings("ignore", module="captum")
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = torchvision.models.alexnet().eval()
    x = load_images(args.images)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(x)} images, random-weight AlexNet")
    rows = []
    for layer, (rf, units, side) in LAYERS.items():
        hits = random_hits(units, side, len(x), g)
        pick = torch.randperm(len(hits[0]), generator=g)[: args.plain_per_layer]
        sub = tuple(h[pick] for h in hits)
        t = time.perf_counter()
        mine = ours(model, layer, rf, x, sub, args.batch_size)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        theirs = plain(model, layer, x, sub)
        t_plain = time.perf_counter() - t
        diff = float((mine - theirs).abs().max())
        t_all = float("nan")
        if not args.skip_full:
            t = time.perf_counter()
            ours(model, layer, rf, x, hits, args.batch_size)
            t_all = time.perf_counter() - t
        rows.append((layer, len(pick), len(pick) / t_ours, len(pick) / t_plain, diff, float(theirs.abs().max()),
                     len(hits[0]), t_all))  # fmt: skip
        print(f"  {layer} done", flush=True)
    print()
    print(f"{'layer':<12}{'sub':>5}{'ours hit/s':>12}{'plain hit/s':>13}{'ratio':>8}{'max|diff|':>11}"
          f"{'max|plain|':>12}{'all hits':>10}{'ours all s':>12}{'all hit/s':>11}")  # fmt: skip
    for layer, n, h_ours, h_plain, diff, scale, total, t_all in rows:
        print(f"{layer:<12}{n:>5}{h_ours:>12.1f}{h_plain:>13.1f}{h_ours / h_plain:>7.1f}x{diff:>11.2e}"
              f"{scale:>12.2e}{total:>10}{t_all:>12.1f}{total / t_all:>11.1f}")  # fmt: skip
    n_sub = sum(r[1] for r in rows)
    s_ours, s_plain = sum(r[1] / r[2] for r in rows), sum(r[1] / r[3] for r in rows)
    total, t_total = sum(r[6] for r in rows), sum(r[7] for r in rows)
    print(f"{'all':<12}{n_sub:>5}{n_sub / s_ours:>12.1f}{n_sub / s_plain:>13.1f}{s_plain / s_ours:>7.1f}x"
          f"{max(r[4] for r in rows):>11.2e}{'':>12}{total:>10}{t_total:>12.1f}{total / t_total:>11.1f}")  # fmt: skip
    print("subsample ratio over layers weighted by the full hit counts (plain time / ours time): "
          f"{sum(r[6] / r[3] for r in rows) / sum(r[6] / r[2] for r in rows):.1f}x")


if __name__ == "__main__":
    main()
