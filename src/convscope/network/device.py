"""Where a model lives: its device comes from its parameters, never from a global."""

from __future__ import annotations

import torch
from torch import nn


def model_device(model: nn.Module, fallback: torch.device | None = None) -> torch.device:
    """The device of the model's first parameter or buffer.

    A parameter-free model has no device of its own: it gets ``fallback``
    (e.g. the input's device), else the CPU.

    Example:
        >>> model_device(nn.ReLU(), fallback=torch.device("meta"))
        device(type='meta')
    """
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu") if fallback is None else fallback
