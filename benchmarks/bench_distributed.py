"""Pass 1 on 1, 2, ... processes under torchrun: images/s per process count and the per-process efficiency.

Each process count runs this script under ``torchrun --standalone --nproc_per_node P`` in
worker mode: every rank loads the model (a torchvision model with random weights: nothing is
downloaded here), lists the photos, waits at a barrier, runs convscope's pass 1 on its shard
(:func:`convscope.scan.job.run_scan`: decode, forward, running top-k and every statistic,
the exact merge on rank 0), waits at a barrier again; rank 0 reports the time between the
barriers. Beside it, in one process, the plain loop a user writes (``PIL`` + torchvision's
``Resize``/``CenterCrop``/``ToTensor``/``Normalize`` in a DataLoader with the same batch size
and workers, the whole model under ``inference_mode``). Runs alternate between the process
counts, ``--repeats`` times; the median and the spread (min-max) are printed.

With ``--projection deconvnet`` (or ``guided``) each rank runs the whole ``make_atlas``
instead: pass 1, then pass 2 dealt over the ranks (every unit's top-9 projected, in chunks of
64 units, computed where dealt and sent to rank 0, which renders and writes the atlas); the
rates are then images/s of the whole atlas, and the plain loop is not run.

Efficiency of P processes = (images/s with P) / (P x images/s with 1); the target is >= 0.9.
With ``--device cuda`` each rank uses ``cuda:LOCAL_RANK`` and NCCL; the line "projected for
1.28M images" is 1,281,167 / (images/s).

On a CPU machine each process gets ``--threads`` threads (default 1), so P processes need
P x threads cores: on this 2-core machine 1 and 2 processes are what can be measured.

With ``--decoder nvjpeg`` (and ``--device cuda``) the ranks decode their JPEGs on their GPU.

Usage: python benchmarks/bench_distributed.py [--model alexnet|resnet50] [--device cpu|cuda]
       [--decoder pillow|torchcodec|nvjpeg] [--processes 1 2] [--repeat-images R] [--images N] [--batch-size B] [--workers W] [--repeats K]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"
IMAGENET_TRAIN = 1_281_167


def photo_folder(images: int, repeat: int, into: Path) -> Path:
    """A folder of links to the first ``images`` photos of ../shared, ``repeat`` times over."""
    photos = sorted(SHARED.glob("*.jpg"))[:images]
    if not photos:
        sys.exit(f"no photos in {SHARED}")
    for r in range(repeat):
        for photo in photos:
            (into / f"{r:03d}_{photo.name}").symlink_to(photo)
    return into


def worker(args: argparse.Namespace) -> None:
    """One rank of a timed pass 1 (run under torchrun)."""
    import torch.distributed as dist

    from convscope.data import find_images
    from convscope.network.layers import select_layers
    from convscope.network.load import Network
    from convscope.network.preprocess import Preprocess
    from convscope.pipeline import make_atlas
    from convscope.scan import distributed
    from convscope.scan.job import ScanJob, run_scan

    torch.set_num_threads(args.threads)
    device = distributed.rank_device(args.device)
    model = getattr(torchvision.models, args.model)(weights=None).eval().to(device)
    network = Network(model=model, source=f"torchvision:{args.model}", preprocess=Preprocess((224, 224), 256, decoder=args.decoder))
    images = find_images(args.folder)
    layers = select_layers(model, None, (224, 224))
    job = ScanJob(batch_size=args.batch_size, workers=args.workers, resume=False, progress=False)
    with tempfile.TemporaryDirectory() as tmp, distributed.process_group(device) as group:
        world = dist.get_world_size() if group is not None else 1
        rank = dist.get_rank(group) if group is not None else 0
        out = Path(tmp) / "atlas"  # each rank's own folder: rank 0's gets the atlas
        if group is not None:
            dist.barrier(group)
        start = time.perf_counter()
        if args.projection:
            make_atlas(network, args.folder, out, projection=args.projection, batch_size=args.batch_size, workers=args.workers, progress=False, resume=False)
        else:
            run_scan(network, images, layers, out, job, group)
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        if group is not None:
            dist.barrier(group)
        seconds = time.perf_counter() - start
        if rank == 0:
            print(json.dumps({"processes": world, "images": len(images), "seconds": seconds}))


def plain_loop(args: argparse.Namespace) -> float:
    """Images/s of a plain decode-and-forward loop over the same folder, one process."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_atlas import Photos

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = getattr(torchvision.models, args.model)(weights=None).eval().to(device)
    paths = sorted(Path(args.folder).glob("*.jpg"))
    loader = torch.utils.data.DataLoader(Photos(paths), batch_size=args.batch_size, num_workers=args.workers, pin_memory=device.type == "cuda")
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in loader:
            model(batch.to(device, non_blocking=True))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return len(paths) / (time.perf_counter() - start)


def timed_run(args: argparse.Namespace, processes: int) -> float:
    """Images/s of pass 1 on ``processes`` processes."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", __file__, "--worker",
        "--folder", str(args.folder), "--model", args.model, "--device", args.device, "--batch-size", str(args.batch_size),
        "--workers", str(args.workers), "--threads", str(args.threads), "--decoder", args.decoder, *(["--projection", args.projection] if args.projection else []),
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    if run.returncode != 0:
        sys.exit(run.stderr[-3000:])
    report = json.loads([line for line in run.stdout.splitlines() if line.startswith("{")][-1])
    return report["images"] / report["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="alexnet")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images", type=int, default=200, help="photos of ../shared taken (default 200)")
    parser.add_argument("--repeat-images", type=int, default=1, help="times the photos are repeated (default 1)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="threads per process on a CPU (default 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--decoder", choices=["pillow", "torchcodec", "nvjpeg"], default="pillow", help="convscope's decoder (the plain loop always uses Pillow)")
    parser.add_argument("--projection", choices=["deconvnet", "guided"], help="time the whole atlas with these projections (pass 2 dealt over the ranks)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.folder = str(photo_folder(args.images, args.repeat_images, Path(tmp)))
        rates: dict[str, list[float]] = ({} if args.projection else {"plain": []}) | {str(p): [] for p in args.processes}
        for _ in range(args.repeats):  # alternate: drift hits every count alike
            if not args.projection:
                rates["plain"].append(plain_loop(args))
            for processes in args.processes:
                rates[str(processes)].append(timed_run(args, processes))
    count = args.images * args.repeat_images
    what = f"the whole atlas with {args.projection} projections of every unit's top 9" if args.projection else "pass 1"
    print(f"{what}: {args.model} on {args.device}, {args.decoder} decoder, {count} images, batch {args.batch_size}, {args.workers} workers, {args.threads} thread(s) per process, {args.repeats} runs")
    plain = statistics.median(rates["plain"]) if "plain" in rates else None
    if plain is not None:
        print(f"plain decode-and-forward loop, 1 process: {plain:.1f} images/s (spread {min(rates['plain']):.1f}-{max(rates['plain']):.1f})")
    single = statistics.median(rates[str(args.processes[0])]) / args.processes[0]
    for processes in args.processes:
        values = rates[str(processes)]
        rate = statistics.median(values)
        efficiency = [v / (processes * single) for v in values]
        print(
            f"{processes} process(es): {rate:.1f} images/s (spread {min(values):.1f}-{max(values):.1f}); "
            f"per-process efficiency {statistics.median(efficiency):.2f} ({min(efficiency):.2f}-{max(efficiency):.2f}); "
            + (
                f"the atlas in {count / rate:.1f} s"  # pass 2's cost grows with the units, not the images
                if args.projection
                else f"pass 1 / plain loop per process {plain / (rate / processes):.2f}x; projected for 1.28M images {IMAGENET_TRAIN / rate / 60:.0f} min"
            )
        )


if __name__ == "__main__":
    main()
