"""Patches: the pixels under a box, with what lies past the image border marked.

A box can reach past the image (the network pads). There the patch shows what
the network saw: for zero padding the mean colour (zero after normalisation); for
reflect, replicate or circular padding the reflected, repeated or wrapped image
pixels. Either way thin diagonal grey stripes cover it so a viewer can tell
padding from image content.
"""

from __future__ import annotations

import numpy as np

from convscope.network.geometry import Box

#: Stripe colour and period (pixels) of the padding mark, in patch pixels.
STRIPE_COLOUR = (96, 96, 96)
STRIPE_PERIOD = 4


#: numpy.pad's name for each padding mode of a receptive field (torch's reflect is numpy's 'reflect').
NUMPY_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def crop(
    image: np.ndarray, box: Box, fill: np.ndarray | float, padding: str = "zeros"
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``box`` out of ``image``, filling what lies past the border as the network did.

    Args:
        image: ``(H, W, C)`` array (pixels, or a projection).
        box: ``[top, left, bottom, right)``, may reach past the image.
        fill: value of the outside pixels for zero padding, a scalar or ``(C,)``.
        padding: the field's padding mode (:attr:`ReceptiveField.padding`):
            ``"zeros"`` fills with ``fill``; ``"reflect"``, ``"replicate"`` and
            ``"circular"`` show the image pixels the network saw there (``fill`` unused).

    Returns:
        The patch ``(box.height, box.width, C)`` and the mask ``(box.height, box.width)``
        that is True on image content.

    Example:
        >>> patch, inside = crop(np.ones((4, 4, 1)), Box(-1, -1, 2, 2), fill=0.0)
        >>> patch[..., 0].tolist(), int(inside.sum())
        ([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]], 4)
        >>> row = np.arange(4.0).reshape(1, 4, 1)
        >>> crop(row, Box(0, -2, 1, 2), 0.0, "reflect")[0][0, :, 0].tolist()
        [2.0, 1.0, 0.0, 1.0]
    """
    h, w = image.shape[:2]
    inside = np.zeros((box.height, box.width), dtype=bool)
    top, left = max(box.top, 0), max(box.left, 0)
    bottom, right = min(box.bottom, h), min(box.right, w)
    if top < bottom and left < right:
        inside[top - box.top : bottom - box.top, left - box.left : right - box.left] = True
    if padding != "zeros":
        if padding not in NUMPY_MODES:
            raise ValueError(f"unknown padding {padding!r}; one of zeros, {', '.join(NUMPY_MODES)}")
        before = (max(-box.top, 0), max(-box.left, 0))
        after = (max(box.bottom - h, 0), max(box.right - w, 0))
        padded = np.pad(image, ((before[0], after[0]), (before[1], after[1]), (0, 0)), mode=NUMPY_MODES[padding])
        r, c = box.top + before[0], box.left + before[1]
        return padded[r : r + box.height, c : c + box.width].copy(), inside
    out = np.empty((box.height, box.width, image.shape[2]), dtype=image.dtype)
    out[...] = fill
    if top < bottom and left < right:
        out[top - box.top : bottom - box.top, left - box.left : right - box.left] = image[top:bottom, left:right]
    return out, inside


def mark_padding(cell: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Draw diagonal stripes over the pixels of ``cell`` ``(h, w, 3)`` where ``inside`` is False."""
    if inside.all():
        return cell
    rows, cols = np.indices(inside.shape)
    stripes = ((rows + cols) % STRIPE_PERIOD == 0) & ~inside
    out = cell.copy()
    out[stripes] = STRIPE_COLOUR
    return out


def mean_colour(mean: tuple[float, float, float]) -> np.ndarray:
    """The uint8 RGB colour of a zero model input: what the network's padding looks like."""
    return np.array([round(255 * m) for m in mean], dtype=np.uint8)
