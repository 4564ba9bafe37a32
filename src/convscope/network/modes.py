"""A model's train/eval mode, changed for a while and given back module by module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every module in eval mode while inside; restore each module's own flag after.

    Unlike ``model.train(was_training)``, a model whose submodules had mixed
    flags (e.g. frozen batch norms in a training model) gets exactly them back.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
        >>> model[0].eval()  # doctest: +ELLIPSIS
        Linear(...)
        >>> with eval_mode(model):
        ...     model[1].training
        False
        >>> model.training, model[0].training, model[1].training
        (True, False, True)
    """
    flags = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for module, training in flags:
            module.training = training
