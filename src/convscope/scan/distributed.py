"""Pass 1 on many processes (``torchrun``): shards of whole batches, an exact merge, one shared verdict.

Every process (*rank*) scans a contiguous shard of whole batches of the image order
(:func:`shard`): no image is padded in or read twice, and every batch holds the images it
holds on one process, so each activation is computed exactly as one process computes it.
The ranks' scan states are then merged on rank 0 in rank order (:func:`merge_on_rank0`):
the top and bottom hits keep the ``k`` strongest with ties to the lower image, as one pass
does; the floating statistics are summed along one fixed tree over batch numbers
(:mod:`convscope.stats.tree`); counts add up. The result equals one process's bit for bit,
except the quantile sketch once a unit has seen more than its budget of images (a merged
sketch keeps the same error bound, not the same items).

The states travel as pickled objects over a gloo group made for the purpose (on the CPU,
whatever backend the default group uses: NCCL's object collectives need a CUDA device per
rank): their size varies with the statistics' trees and sketches, so they are not fixed-size
tensors. Rank 0 receives one other state at a time, so it holds at most two.

A rank that fails must not leave the others waiting in a collective: every rank calls
:func:`agree` at the points where they meet, with its own error or ``None``, and all of
them raise if any failed, naming the rank and its error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from convscope.errors import ConvscopeError
from convscope.scan.progress import Resumable
from convscope.scan.scan import ScanState

T = TypeVar("T")
S = TypeVar("S", bound=Resumable)

#: How long a rank waits for the others at a meeting point before giving up.
TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Shard:
    """The images of one rank: ``[start, stop)`` in image order.

    Attributes:
        rank, world: this process's rank and the number of processes.
        start, stop: its images; ``start`` is a multiple of the batch size.
    """

    rank: int
    world: int
    start: int
    stop: int

    def to_dict(self) -> dict[str, int]:
        return {"rank": self.rank, "world": self.world, "start": self.start, "stop": self.stop}


def shard(images: int, batch_size: int, rank: int = 0, world: int = 1) -> Shard:
    """Rank ``rank``'s contiguous run of whole batches: the ``ceil(images / batch_size)`` batches
    are dealt out as evenly as whole batches allow, lower ranks first.

    Example:
        >>> [(s.start, s.stop) for s in (shard(27, 4, r, 3) for r in range(3))]
        [(0, 8), (8, 16), (16, 27)]
    """
    if not 0 <= rank < world:
        raise ConvscopeError(f"rank {rank} is not in a world of {world} processes")
    batches = -(-images // batch_size)
    first, last = rank * batches // world, (rank + 1) * batches // world
    return Shard(rank, world, min(images, first * batch_size), min(images, last * batch_size))


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or with its environment) for more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def rank_device(device: str | torch.device | None) -> torch.device | None:
    """The device this rank runs on: under ``torchrun``, a bare ``cuda`` (or no device when CUDA
    is there) becomes ``cuda:LOCAL_RANK``, one GPU per process; otherwise ``device`` as given."""
    device = torch.device(device) if device is not None else None
    if not launched():
        return device
    if (device is None and torch.cuda.is_available()) or (device is not None and device.type == "cuda" and device.index is None):
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


@contextmanager
def process_group(device: torch.device | None = None) -> Iterator[dist.ProcessGroup | None]:
    """The process group to scan with, and a gloo group for the merge (yielded; ``None`` on one process).

    Uses the default group if the caller made one; else, under ``torchrun`` (:func:`launched`),
    makes it from the environment (NCCL on a CUDA device, gloo otherwise) and destroys it on
    exit. The merge group is always destroyed on exit.
    """
    made = False
    if not (dist.is_available() and dist.is_initialized()):
        if not launched():
            yield None
            return
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
        made = True
    group = dist.new_group(backend="gloo", timeout=TIMEOUT) if dist.get_world_size() > 1 else None
    try:
        yield group
    finally:
        if group is not None:
            dist.destroy_process_group(group)
        if made:
            dist.destroy_process_group()


class Relayed(Exception):
    """A failure that only relays another rank's: at :func:`agree` that rank reports its own error."""


def agree(group: dist.ProcessGroup | None, error: BaseException | None, what: str) -> None:
    """Meet the other ranks: raise on every rank if any rank brings an error.

    Args:
        group: the merge group (``None``: one process, only ``error`` is raised).
        error: this rank's exception, or ``None`` (a :class:`Relayed` one counts as ``None``:
            the rank it relays brings its own).
        what: the step, for the message (``"the scan"``).

    Raises:
        ConvscopeError: some rank failed; a rank's own ConvscopeError is raised as it is, any
            other error becomes this message (chained to it).
    """
    if group is None:
        if error is not None:
            raise error
        return
    verdicts: list[str | None] = [None] * dist.get_world_size(group)
    mine = None if error is None or isinstance(error, Relayed) else f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    dist.all_gather_object(verdicts, mine, group=group)
    failed = [(rank, text) for rank, text in enumerate(verdicts) if text is not None]
    if not failed:
        return
    if isinstance(error, ConvscopeError):  # this rank's own clear message
        raise error
    rank, text = failed[0]
    # Every rank says it, the failing one too: torchrun may stop the others before they print.
    raise ConvscopeError(
        f"{what} failed on rank {rank} of {len(verdicts)} ({text}); nothing was written",
        hint="read that rank's error (--debug shows its traceback); the scan state each rank saved lets the same command resume",
    ) from error


def merge_on_rank0(state: S, group: dist.ProcessGroup | None, empty: Callable[[], S] | None = None) -> S | None:
    """Merge every rank's state into rank 0's, in rank order; returns it on rank 0, ``None`` elsewhere.

    Each rank's ``state`` must come from :func:`shard`'s shards of the same job; ``empty`` makes
    a state of the same job holding nothing, to load another rank's into (default: a
    :class:`ScanState` like ``state``).
    """
    if group is None:
        return state
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    if rank != 0:
        dist.send_object_list([state.state_dict()], dst=dist.get_global_rank(group, 0), group=group)
        return None
    for other in range(1, world):
        received: list[dict | None] = [None]
        dist.recv_object_list(received, src=dist.get_global_rank(group, other), group=group)
        part = empty() if empty is not None else _empty_like(state)  # type: ignore[arg-type]
        part.load_state_dict(received[0])
        state.merge(part)
    return state


def _empty_like(state: ScanState) -> ScanState:
    """A state of the same layers, k, signature sample, labels and quantile budget, holding nothing."""
    first = next(iter(state.layers.values()))
    classes = first.classes.classes if first.classes is not None else 0
    layers = [(name, layer.units) for name, layer in state.layers.items()]
    labels = state.labels.tolist() if state.labels is not None else None
    return ScanState(layers, first.topk.k, first.signature_images, torch.device("cpu"), labels, classes, first.quantiles.budget)


def share(value: T | None, group: dist.ProcessGroup | None) -> T:
    """Rank 0's ``value`` on every rank (e.g. the merged scan, which pass 2 deals out)."""
    if group is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=dist.get_global_rank(group, 0), group=group)
    return box[0]
