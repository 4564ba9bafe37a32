"""The images of an invariance sweep: which ones, in the model-input frame, with their true classes.

A folder gives ``count`` images spread evenly over it (over its classes in an ImageFolder
layout: one image each from evenly spaced classes); files are taken as given. An image's
true class is its label text (ImageFolder folder, or a ``labels_from_name`` pattern's group)
looked up among the model's class names (case and ``_``/``-`` against spaces ignored); a
model without class names takes the ImageFolder's sorted folder index (CIFAR-10's order).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from convscope.data import failure_reason, find_images, labels_from_name, open_rgb
from convscope.errors import DataError
from convscope.network.load import Network


def choose_images(
    source: str | Path | Sequence[str | Path], count: int = 5, pattern: str | None = None
) -> tuple[list[tuple[Path, str | None]], tuple[str, ...] | None]:
    """``([(file, label text or None)], the folder's sorted class names or None)``: ``count``
    images of a folder, or the given files.

    Example:
        >>> choose_images("cifar10-test", 5)[0][0]  # doctest: +SKIP
        (PosixPath('cifar10-test/airplane/0000.jpg'), 'airplane')
    """
    classes_found = None
    sources = [Path(source)] if isinstance(source, (str, Path)) else [Path(s) for s in source]
    if len(sources) == 1 and sources[0].is_dir():
        found = find_images(sources[0])
        paths, texts = list(found.paths), [None] * len(found.paths)
        if found.labels is not None and found.class_names:
            texts = [found.class_names[i] if i >= 0 else None for i in found.labels]
            classes_found = tuple(found.class_names)
            classes = sorted({t for t in texts if t is not None})
            picks = [classes[int(i)] for i in np.linspace(0, len(classes) - 1, min(count, len(classes))).round()] if classes else []
            chosen = [texts.index(c) for c in dict.fromkeys(picks)]
        else:
            chosen = sorted({int(i) for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).round()})
        files = [(found.root / paths[i], texts[i]) for i in chosen]
    else:
        files = [(p, None) for p in sources]
    if pattern is not None:
        names = labels_from_name(pattern, [p.name for p, _ in files])
        files = [(p, names.class_names[i] if i >= 0 else None) for (p, _), i in zip(files, names.labels)]
    return files, classes_found


def class_index(network: Network, text: str | None, folder_classes: Sequence[str] | None = None) -> int | None:
    """The model's output index of the class named ``text``, or ``None`` when unknown.

    Example:
        >>> class_index(network, "great_white_shark")  # doctest: +SKIP
        2
    """
    if text is None:
        return None
    if network.class_names:
        key = _key(text)
        names = [_key(n) for n in network.class_names]
        return names.index(key) if key in names else None
    if folder_classes and text in folder_classes:
        return list(folder_classes).index(text)
    return int(text) if text.isdigit() else None


def _key(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text.strip().lower())


def load_frame(network: Network, path: Path, shift: int) -> torch.Tensor:
    """``float (3, H, W)`` in ``[0, 1]``: ``path`` in the model-input frame.

    Raises:
        DataError: the file cannot be read, or its short side is below the translation
            sweep's span ``2 * shift + 1`` (the sweep would move mostly upsampled blur).
    """
    try:
        image = open_rgb(Path(path))
    except Exception as exc:
        raise DataError(f"cannot read image {path}: {failure_reason(exc)}", hint="give a readable image file") from None
    if min(image.size) < 2 * shift + 1:
        raise DataError(
            f"image {path} is {image.width}x{image.height} px, smaller than the translation sweep's {2 * shift + 1} px",
            hint="give a larger image, or a smaller --max-shift",
        )
    pixels = np.array(network.preprocess.to_model_frame(image), dtype=np.float32) / 255
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
