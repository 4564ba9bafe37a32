"""``explain_classes(network_or_atlas, images)``: every class's most relevant units over a data set.

Each image gets one class: its label, where the data set has labels that map onto the model's
classes (:func:`class_targets`), else its predicted class. One forward and one backward per
batch (:func:`~convscope.explain.relevance.batch_gradients` of ``sum_i logit[i, class_i]``)
give every image's gradient x activation relevances at every layer, which
:class:`~convscope.explain.class_relevance.ClassState` adds into per-class sums. The pass runs
as the scan does (:func:`convscope.scan.job.run_sharded`): a progress bar, its state saved
beside the output every so many images so a rerun resumes, shards of whole batches over the
ranks of ``torchrun`` merged on rank 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from convscope.data import ImageList, default_workers, frame_batches, image_source, take
from convscope.errors import ConvscopeError, ConvscopeWarning, DataError
from convscope.explain.atlas_source import network_and_layers
from convscope.explain.class_relevance import ClassRelevance, ClassState
from convscope.explain.relevance import METHODS, Method, batch_gradients, check_method
from convscope.network.device import model_device, model_dtype
from convscope.network.layers import LayerInfo
from convscope.network.modes import eval_mode
from convscope.network.network import Network
from convscope.scan import distributed, resume
from convscope.scan.job import run_sharded
from convscope.scan.progress import BatchProgress
from convscope.scan.scan import Batch

#: How an image's class is chosen: its ``"label"`` (where the data set's labels map onto the
#: model's classes) or its ``"predicted"`` class; ``None``: the label when they map, else predicted.
CLASS_BY = ("label", "predicted")

#: The state files' kind (``.<out>.classes.pt`` beside the output folder).
KIND = "classes"


def _key(text: str) -> str:
    return re.sub(r"[\s_-]+", " ", text.strip().lower())


#: How :func:`label_classes` maps labels onto a model without class names when there are as many.
SORTED_ORDER = "in sorted order (as many label classes as the model has)"


def label_classes(label_names: Sequence[str], class_names: Sequence[str] | None, classes: int) -> tuple[list[int] | None, str]:
    """The model's class index of each label name, and how it was found, or ``(None, why not)``.

    In this order: every label name is one of the model's class names (case, spaces, ``_`` and
    ``-`` aside; a name the model has twice does not count); every label name is an integer
    below ``classes``; there are exactly ``classes`` label names (sorted, as ImageFolder sorts
    folders: ImageNet's wnids, CIFAR-10's folders), taken in that order, unless some of them are
    the model's class names (then they are names, some misspelt or ambiguous, and their
    alphabet is not the model's order).

    Example:
        >>> label_classes(["cat", "Tench"], ["tench", "goldfish", "cat"], 3)
        ([2, 0], 'by name')
        >>> label_classes(["n01", "n02"], None, 2)
        ([0, 1], 'in sorted order (as many label classes as the model has)')
        >>> label_classes(["cardigan", "tench", "zebra"], ["tench", "cardigan", "cardigan"], 3)[0] is None
        True
    """
    found: list[int | None] = []
    if class_names:
        keys = [_key(n) for n in class_names]
        unique = {k: i for i, k in enumerate(keys) if keys.count(k) == 1}
        found = [unique.get(_key(name)) for name in label_names]
        if all(i is not None for i in found):
            return found, "by name"  # type: ignore[return-value]
        missing = [name for name, i in zip(label_names, found) if i is None]
        why = f"{len(missing)} label classes are not (uniquely) among the model's class names, e.g. {', '.join(map(repr, missing[:3]))}"
    else:
        why = "the model has no class names"
    if all(re.fullmatch(r"\d+", name) for name in label_names):
        indices = [int(name) for name in label_names]
        if max(indices) < classes:
            return indices, "by index"
        why += f"; label {max(indices)} is not a class index below {classes}"
    named = bool(class_names) and any(i is not None for i in found)
    if named:  # the labels are class names, some not the model's: the alphabet is not the model's order
        return None, why
    if len(label_names) == classes:
        return list(range(classes)), SORTED_ORDER
    return None, why + f"; and there are {len(label_names)} label classes, not the model's {classes}"


def label_names(images: ImageList, classes: int) -> tuple[str, ...] | None:
    """For a model without class names: each class's name from the data set's labels, where
    they map onto every class (:func:`label_classes`: by index or in sorted order), else ``None``.

    Example:
        >>> from convscope.data import ImageList
        >>> folders = lambda *names: ImageList(Path("."), ("a.png",), (0,), names, ())
        >>> label_names(folders("cat", "dog"), 2), label_names(folders("cat", "dog"), 3)
        (('cat', 'dog'), None)
        >>> label_names(folders("0", "1", "10", "2"), 11)  # by index: classes 3-9 and 11 have no label
        >>> label_names(folders("0", "1", "10", "2"), 4)  # in sorted order, as ImageFolder numbers them
        ('0', '1', '10', '2')
        >>> label_names(folders("0", "1", "2"), 3)
        ('0', '1', '2')
    """
    if not images.class_names:
        return None
    mapping, _ = label_classes(images.class_names, None, classes)
    if mapping is None or sorted(mapping) != list(range(classes)):
        return None
    names = [""] * classes
    for label, index in zip(images.class_names, mapping):
        names[index] = label
    return tuple(names)


def class_targets(images: ImageList, class_names: Sequence[str] | None, classes: int, class_by: str | None = None) -> tuple[list[int], str]:
    """Each image's class to explain (``-1``: its predicted class), and how they were chosen.

    Args:
        images: the data set; its labels (ImageFolder folders, a CSV file, file names).
        class_names: the model's class names, or ``None``.
        classes: the model's number of classes.
        class_by: ``"label"``, ``"predicted"``, or ``None``: labels where they map onto the
            model's classes (:func:`label_classes`), else the predicted class (with a warning
            when the data set has labels).

    Returns:
        ``(targets, class_by)``: per image its class or ``-1`` (an unlabelled image, or every
        image when ``class_by`` is ``"predicted"``), and ``"label"`` or ``"predicted"``.

    Raises:
        ConvscopeError: ``class_by`` is not one of :data:`CLASS_BY`; ``"label"`` for images
            without labels or with labels that do not map onto the model's classes.
    """
    if class_by not in (None, *CLASS_BY):
        raise ConvscopeError(f"unknown --class-by {class_by!r}", hint=f"use one of {', '.join(CLASS_BY)}")
    unlabelled = [-1] * len(images)
    if class_by == "predicted":
        return unlabelled, "predicted"
    if images.labels is None or not images.class_names:
        if class_by == "label":
            raise ConvscopeError(
                f"the images in {images.root} have no labels",
                hint="give labels (one folder per class, --labels CSV or --labels-from-name REGEX), or --class-by predicted",
            )
        return unlabelled, "predicted"
    mapped, how = label_classes(images.class_names, class_names, classes)
    if mapped is None:
        if class_by == "label":
            raise ConvscopeError(
                f"the images' labels do not map onto the model's {classes} classes: {how}",
                hint="name the labels as the model names its classes (or give class indices), or use --class-by predicted",
            )
        warnings.warn(f"explaining the predicted classes: the images' labels do not map onto the model's classes ({how})", ConvscopeWarning, stacklevel=3)
        return unlabelled, "predicted"
    if how == SORTED_ORDER:
        warnings.warn(
            f"the images' {classes} label classes are taken to be the model's {classes} classes in sorted order (as "
            "ImageFolder numbers its folders); if it was trained otherwise, use --class-by predicted",
            ConvscopeWarning, stacklevel=3,
        )
    return [mapped[label] if label >= 0 else -1 for label in images.labels], "label"


def class_pass(
    model: torch.nn.Module,
    layers: Sequence[LayerInfo],
    batches: Iterable[Batch],
    normalize: Callable[[torch.Tensor], torch.Tensor],
    targets: Sequence[int],
    state: ClassState,
    *,
    total: int | None = None,
    progress: bool = True,
    checkpoint: Callable[[ClassState], None] | None = None,
    checkpoint_every: int = 1000,
    method: Method = "gradient",
) -> ClassState:
    """Add every batch's relevances into ``state``: per batch one forward and one backward.

    Args:
        model: the classifier; its device is used and its train/eval mode restored.
        layers: the layers to explain (their ``dims`` say where units, rows, cols are).
        batches: :data:`~convscope.scan.scan.Batch` tuples in image order, starting at image
            ``state.seen``; unreadable images (``ok`` False) are counted in ``state.failed``.
        normalize: ``uint8 (N, 3, H, W)`` pixels to the model input.
        targets: per image index its class, ``-1`` for its predicted one.
        state: the running sums (a fresh or a resumed one).
        total, progress: the progress bar's length and whether to show it.
        checkpoint, checkpoint_every: called with the state every that many images.
    """
    device, dtype = model_device(model), model_dtype(model)
    names = [info.name for info in layers]
    dims = {info.name: info.dims for info in layers}
    wanted = torch.as_tensor(list(targets), dtype=torch.long)
    with BatchProgress(state, total, progress=progress, checkpoint=checkpoint, every=checkpoint_every, desc="explain") as bar, eval_mode(model):
        for pixels, indices, ok, errors in batches:
            state.failed.extend((int(i), e) for i, e, good in zip(indices, errors, ok) if not good)
            if ok.any():
                read = indices[ok]
                on_device = pixels.to(device, non_blocking=True)
                x = normalize(on_device if ok.all() else on_device[ok.to(device)]).to(dtype)
                found = batch_gradients(model, x, names, wanted[read], dims, keep_maps=False, method=method)
                for name in names:
                    state.add(name, found.relevance[name], found.targets)
                state.add_images(found.targets, found.logits.argmax(dim=1), int((wanted[read] >= 0).sum()))
            state.seen += len(indices)
            bar.advance(state, len(indices))
    return state


def count_classes(network: Network) -> int:
    """The model's number of classes: its output's width on one blank image."""
    x = torch.zeros(1, 3, *network.preprocess.input_size, device=model_device(network.model), dtype=model_dtype(network.model))
    with eval_mode(network.model), torch.no_grad():
        logits = network.model(x)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise ConvscopeError("the model's output is not class logits (N, classes)", hint="explain needs a classifier")
    return int(logits.shape[1])


def explain_classes(
    network_or_atlas: Network | str | Path,
    images: str | Path | ImageList,
    *,
    layers: Sequence[str] | Sequence[LayerInfo] | None = None,
    top: int = 10,
    class_by: str | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    weights: str | Path | None = None,
    out: str | Path | None = None,
    resume_saved: bool = True,
    checkpoint_every: int | None = None,
    progress: bool = True,
    limit: int | None = None,
    method: Method = "gradient",
) -> ClassRelevance | None:
    """Every class's most relevant units, averaged over its images; returns data, writes nothing
    but the state that lets a rerun resume.

    Args:
        network_or_atlas: a :class:`Network`, or an atlas folder (its model, weights, checked by
            SHA-256, preprocessing and layers).
        images: a folder (or a text file listing images, see :func:`~convscope.data.image_source`),
            or an :class:`ImageList` (e.g. with labels from :func:`~convscope.data.labels_from_name`).
        layers: layer names (default: the atlas's layers, or the network's default layers), or
            :class:`LayerInfo` records.
        top: units per image counted in each unit's ``top_count``, and listed per class.
        class_by: ``"label"``, ``"predicted"`` or ``None`` (labels where they map onto the
            model's classes, else predicted; see :func:`class_targets`).
        batch_size: images per batch (one forward and one backward per batch).
        workers: loader worker processes.
        weights: with an atlas, where its weights file is now (if it moved).
        out: the folder the result will be written to; the pass's state is saved beside it
            (``.<out>.classes.pt``) every ``checkpoint_every`` images and a rerun of the same
            job resumes from it. ``None``: nothing is saved.
        resume_saved: go on from a saved state of the same job (else start afresh).
        limit: only the first ``limit`` images.
        method: ``"gradient"`` (gradient x activation) or ``"lrp"`` (LRP epsilon-plus-flat,
            refused with a clear error where a module has no rule), as for
            :func:`~convscope.explain.api.explain`.

    Returns:
        The :class:`ClassRelevance` (on rank 0 under ``torchrun``; ``None`` on the other ranks).

    Raises:
        DataError: no image could be read (or the folder is empty).
        ConvscopeError: a bad ``top``, ``class_by``, layer, or labels that ``class_by="label"`` cannot use.

    Example:
        >>> result = explain_classes("atlas", "photos/", top=5)  # doctest: +SKIP
        >>> [(u.unit, round(u.mean_share, 3)) for u in result.top_units("features.12", 207)]  # doctest: +SKIP
        [(97, 0.061), ...]
    """
    if top < 1:
        raise ConvscopeError(f"top must be at least 1, got {top}", hint="e.g. top=10")
    if batch_size < 1:
        raise ConvscopeError(f"batch size must be at least 1, got {batch_size}")
    check_method(method)
    network, infos, _ = network_and_layers(network_or_atlas, layers, weights)
    image_list = take(images if isinstance(images, ImageList) else image_source(images), limit)
    classes = count_classes(network)
    targets, chosen_by = class_targets(image_list, network.class_names, classes, class_by)
    names = network.class_names or (label_names(image_list, classes) if chosen_by == "label" else None)
    device = model_device(network.model)
    if workers is None:
        workers = default_workers(device, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    pairs = [(info.name, info.units) for info in infos]

    def make_state(part: distributed.Shard) -> ClassState:
        state = ClassState(pairs, classes, top)
        state.seen = part.start
        return state

    def fingerprint(part: distributed.Shard) -> str:
        settings = {"job": "explain classes", "method": METHODS[method], "class_by": chosen_by, "classes": classes,
                    "targets": hashlib.sha256(json.dumps(targets).encode()).hexdigest()}
        return resume.fingerprint(network, infos, image_list, top, batch_size, part.to_dict(), settings)

    def work(state: ClassState, part: distributed.Shard, todo: range | None, checkpoint: Callable[[ClassState], None], every: int) -> None:
        class_pass(
            network.model, infos, frame_batches(image_list, network.preprocess, batch_size, workers, device, todo),
            network.preprocess.normalize, targets, state, total=part.stop, progress=progress and part.rank == 0,
            checkpoint=checkpoint if out is not None else None, checkpoint_every=every, method=method,
        )

    with distributed.process_group(device) as group:
        merged = run_sharded(
            len(image_list), batch_size, Path(out) if out is not None else None, make_state, fingerprint, work,
            resume_saved=resume_saved and out is not None, checkpoint_every=checkpoint_every, group=group, kind=KIND, what="class relevance pass",
        )
        error = None
        if merged is not None and merged.count == 0:
            reasons = "; ".join(f"{image_list.paths[i]}: {r}" for i, r in sorted(merged.failed)[:3])
            error = DataError(f"no image in {image_list.root} could be read ({reasons})", hint="check the files open in an image viewer")
        distributed.agree(group, error, "the class relevance pass")
    return merged.result(names, chosen_by, METHODS[method]) if merged is not None else None
