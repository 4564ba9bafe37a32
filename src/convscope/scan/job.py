"""Pass 1 as a job: this rank's shard, resumed from its saved state, scanned, saved, merged on rank 0.

One process scans every image; under ``torchrun`` each rank scans its shard
(:func:`convscope.scan.distributed.shard`) and keeps its own state file beside the atlas
(``.<atlas>.scan.pt`` on one process, ``.<atlas>.scan.rank<r>of<w>.pt`` on ``w``), whose
fingerprint holds the world size and the shard, so the same command resumes every rank
where it was saved. Rank 0 gets the merged result; the other ranks get ``None``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from convscope.data import ImageList, frame_batches
from convscope.errors import ConvscopeError, ConvscopeWarning
from convscope.network.device import model_device
from convscope.network.layers import NCHW, LayerInfo
from convscope.network.load import Network
from convscope.scan import distributed, resume
from convscope.scan.scan import ScanResult, ScanState, scan, signature_sample
from convscope.stats.quantiles import DEFAULT_BUDGET, check_budget

#: Images between two saves of the scan state (a rerun resumes from the last one).
CHECKPOINT_EVERY = 2000


@dataclass(frozen=True)
class ScanJob:
    """How pass 1 runs.

    Attributes:
        k: hits kept per unit.
        batch_size, workers: data loading (the batch size also numbers the statistics' blocks).
        resume: go on from a saved state of the same job; False starts afresh.
        checkpoint_every: images between two saves of the state (``None``: :data:`CHECKPOINT_EVERY`).
        progress: show a progress bar (on rank 0 only).
        precision: the forward passes' type: ``"float32"`` (the model's own) or, under
            autocast, ``"bfloat16"`` / ``"float16"`` (faster on GPUs; some hits change, see the README).
        channels_last: run the model in channels-last memory (faster convolutions on GPUs).
        quantile_budget: values each unit's quantiles keep: exact up to that many images,
            then a sketch (rank error under 0.1% at the default); memory about
            ``4 * quantile_budget`` bytes per unit.
    """

    k: int = 9
    batch_size: int = 32
    workers: int = 0
    resume: bool = True
    checkpoint_every: int | None = None
    progress: bool = True
    precision: str = "float32"
    channels_last: bool = False
    quantile_budget: int = DEFAULT_BUDGET

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConvscopeError(f"unknown precision {self.precision!r}", hint=f"use one of {', '.join(PRECISIONS)}")
        check_budget(self.quantile_budget, "--quantile-budget ")

    @property
    def settings(self) -> dict[str, str | bool | int]:
        """How pass 1 computes, beyond k and the batch size: the forward passes' type and memory
        layout, and the quantile budget (in the fingerprint of the saved state and in the manifest)."""
        return {"precision": self.precision, "channels_last": self.channels_last, "quantile_budget": self.quantile_budget}


#: The forward passes' types: ``None`` runs the model in its own type, without autocast.
PRECISIONS: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def state_path(out: Path, shard: distributed.Shard) -> Path:
    """This rank's scan-state file beside the atlas ``out``."""
    path = resume.state_file(out)
    return path if shard.world == 1 else path.with_name(path.name.replace(".scan.pt", f".scan.rank{shard.rank}of{shard.world}.pt"))


def remove_states(out: Path) -> None:
    """Remove every scan-state file of the atlas ``out``: one process's and every rank's of any world size."""
    one = resume.state_file(out)
    for path in [one, *one.parent.glob(one.name.replace(".scan.pt", ".scan.rank*of*.pt"))]:
        path.unlink(missing_ok=True)


def run_scan(
    network: Network, images: ImageList, layers: Sequence[LayerInfo], out: Path, job: ScanJob, group: dist.ProcessGroup | None = None
) -> ScanResult | None:
    """Scan this rank's shard of ``images`` and merge the shards on rank 0.

    Returns:
        The whole scan on rank 0 (and on one process), ``None`` on the other ranks.

    Raises:
        ConvscopeError: any rank failed (every rank raises, see :func:`distributed.agree`).
    """
    rank, world = (dist.get_rank(group), dist.get_world_size(group)) if group is not None else (0, 1)
    part = distributed.shard(len(images), job.batch_size, rank, world)
    pairs = [(info.name, info.units) for info in layers]
    classes = len(images.class_names or ())
    device = model_device(network.model)
    state = ScanState(pairs, job.k, signature_sample(len(images.paths)), device, images.labels, classes, job.quantile_budget)
    state.seen, state.block_size, state.block = part.start, job.batch_size, part.start // job.batch_size
    saved = state_path(out, part)
    digest = resume.fingerprint(network, layers, images, job.k, job.batch_size, part.to_dict(), job.settings)
    every = job.checkpoint_every or CHECKPOINT_EVERY
    error = None
    try:
        if resume.start(saved, digest, state, resume=job.resume):
            where = f"image {state.seen} of {len(images)}" if world == 1 else f"image {state.seen} of rank {rank}'s {part.start}..{part.stop - 1}"
            warnings.warn(f"resuming an interrupted scan at {where}", ConvscopeWarning, stacklevel=3)
        todo = range(state.seen, part.stop) if (state.seen, part.stop) != (0, len(images)) else None
        scan(
            network.model,
            pairs,
            frame_batches(images, network.preprocess, job.batch_size, job.workers, device, todo),
            network.preprocess.normalize,
            k=job.k,
            total=part.stop,
            progress=job.progress and rank == 0,
            state=state,
            checkpoint=lambda s: resume.save(saved, digest, s),
            checkpoint_every=every,
            layouts={info.name: info.dims for info in layers if info.dims is not None and info.dims != NCHW},
            precision=PRECISIONS[job.precision],
            channels_last=job.channels_last,
        )
        if state.seen - part.start >= every:  # a long scan: keep it until the atlas is written
            resume.save(saved, digest, state)
    except Exception as exc:  # told to the other ranks before it is raised here
        error = exc
    distributed.agree(group, error, "the scan")
    merged = distributed.merge_on_rank0(state, group)
    return merged.result() if merged is not None else None
