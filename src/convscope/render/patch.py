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
from convscope.network.rf_algebra import fold

#: Stripe colour and period (pixels) of the padding mark, in patch pixels.
STRIPE_COLOUR = (96, 96, 96)
STRIPE_PERIOD = 4


def crop(
    image: np.ndarray, box: Box, fill: np.ndarray | float, padding: str = "zeros", *, max_side: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``box`` out of ``image``, filling what lies past the border as the network did.

    Args:
        image: ``(H, W, C)`` array (pixels, or a projection).
        box: ``[top, left, bottom, right)``, may reach past the image.
        fill: value of the outside pixels for zero padding, a scalar or ``(C,)``.
        padding: the field's padding mode (:attr:`ReceptiveField.padding`):
            ``"zeros"`` fills with ``fill``; ``"reflect"``, ``"replicate"`` and
            ``"circular"`` show the image pixels the network saw there (``fill`` unused).
        max_side: a box longer than this is sampled every ``ceil(side / max_side)``
            pixels (a deep layer's box can be thousands of pixels, almost all padding,
            while its picture is drawn in a 64-pixel cell); ``None`` keeps every pixel.

    Returns:
        The patch ``(box.height, box.width, C)`` (fewer pixels when sampled) and the mask
        of the same height and width that is True on image content.

    Example:
        >>> patch, inside = crop(np.ones((4, 4, 1)), Box(-1, -1, 2, 2), fill=0.0)
        >>> patch[..., 0].tolist(), int(inside.sum())
        ([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]], 4)
        >>> row = np.arange(4.0).reshape(1, 4, 1)
        >>> crop(row, Box(0, -2, 1, 2), 0.0, "reflect")[0][0, :, 0].tolist()
        [2.0, 1.0, 0.0, 1.0]
        >>> crop(np.ones((4, 4, 1)), Box(-100, -100, 104, 104), 0.0, max_side=51)[0].shape
        (51, 51, 1)
    """
    h, w = image.shape[:2]
    step = 1 if max_side is None else max(1, -(-max(box.height, box.width) // max_side))
    if step == 1 and padding == "zeros":  # the common case: slices, 4x faster than an index map
        return _slice(image, box, fill)
    r, c = np.arange(box.top, box.bottom, step), np.arange(box.left, box.right, step)
    out = image[np.clip(fold(r, h, padding), 0, None)[:, None], np.clip(fold(c, w, padding), 0, None)[None, :]]
    inside = ((r >= 0) & (r < h))[:, None] & ((c >= 0) & (c < w))[None, :]
    if padding == "zeros":
        out[~inside] = fill
    return out, inside


def _slice(image: np.ndarray, box: Box, fill: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`crop` of a zero-padded box, every pixel kept."""
    h, w = image.shape[:2]
    out = np.empty((box.height, box.width, image.shape[2]), dtype=image.dtype)
    out[...] = fill
    inside = np.zeros((box.height, box.width), dtype=bool)
    top, left, bottom, right = max(box.top, 0), max(box.left, 0), min(box.bottom, h), min(box.right, w)
    if top < bottom and left < right:
        out[top - box.top : bottom - box.top, left - box.left : right - box.left] = image[top:bottom, left:right]
        inside[top - box.top : bottom - box.top, left - box.left : right - box.left] = True
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
