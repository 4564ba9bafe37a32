"""Train the demo network on a laptop CPU in about two minutes, and cache the weights.

Without labelled data the task is Exemplar-CNN (Dosovitskiy et al., 2014): every
photo of :mod:`convscope.demo.photos` is one class, the samples are random
augmented crops of it, and the network learns which photo a crop comes from.
With an image folder (one subfolder per class) it learns those labels instead,
with lighter augmentation and the same step budget.

Weights are cached as ``cache_dir/<name>.pt`` (a state dict) with the training
record in ``cache_dir/<name>.json``; ``<name>`` holds a hash of everything that
changes the result (task, data files, seed, steps, architecture version), so a
second call with the same arguments loads instead of training. The training also
keeps a few checkpoints on the way (at :data:`CHECKPOINT_FRACTIONS` of its steps),
``cache_dir/<name>.step-NNNNN.pt``, for ``convscope evolve`` (Zeiler & Fergus's
Figure 4): they cost no extra training, only a copy of the weights each.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from convscope.progress import progress_bar

from convscope.demo.augment import Augment
from convscope.demo.model import MODEL_VERSION, TinyAlexNet
from convscope.data import find_images, open_rgb
from convscope.demo.photos import PHOTOS, load_photos
from convscope.errors import ConvscopeError, DataError
from convscope.network.preprocess import Preprocess

#: Bump when the training recipe changes, so cached weights are retrained.
#: 3: the same training, now also saving the checkpoints of :data:`CHECKPOINT_FRACTIONS`.
RECIPE_VERSION = 3
#: Optimiser steps when the caller does not choose: 0.49 CPU-seconds a step measured on one
#: core, so about two minutes on two otherwise idle CPU cores.
DEFAULT_STEPS = 480
BATCH_SIZE = 64
#: Peak learning rate (SGD with Nesterov momentum), reached after a linear warm-up, then a
#: cosine decay to zero. Plain SGD, not Adam: its updates follow the gradient, which for
#: conv1 is a sum of (smooth) image patches, so the filters grow into smooth edges and
#: colour blobs; Adam's per-weight scaling kept them pixel noise (seen on filter pictures).
LEARNING_RATE = 0.02
MOMENTUM = 0.9
WARMUP_FRACTION = 0.05
WEIGHT_DECAY = 5e-4
#: Fresh augmented crops, never trained on, that measure the final accuracy.
HELD_OUT_CROPS = 512
#: The training batches of the last tenth of the steps give the training accuracy.
LAST_FRACTION = 0.1
#: An image folder contributes at most this many images (spread over its classes).
MAX_FOLDER_IMAGES = 2000
#: Where in the training (share of the steps done) a checkpoint is kept besides the final
#: weights: roughly log-spaced, as the epochs of Zeiler & Fergus's Figure 4 (1, 2, 5, ... 64).
#: 480 steps give checkpoints after 5, 14, 48, 120 and 240 steps, and the weights after 480.
CHECKPOINT_FRACTIONS = (0.01, 0.03, 0.1, 0.25, 0.5)


@dataclass(frozen=True)
class DemoResult:
    """A trained demo network and how it came to be.

    Attributes:
        model: the trained :class:`TinyAlexNet`, in eval mode, on the CPU.
        preprocess: how the scan should bring images to the model (its input size
            matches the scale of the training crops).
        weights: the cached state-dict file.
        class_names: the model's output classes: photo names for the Exemplar task,
            the image folder's class names otherwise.
        training: the record for the atlas manifest (task, steps, seconds, accuracies).
        checkpoints: ``(steps done, state-dict file)`` in training order, the last being
            ``weights`` itself (see :data:`CHECKPOINT_FRACTIONS`).
    """

    model: TinyAlexNet
    preprocess: Preprocess
    weights: Path
    class_names: tuple[str, ...] | None
    training: dict[str, Any]
    checkpoints: tuple[tuple[int, Path], ...] = ()


@dataclass(frozen=True)
class _Images:
    """Training images in memory: ``uint8`` ``(3, H, W)`` each, their classes ``(N,)``."""

    images: list[torch.Tensor]
    labels: torch.Tensor
    skipped: int = 0


@dataclass(frozen=True)
class _Task:
    """What to learn: classes, how to sample and describe them; images load only to train."""

    name: str
    description: str
    class_names: tuple[str, ...]
    augment: Augment
    preprocess: Preprocess
    fingerprint: dict[str, Any]
    load: Callable[[], _Images]


def train_demo(
    cache_dir: Path,
    data: Path | None = None,
    *,
    seed: int = 0,
    progress: bool = True,
    steps: int = DEFAULT_STEPS,
) -> DemoResult:
    """Train the demo network, or load it from ``cache_dir`` if it was trained before.

    Args:
        cache_dir: where weights and the training record are kept (created if missing).
        data: an image folder with one subfolder per class, or ``None`` for the
            Exemplar task on the photos scikit-image ships.
        seed: seeds every random choice (initial weights, crops, order); the same
            seed on the same machine gives the same weights.
        progress: show a tqdm progress bar while training.
        steps: optimiser steps of :data:`BATCH_SIZE` crops each.

    Returns:
        the model in eval mode with its preprocessing, weights file and record.

    Raises:
        DataError: ``data`` is missing, has no class subfolders or no readable image.

    Example:
        >>> result = train_demo(Path("~/.cache/convscope").expanduser())  # doctest: +SKIP
        >>> result.training["task"]  # doctest: +SKIP
        'exemplar'
    """
    if steps < 1:
        raise ConvscopeError(f"steps must be at least 1, got {steps}", hint="pass steps=1 or more")
    task = _photo_task() if data is None else _folder_task(Path(data), seed)
    key = _cache_key(task, seed, steps)
    cache_dir = Path(cache_dir)
    name = f"tinyalexnet-{task.name}-{key[:16]}"
    weights = cache_dir / f"{name}.pt"
    record_file = cache_dir / f"{name}.json"
    cached = _load_cached(weights, record_file, len(task.class_names))
    if cached is not None:
        model, record = cached
    else:
        generator = torch.Generator().manual_seed(seed)
        model = TinyAlexNet(len(task.class_names), generator=generator)
        snapshots: dict[int, dict[str, torch.Tensor]] = {}
        record = _fit(model, task, steps, generator, progress, snapshots)
        record["seed"] = seed
        record["cache_key"] = key
        _save(model, record, weights, record_file, snapshots)
    return DemoResult(
        model=model.eval(),
        preprocess=task.preprocess,
        weights=weights,
        class_names=task.class_names,
        training=record,
        checkpoints=tuple((step, _checkpoint_file(weights, step)) for step in record.get("checkpoints", [])) + ((record["steps"], weights),),
    )


def checkpoint_steps(steps: int) -> list[int]:
    """The steps after which a checkpoint is kept, before the last one (whose weights are the result).

    Example:
        >>> checkpoint_steps(480), checkpoint_steps(2)
        ([5, 14, 48, 120, 240], [1])
    """
    return sorted({max(1, round(f * steps)) for f in CHECKPOINT_FRACTIONS} - {steps})


def _checkpoint_file(weights: Path, step: int) -> Path:
    """``<name>.step-00005.pt`` beside ``<name>.pt``."""
    return weights.with_name(f"{weights.stem}.step-{step:05d}.pt")


def _photo_task() -> _Task:
    """Exemplar-CNN on the scikit-image photos: one class per photo."""
    return _Task(
        name="exemplar",
        description=(
            "Exemplar-CNN (Dosovitskiy et al. 2014): each class is one scikit-image photo; "
            "samples are random crops (30-90% of the short side, +-15 degrees, mirrored, "
            "colour-jittered); the network names the photo a crop comes from"
        ),
        class_names=PHOTOS,
        # Strong saturation jitter (down to nearly grey) so colour alone cannot name the photo.
        augment=Augment(saturation=0.9),
        # Training crops span 30-90% of a 224-pixel short side, resized to 96:
        # a whole photo at 224 pixels is inside that range of scales.
        preprocess=Preprocess(input_size=(224, 224), resize=224),
        fingerprint={"photos": list(PHOTOS)},
        load=_load_photos,
    )


def _load_photos() -> _Images:
    """The photos at a 224-pixel short side, class ``i`` for photo ``i``."""
    images = [_to_tensor(image, short_side=224) for image in load_photos().values()]
    return _Images(images, torch.arange(len(images)))


def _folder_task(root: Path, seed: int) -> _Task:
    """Supervised training on an image folder (one subfolder per class)."""
    images = find_images(root)
    labels, class_names = images.labels, images.class_names
    if labels is None or class_names is None:
        raise DataError(
            f"image folder {images.root} has no images in class subfolders (some lie directly in it)",
            hint="lay it out as ROOT/<class>/<image>.jpg, one subfolder per class, "
            "or leave out --data to train on the built-in photos",
        )
    stats = [images.path(i).stat() for i in range(len(images))]
    picks = _spread(len(images), MAX_FOLDER_IMAGES, seed)
    return _Task(
        name="imagefolder",
        description=f"supervised classification of the image folder {root.resolve()} ({len(class_names)} classes)",
        class_names=class_names,
        augment=Augment(side=(0.6, 1.0), aspect=1.15, rotate=0.0, brightness=0.2, contrast=0.2, saturation=0.2, gain=0.05),
        # Training crops span 60-100% of a 112-pixel short side, resized to 96.
        preprocess=Preprocess(input_size=(128, 128), resize=128),
        fingerprint={
            "root": str(root.resolve()),
            "files": [[name, stat.st_size, stat.st_mtime_ns] for name, stat in zip(images.paths, stats)],
        },
        load=partial(_load_folder, images.root, [(images.path(i), labels[i]) for i in picks]),
    )


def _load_folder(root: Path, files: list[tuple[Path, int]]) -> _Images:
    """The readable ``(file, label)`` pairs at a 112-pixel short side; unreadable ones are counted and skipped."""
    images, labels, skipped = [], [], 0
    for path, label in files:
        try:
            image = open_rgb(path, min_side=160)
        except Exception:  # any decoding failure (Pillow raises many kinds) skips the file
            skipped += 1
            continue
        images.append(_to_tensor(image, short_side=112))
        labels.append(label)
    if not images:
        raise DataError(f"no readable image in {root}", hint="check that the class subfolders hold JPEG or PNG files")
    return _Images(images, torch.tensor(labels), skipped)


def _spread(count: int, limit: int, seed: int) -> list[int]:
    """At most ``limit`` of the indices ``0..count-1``, a seeded random choice, in order."""
    if count <= limit:
        return list(range(count))
    return sorted(torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:limit].tolist())


def _to_tensor(image: Image.Image, short_side: int) -> torch.Tensor:
    """An RGB image resized to ``short_side`` as ``uint8`` ``(3, H, W)``."""
    scale = short_side / min(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    pixels = np.array(image.resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def _fit(
    model: TinyAlexNet, task: _Task, steps: int, generator: torch.Generator, progress: bool,
    snapshots: dict[int, dict[str, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place with SGD; returns the training record. ``snapshots`` gets a
    copy of the weights after each of :func:`checkpoint_steps` (steps done -> state dict)."""
    keep = set(checkpoint_steps(steps))
    data = task.load()
    held_out = _held_out(task, data, generator)
    optimiser = torch.optim.SGD(
        model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY
    )
    warmup = max(1, round(steps * WARMUP_FRACTION))
    last = max(1, math.ceil(steps * LAST_FRACTION))
    correct = seen = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    model.train()
    bar = progress_bar(range(steps), desc=f"training demo network ({task.name})", unit="step", disable=not progress)
    for step in bar:
        for group in optimiser.param_groups:
            group["lr"] = _learning_rate(step, steps, warmup)
        picks = torch.randint(len(data.images), (BATCH_SIZE,), generator=generator)
        x = task.preprocess.normalize(task.augment.crops(data.images, picks, generator))
        y = data.labels[picks]
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if snapshots is not None and step + 1 in keep:
            snapshots[step + 1] = {name: value.detach().clone() for name, value in model.state_dict().items()}
        if step >= steps - last:
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    model.eval()
    return {
        "task": task.name,
        "description": task.description,
        "classes": len(task.class_names),
        "images": len(data.images),
        "skipped_images": data.skipped,
        "steps": steps,
        "batch_size": BATCH_SIZE,
        "crop_size": task.augment.size,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "accuracy_held_out_crops": round(_accuracy(model, held_out), 4),
        "held_out_crops": len(held_out[1]),
        "accuracy_last_training_batches": round(correct / seen, 4),
        "last_training_batches": last,
        "model_version": MODEL_VERSION,
        "recipe_version": RECIPE_VERSION,
        "checkpoints": sorted(keep),
    }


def _learning_rate(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to zero at ``steps``."""
    if step < warmup:
        return LEARNING_RATE * (step + 1) / warmup
    return LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def _held_out(task: _Task, data: _Images, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised crops ``(N, 3, S, S)`` and labels ``(N,)``, drawn before training, never trained on."""
    own = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
    picks = torch.randint(len(data.images), (HELD_OUT_CROPS,), generator=own)
    return task.preprocess.normalize(task.augment.crops(data.images, picks, own)), data.labels[picks]


@torch.no_grad()
def _accuracy(model: TinyAlexNet, crops: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Fraction of ``crops`` that ``model`` (in eval mode) classifies right."""
    x, y = crops
    predicted = torch.cat([model(batch).argmax(1) for batch in x.split(128)])
    return float((predicted == y).float().mean())


def _cache_key(task: _Task, seed: int, steps: int) -> str:
    """SHA-256 of everything that changes the trained weights."""
    identity = {
        "task": task.name,
        "data": task.fingerprint,
        "seed": seed,
        "steps": steps,
        "batch_size": BATCH_SIZE,
        "model_version": MODEL_VERSION,
        "recipe_version": RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _load_cached(weights: Path, record_file: Path, num_classes: int) -> tuple[TinyAlexNet, dict[str, Any]] | None:
    """The cached model and record, or ``None`` when either file is missing or unreadable."""
    if not (weights.is_file() and record_file.is_file()):
        return None
    model = TinyAlexNet(num_classes)
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        record = json.loads(record_file.read_text())
    except (OSError, RuntimeError, ValueError):
        return None
    if not all(_checkpoint_file(weights, step).is_file() for step in record.get("checkpoints", [])):
        return None  # a checkpoint went missing: train again (the same seed gives the same weights)
    return model.eval(), record


def _save(
    model: TinyAlexNet, record: dict[str, Any], weights: Path, record_file: Path,
    snapshots: dict[int, dict[str, torch.Tensor]] | None = None,
) -> None:
    """Write the checkpoints, the weights, then the record (the cache's completeness mark),
    each to a temporary file renamed into place."""
    weights.parent.mkdir(parents=True, exist_ok=True)
    for step, state in sorted((snapshots or {}).items()):
        path = _checkpoint_file(weights, step)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
    tmp = weights.with_name(f".{weights.name}.{os.getpid()}.tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, weights)
    tmp = record_file.with_name(f".{record_file.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, record_file)
