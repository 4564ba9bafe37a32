"""What the unit statistics cost the scan: today's scan against the scan before statistics.

The scan of an earlier revision (``--base``, default the last commit before the scan kept
statistics) is exported with ``git archive`` into a temporary folder; both scans then run
in fresh child processes, alternating, on the same preloaded batches: torchvision's AlexNet
(random weights, seeded), its five conv layers, ``--images`` random 224x224 images with
labels (1,000 classes) for today's scan (class means, selectivity input), none for the base.
The ratio of the medians is printed with the spread of the per-pair ratios.

Usage: python benchmarks/bench_stats.py [--images 1024] [--repeats 3] [--base REV]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The last commit whose scan kept only the top hits, the mean and the signature.
BASE = "88bfba2"

CHILD = r"""
import json, sys, time
sys.path.insert(0, SRC)
import torch, torchvision
import convscope
assert convscope.__file__.startswith(SRC), convscope.__file__
from convscope.scan.scan import scan
torch.set_num_threads(2)
torch.manual_seed(0)
model = torchvision.models.alexnet().eval()
layers = [(f"features.{i}", model.features[i].out_channels) for i in (0, 3, 6, 8, 10)]
g = torch.Generator().manual_seed(0)
batches = []
for start in range(0, IMAGES, 32):
    n = min(32, IMAGES - start)
    pixels = torch.randint(0, 256, (n, 3, 224, 224), dtype=torch.uint8, generator=g)
    batches.append((pixels, torch.arange(start, start + n), torch.ones(n, dtype=torch.bool), [""] * n))
normalize = lambda p: p.float() / 127.5 - 1
extra = {"labels": [i % 1000 for i in range(IMAGES)], "classes": 1000} if LABELS else {}
scan(model, layers, batches[:2], normalize, k=9, progress=False, **extra)  # warm up
began = time.perf_counter()
scan(model, layers, batches, normalize, k=9, progress=False, **extra)
print(json.dumps(time.perf_counter() - began))
"""


def export(rev: str, folder: Path) -> Path:
    """``src/`` of ``rev`` under ``folder``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder / "src"


def timed(src: Path, images: int, labels: bool) -> float:
    code = CHILD.replace("SRC", repr(str(src))).replace("IMAGES", str(images)).replace("LABELS", str(labels))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--base", default=BASE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        base = export(args.base, Path(folder))
        today = ROOT / "src"
        old, new = [], []
        for repeat in range(args.repeats):
            old.append(timed(base, args.images, labels=False))
            new.append(timed(today, args.images, labels=True))
            print(f"repeat {repeat}: base {old[-1]:.2f} s, today with statistics and labels {new[-1]:.2f} s ({new[-1] / old[-1]:.3f}x)")
    ratios = [n / o for n, o in zip(new, old)]
    print(
        f"\nscan with statistics / scan of {args.base}: {statistics.median(new) / statistics.median(old):.3f}x "
        f"(median of {args.repeats}; per pair {min(ratios):.3f}-{max(ratios):.3f}); target <= 1.10x"
    )


if __name__ == "__main__":
    main()
