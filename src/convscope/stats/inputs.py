"""Checking and converting what every streaming statistic takes: ``(N, units)`` values.

The scan hands each statistic, per batch, every image's strongest activation of
every unit: ``values`` of shape ``(N, units)``. It may come as a torch tensor (on
any device, any float dtype) or a numpy array. Here it becomes a float32 numpy
array in which every value that is not finite (NaN, ``+inf``, ``-inf``) is
``-inf``: the scan's own mark for "this unit had no finite value on this image".
Float32 holds every float16 / bfloat16 / float32 activation exactly.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from convscope.errors import ConvscopeError

ArrayLike = Union[np.ndarray, torch.Tensor]
"""A numpy array or a torch tensor (any device)."""


def as_numpy(array: ArrayLike) -> np.ndarray:
    """A numpy view or copy of ``array``; torch tensors come to the CPU, low floats as float32."""
    if isinstance(array, torch.Tensor):
        array = array.detach()
        if array.dtype in (torch.float16, torch.bfloat16):
            array = array.float()
        return array.cpu().numpy()
    return np.asarray(array)


def as_values(values: ArrayLike, units: int) -> np.ndarray:
    """``values`` ``(N, units)`` as a new float32 array, every non-finite value ``-inf``.

    Raises:
        ConvscopeError: not two-dimensional, the wrong number of units, or not numbers.

    Example:
        >>> as_values(np.array([[1.0, np.nan], [np.inf, -2.0]]), units=2).tolist()
        [[1.0, -inf], [-inf, -2.0]]
    """
    array = as_numpy(values)
    if array.ndim != 2 or array.shape[1] != units:
        raise ConvscopeError(
            f"values have shape {tuple(array.shape)}, expected (N, {units}): one value per image and unit",
            hint="pass each image's strongest activation of every unit, images along the first axis",
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ConvscopeError(
            f"values have dtype {array.dtype}, expected numbers",
            hint="pass a float tensor or array of activations",
        )
    out = np.array(array, dtype=np.float32, copy=True)
    finite = np.isfinite(out)
    if not finite.all():
        np.copyto(out, np.float32(-np.inf), where=~finite)
    return out


def as_labels(labels: ArrayLike, images: int, classes: int) -> np.ndarray:
    """``labels`` ``(N,)`` as int64, checked: ``-1`` (unlabelled) or ``0 <= label < classes``.

    Raises:
        ConvscopeError: the wrong shape, not integers, or a label out of range.

    Example:
        >>> as_labels(torch.tensor([2, -1, 0]), images=3, classes=3).tolist()
        [2, -1, 0]
    """
    array = as_numpy(labels)
    if array.shape != (images,):
        raise ConvscopeError(
            f"labels have shape {tuple(array.shape)}, expected ({images},): one label per image",
            hint="pass one class index per image of the batch, -1 for an unlabelled image",
        )
    if images and not np.issubdtype(array.dtype, np.integer):
        raise ConvscopeError(
            f"labels have dtype {array.dtype}, expected integers",
            hint="pass class indices (0 .. classes-1), -1 for an unlabelled image",
        )
    array = array.astype(np.int64, copy=False)
    bad = (array < -1) | (array >= classes)
    if bad.any():
        raise ConvscopeError(
            f"label {int(array[bad][0])} is out of range for {classes} classes",
            hint=f"labels are class indices 0 .. {classes - 1}, or -1 for an unlabelled image",
        )
    return array


def check_positive(name: str, value: int) -> int:
    """``value`` as an int if it is a positive integer, else a :class:`ConvscopeError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConvscopeError(f"{name} must be a positive integer, got {value!r}", hint=f"pass {name}=1 or more")
    return int(value)
