"""What every streaming pass over a data set shares: a state that saves, loads and merges, and a
progress bar that saves the state every so many images.

Pass 1 (:func:`convscope.scan.scan.scan`) and explain's class relevance
(:mod:`convscope.explain.classes`) both keep a :class:`Resumable` state, advance it batch by
batch under a :class:`BatchProgress`, and run as a job of
:func:`convscope.scan.job.run_sharded` (shards, saved states, a merge on rank 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from convscope.progress import progress_bar


class Resumable(Protocol):
    """A streaming pass's state: ``seen`` images consumed (in image order), savable, mergeable.

    ``state_dict`` holds only tensors, numbers and strings (``torch.load(weights_only=True)``);
    ``merge(other)`` absorbs the same pass over the next shard of images.
    """

    seen: int

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def merge(self, other: Any) -> None: ...


S = TypeVar("S", bound=Resumable)


class BatchProgress:
    """A progress bar over images that calls ``checkpoint(state)`` at a batch boundary once
    ``every`` images have passed since the last call (or since ``state.seen`` at the start).

    Example:
        >>> saved = []
        >>> class State: seen = 0
        >>> state = State()
        >>> with BatchProgress(state, 10, progress=False, checkpoint=lambda s: saved.append(s.seen), every=4) as bar:
        ...     for n in (3, 3, 3, 1):
        ...         state.seen += n
        ...         bar.advance(state, n)
        >>> saved
        [6, 10]
    """

    def __init__(
        self, state: Resumable, total: int | None, *, progress: bool = True, checkpoint: Callable[[Any], None] | None = None,
        every: int = 1000, desc: str = "scan",
    ) -> None:
        self.bar = progress_bar(total=total, initial=state.seen, unit="img", desc=desc, disable=not progress, dynamic_ncols=True)
        self.checkpoint, self.every, self.last = checkpoint, every, state.seen

    def advance(self, state: Resumable, images: int) -> None:
        """``images`` more were consumed (``state.seen`` already counts them)."""
        self.bar.update(images)
        if self.checkpoint is not None and state.seen - self.last >= self.every:
            self.checkpoint(state)
            self.last = state.seen

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> BatchProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
