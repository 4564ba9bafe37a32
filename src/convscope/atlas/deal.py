"""Pass 2 on many processes: chunks of units dealt round-robin over the ranks, their results sent to rank 0 in order.

Every rank walks the same sequence of chunks (every layer's units, 64 at a time) and
hands each to :meth:`Deal.chunk`. Chunk ``i`` is computed by rank ``i % world``: gathering
its winning images, running its views (projections, occlusion maps, feature
visualisations) and drawing its units' figures (PNG-encoded) there. A chunk computed on
another rank is sent to rank 0, which receives the chunks in the order one process makes
them and alone writes (one writer).
A chunk is computed as one process computes it (the same units, in the same batch), so the
atlas is the one process's.

The results travel as pickled objects over the merge group (gloo): they hold pictures of
varying sizes, packed by the caller to what rank 0 writes (the figures as PNG, each winning
image once, as JPEG, by the first chunk that shows it). After each chunk a worker waits for
rank 0's reply (``"go"`` or ``"stop"``), given when rank 0 takes the chunk, so a worker runs
at most one chunk ahead of the writer and memory stays bounded by a chunk.

Failures never leave a rank waiting, nor working in vain for long: a worker that fails
sends its error in place of its next chunk, and rank 0 raises :class:`RankFailed` when it
reaches it; rank 0, failing or not, hears every worker out in :meth:`Deal.finish`, and
when it fails it answers a worker's next chunk with ``"stop"``. The ranks then meet in
:func:`~convscope.scan.distributed.agree`, where the failing rank reports its own error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch.distributed as dist

from convscope.scan.distributed import Relayed

T = TypeVar("T")


class RankFailed(Relayed):
    """Another rank failed during pass 2; that rank reports its own error when the ranks meet."""


class Deal:
    """This rank's share of pass 2 in the merge ``group`` (``None``: one process computes everything)."""

    def __init__(self, group: dist.ProcessGroup | None) -> None:
        self.group = group
        self.rank, self.world = (dist.get_rank(group), dist.get_world_size(group)) if group is not None else (0, 1)
        self._next = 0  # the number of the next chunk
        self._open = set(range(1, self.world))  # (rank 0) workers it has not heard the end of
        self._stopped = False  # (a worker) rank 0 said stop

    @property
    def writes(self) -> bool:
        """Whether this rank is the one that writes (rank 0)."""
        return self.rank == 0

    def chunk(self, compute: Callable[[], T], pack: Callable[[T], T] = lambda made: made) -> T | None:
        """The next chunk: ``compute()`` if it is this rank's; on rank 0 the chunk's result
        (received from its rank if computed elsewhere, as ``pack`` made it fit to send),
        ``None`` on the other ranks.

        Raises:
            RankFailed: (rank 0) the rank that computes this chunk failed; (a worker) rank 0
                failed and told this rank to stop.
        """
        owner = self._next % self.world
        self._next += 1
        if owner == self.rank:
            made = compute()
            if self.rank == 0:
                return made
            self._send(("chunk", pack(made)), 0)
            if self._receive(0) == "stop":
                self._stopped = True
                raise RankFailed(f"rank 0 of {self.world} stopped pass 2")
            return None
        if self.rank != 0:
            return None
        kind, payload = self._receive(owner)
        if kind != "chunk":
            self._open.discard(owner)
            raise RankFailed(f"pass 2 failed on rank {owner} of {self.world} ({payload})")
        self._send("go", owner)
        return payload

    def finish(self, error: BaseException | None) -> None:
        """End this rank's part: a worker tells rank 0 it is done (or why it failed); rank 0
        hears each worker out, answering a chunk still coming with ``"stop"`` (on a success
        every chunk was taken, and only the workers' ends come)."""
        if self.world == 1 or self._stopped:
            return
        if self.rank != 0:
            self._send(("done", None) if error is None else ("error", f"{type(error).__name__}: {error}"), 0)
            return
        for worker in sorted(self._open):
            if self._receive(worker)[0] == "chunk":
                self._send("stop", worker)
        self._open.clear()

    def _send(self, message: Any, rank: int) -> None:
        dist.send_object_list([message], dst=dist.get_global_rank(self.group, rank), group=self.group)

    def _receive(self, rank: int) -> Any:
        box: list[Any] = [None]
        dist.recv_object_list(box, src=dist.get_global_rank(self.group, rank), group=self.group)
        return box[0]
