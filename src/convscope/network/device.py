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


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter or buffer (float32 if none):
    what its inputs must be cast to (a half or bfloat16 model takes half or bfloat16 inputs).

    Example:
        >>> model_dtype(nn.Linear(2, 2).to(torch.bfloat16))
        torch.bfloat16
    """
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32
