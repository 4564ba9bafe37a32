"""Pass 1 as a job: this rank's shard, resumed from its saved state, scanned, saved, merged on rank 0.

:func:`run_sharded` is that job for any streaming pass with a
:class:`~convscope.scan.progress.Resumable` state (explain's class relevance is another);
:func:`run_scan` is pass 1 on top of it.

One process scans every image; under ``torchrun`` each rank scans its shard
(:func:`convscope.scan.distributed.shard`) and keeps its own state file beside the atlas
(``.<atlas>.scan.pt`` on one process, ``.<atlas>.scan.rank<r>of<w>.pt`` on ``w``), whose
fingerprint holds the world size and the shard, so the same command resumes every rank
where it was saved. Rank 0 gets the merged result; the other ranks get ``None``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
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
from convscope.scan.progress import S
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
            autocast, ``"bfloat16"`` / ``"float16"`` (faster on GPUs; some hits change, see docs/guides/precision.md).
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


def state_path(out: Path, shard: distributed.Shard, kind: str = "scan") -> Path:
    """This rank's state file beside ``out`` (``kind``: the job, see :func:`resume.state_file`)."""
    path = resume.state_file(out, kind)
    return path if shard.world == 1 else path.with_name(path.name.replace(f".{kind}.pt", f".{kind}.rank{shard.rank}of{shard.world}.pt"))


def remove_states(out: Path, kind: str = "scan") -> None:
    """Remove every state file of the job writing ``out``: one process's and every rank's of any world size."""
    one = resume.state_file(out, kind)
    for path in [one, *one.parent.glob(one.name.replace(f".{kind}.pt", f".{kind}.rank*of*.pt"))]:
        path.unlink(missing_ok=True)


#: ``work(state, shard, todo, checkpoint, every)``: stream this rank's images (``todo`` the image
#: indices left, ``None`` for all of them) into ``state``, calling ``checkpoint(state)`` every
#: ``every`` images (see :class:`~convscope.scan.progress.BatchProgress`).
Work = Callable[[S, distributed.Shard, "range | None", Callable[[S], None], int], None]


def run_sharded(
    images: int,
    batch_size: int,
    out: Path | None,
    make_state: Callable[[distributed.Shard], S],
    fingerprint: Callable[[distributed.Shard], str],
    work: Work,
    *,
    resume_saved: bool = True,
    checkpoint_every: int | None = None,
    group: dist.ProcessGroup | None = None,
    kind: str = "scan",
    what: str = "scan",
) -> S | None:
    """A streaming pass as a job: this rank's shard of ``images``, resumed from its saved state,
    streamed by ``work``, saved, and merged on rank 0.

    Args:
        images: how many images the data set has (all ranks).
        batch_size: images per batch; shards are whole batches (:func:`distributed.shard`).
        out: what the job writes in the end; its state files lie beside it
            (:func:`state_path` with ``kind``). ``None``: no state is saved or resumed.
        make_state: an empty state for a shard, with ``seen`` at the shard's start.
        fingerprint: a digest of everything that decides the shard's result (the saved state
            resumes only under the same one).
        work: streams the images (see :data:`Work`).
        resume_saved: go on from a saved state of the same job; False starts afresh.
        checkpoint_every: images between two saves (``None``: :data:`CHECKPOINT_EVERY`).
        group: the merge group of :func:`distributed.process_group` (``None``: one process).
        what: the pass's name in messages (``"resuming an interrupted scan at image ..."``).

    Returns:
        The whole pass's state on rank 0 (and on one process), ``None`` on the other ranks.
        A pass longer than ``checkpoint_every`` keeps its state file until the caller has
        written ``out`` and calls :func:`remove_states`.

    Raises:
        ConvscopeError: any rank failed (every rank raises, see :func:`distributed.agree`).
    """
    rank, world = (dist.get_rank(group), dist.get_world_size(group)) if group is not None else (0, 1)
    part = distributed.shard(images, batch_size, rank, world)
    state = make_state(part)
    saved = state_path(out, part, kind) if out is not None else None
    digest = fingerprint(part) if saved is not None else ""
    every = checkpoint_every or CHECKPOINT_EVERY
    error = None
    try:
        if saved is not None and resume.start(saved, digest, state, resume=resume_saved):
            where = f"image {state.seen} of {images}" if world == 1 else f"image {state.seen} of rank {rank}'s {part.start}..{part.stop - 1}"
            warnings.warn(f"resuming an interrupted {what} at {where}", ConvscopeWarning, stacklevel=3)
        todo = range(state.seen, part.stop) if (state.seen, part.stop) != (0, images) else None
        work(state, part, todo, (lambda s: resume.save(saved, digest, s)) if saved is not None else (lambda s: None), every)
        if saved is not None and state.seen - part.start >= every:  # a long pass: keep it until the output is written
            resume.save(saved, digest, state)
    except Exception as exc:  # told to the other ranks before it is raised here
        error = exc
    distributed.agree(group, error, f"the {what}")
    return distributed.merge_on_rank0(state, group, lambda: make_state(part))


def run_scan(
    network: Network, images: ImageList, layers: Sequence[LayerInfo], out: Path, job: ScanJob, group: dist.ProcessGroup | None = None
) -> ScanResult | None:
    """Scan this rank's shard of ``images`` and merge the shards on rank 0 (:func:`run_sharded`).

    Returns:
        The whole scan on rank 0 (and on one process), ``None`` on the other ranks.

    Raises:
        ConvscopeError: any rank failed (every rank raises, see :func:`distributed.agree`).
    """
    pairs = [(info.name, info.units) for info in layers]
    classes = len(images.class_names or ())
    device = model_device(network.model)
    sample = signature_sample(len(images.paths))

    def make_state(part: distributed.Shard) -> ScanState:
        state = ScanState(pairs, job.k, sample, device, images.labels, classes, job.quantile_budget)
        state.seen, state.block_size, state.block = part.start, job.batch_size, part.start // job.batch_size
        return state

    def work(state: ScanState, part: distributed.Shard, todo: range | None, checkpoint: Callable[[ScanState], None], every: int) -> None:
        scan(
            network.model,
            pairs,
            frame_batches(images, network.preprocess, job.batch_size, job.workers, device, todo),
            network.preprocess.normalize,
            k=job.k,
            total=part.stop,
            progress=job.progress and part.rank == 0,
            state=state,
            checkpoint=checkpoint,
            checkpoint_every=every,
            layouts={info.name: info.dims for info in layers if info.dims is not None and info.dims != NCHW},
            precision=PRECISIONS[job.precision],
            channels_last=job.channels_last,
        )

    merged = run_sharded(
        len(images), job.batch_size, out, make_state,
        lambda part: resume.fingerprint(network, layers, images, job.k, job.batch_size, part.to_dict(), job.settings),
        work, resume_saved=job.resume, checkpoint_every=job.checkpoint_every, group=group,
    )
    return merged.result() if merged is not None else None
