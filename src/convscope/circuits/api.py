"""``make_circuits(atlas)``: an atlas's circuits computed from its network, hits and images.

The atlas supplies everything (:func:`~convscope.explain.atlas_source.atlas_source`): the
network (its weights checked by SHA-256), the scanned layers in network order, each unit's top
hits (``layers/<layer>/hits.js``) and the data set they came from (the manifest's
``dataset.root``, or ``images``). Each chosen layer is paired with the scanned layer before it;
each unit's inputs from that layer are averaged over its hits
(:func:`~convscope.circuits.inputs.circuit_inputs`), with the kernels of the listed inputs where
one convolution connects the two layers (:mod:`convscope.circuits.weights`); and, with
``ablation``, each unit of the ablation layers is zeroed over a sample of images
(:func:`~convscope.circuits.ablation.ablate`). Nothing is written:
:func:`~convscope.circuits.folder.write_circuits` stores the result in the atlas.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convscope.atlas.format import read_hits, read_manifest
from convscope.circuits.result import AblationInfo, Circuits, Kernels
from convscope.data import ImageList, image_source, load_pixels, with_labels
from convscope.errors import ConvscopeError, DataError, LayerError
from convscope.explain.atlas_source import AtlasSource, atlas_source
from convscope.explain.classes import class_targets, count_classes, label_names
from convscope.network.device import model_device, model_dtype
from convscope.network.layers import LayerInfo
from convscope.network.preprocess import Preprocess
from convscope.progress import progress_bar

#: Images whose pixels :func:`image_loader` keeps (uint8; 150 kB each at 224 x 224).
CACHED_IMAGES = 256


def layer_pairs(layers: Sequence[LayerInfo], upper: Sequence[str] | None = None) -> list[tuple[LayerInfo, LayerInfo]]:
    """``(below, upper)`` per chosen upper layer (default: every scanned layer but the first),
    ``below`` the scanned layer just before it (``layers`` are in the manifest's, the network's, order).

    Raises:
        LayerError: an unknown layer, or the first scanned layer (no layer before it).

    Example:
        >>> infos = [LayerInfo(name, "Conv2d", (2, 4, 4), None) for name in ("a", "b", "c")]
        >>> [(low.name, up.name) for low, up in layer_pairs(infos)], [(low.name, up.name) for low, up in layer_pairs(infos, ["c"])]
        ([('a', 'b'), ('b', 'c')], [('b', 'c')])
    """
    names = [info.name for info in layers]
    chosen = list(dict.fromkeys(upper)) if upper else names[1:]
    missing = [name for name in chosen if name not in names]
    if missing:
        raise LayerError(f"the atlas has no layer {', '.join(map(repr, missing))}", hint=f"its layers: {', '.join(names)}")
    first = [name for name in chosen if names.index(name) == 0]
    if first:
        raise LayerError(
            f"layer {first[0]!r} is the atlas's first layer: there is no scanned layer below it to take its inputs from",
            hint=f"pick later layers ({', '.join(names[1:]) or 'the atlas has only one'}), or rebuild the atlas with a layer before it",
        )
    return [(layers[names.index(name) - 1], layers[names.index(name)]) for name in chosen]


def pick_ablation_layers(layers: Sequence[LayerInfo], classes: int, chosen: Sequence[str] | None = None) -> list[LayerInfo]:
    """The layers to ablate: ``chosen``, else the last scanned layer whose units are not the
    model's ``classes`` (the logits are the classes themselves).

    Raises:
        LayerError: an unknown layer, or no layer but the logits.

    Example:
        >>> infos = [LayerInfo("conv", "Conv2d", (8, 4, 4), None), LayerInfo("fc", "Linear", (10,), None)]
        >>> [info.name for info in pick_ablation_layers(infos, 10)]
        ['conv']
    """
    known = {info.name: info for info in layers}
    if chosen:
        missing = [name for name in chosen if name not in known]
        if missing:
            raise LayerError(f"the atlas has no layer {', '.join(map(repr, missing))} to ablate", hint=f"its layers: {', '.join(known)}")
        return [known[name] for name in dict.fromkeys(chosen)]
    inner = [info for info in layers if info.units != classes]
    if not inner:
        raise LayerError("the atlas has no layer but the logits to ablate", hint="name one with --ablation-layers, or rebuild the atlas with inner layers")
    return [inner[-1]]


def dataset(manifest: dict[str, Any], images: str | Path | None, labels: str | Path | None, labels_from_name: str | None) -> ImageList:
    """The images the atlas was scanned from (``images``, else the manifest's ``dataset.root``), with labels.

    Raises:
        DataError: the folder is gone (or is not one).
    """
    root = images if images is not None else (manifest.get("dataset") or {}).get("root")
    if root is None:
        raise DataError("the atlas does not record the folder its images came from", hint="pass it with --images FOLDER")
    if not Path(root).expanduser().exists():
        where = "" if images is not None else "the atlas's images were scanned from "
        raise DataError(f"{where}{root}, which does not exist (any more)", hint="pass where the images are now with --images FOLDER")
    return with_labels(image_source(root), labels, labels_from_name)


def hit_table(atlas: Path, layer: str, index: dict[str, int], per_unit: int | None) -> Any:
    """The atlas's hits of ``layer`` (the first ``per_unit`` of each unit, or all) as a
    :class:`~convscope.circuits.inputs.HitTable` over the data set's image indices ``index``.

    Raises:
        DataError: a hit's image is not in the data set.
    """
    from convscope.circuits.inputs import HitTable

    rows: list[tuple[int, int, int, int]] = []
    for record in read_hits(atlas, layer)["units"]:
        for hit in (record.get("hits") or [])[:per_unit]:
            if hit["image"] not in index:
                raise DataError(
                    f"the atlas's hit image {hit['image']!r} (layer {layer!r}) is not among the images", hint="pass the folder the atlas was scanned from with --images FOLDER"
                )
            rows.append((int(record["unit"]), index[hit["image"]], int(hit["row"]), int(hit["col"])))
    table = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return HitTable(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy(), table[:, 3].copy())


def image_loader(images: ImageList, preprocess: Preprocess, model: torch.nn.Module, cached: int = CACHED_IMAGES) -> Callable[[Sequence[int]], torch.Tensor]:
    """``load(indices) -> (n, 3, H, W)``: the normalised model inputs of images ``indices`` on the
    model's device and in its dtype, the pixels of the last ``cached`` images kept."""
    device, dtype = model_device(model), model_dtype(model)
    cache: OrderedDict[int, torch.Tensor] = OrderedDict()

    def load(indices: Sequence[int]) -> torch.Tensor:
        indices = [int(i) for i in indices]
        missing = [i for i in dict.fromkeys(indices) if i not in cache]
        for i, pixels in zip(missing, load_pixels(images, missing, preprocess) if missing else []):
            cache[i] = pixels
        for i in indices:
            cache.move_to_end(i)
        batch = torch.stack([cache[i] for i in indices]) if indices else torch.zeros((0, 3, *preprocess.input_size), dtype=torch.uint8)
        while len(cache) > cached:
            cache.popitem(last=False)
        return preprocess.normalize(batch.to(device)).to(dtype)

    return load


def pair_kernels(model: torch.nn.Module, pairs: Sequence[tuple[LayerInfo, LayerInfo]], found: Sequence[Any], top: int, x: torch.Tensor) -> tuple[tuple[bool, ...], Kernels]:
    """Per pair whether one convolution connects its layers, and for those the kernels of every
    unit's listed inputs (its ``top`` of each sign)."""
    from convscope.circuits.weights import direct_conv, kernels

    direct: list[bool] = []
    found_kernels: Kernels = {}
    for i, ((below, upper), inputs) in enumerate(zip(pairs, found)):
        conv = direct_conv(model, below, upper, x)
        direct.append(conv is not None)
        if conv is None:
            continue
        per_unit: dict[int, dict[int, np.ndarray]] = {}
        for unit in range(inputs.contributions.shape[0]):
            listed = [c for sign in (1, -1) for c, _, _ in inputs.top(unit, top, sign)]
            if listed:
                per_unit[unit] = dict(zip(listed, np.asarray(kernels(conv, unit, listed))))
        found_kernels[i] = per_unit
    return tuple(direct), found_kernels


def make_circuits(
    atlas: str | Path | AtlasSource,
    *,
    layers: Sequence[str] | None = None,
    hits: int | None = None,
    top: int = 8,
    ablation: int = 0,
    ablation_layers: Sequence[str] | None = None,
    seed: int = 0,
    images: str | Path | None = None,
    labels: str | Path | None = None,
    labels_from_name: str | None = None,
    batch_size: int = 32,
    weights: str | Path | None = None,
    progress: bool = True,
) -> Circuits:
    """The circuits of an atlas's network (see the module's docstring); writes nothing.

    Args:
        atlas: the atlas folder (or an opened :class:`AtlasSource`).
        layers: the upper layers (default: every scanned layer but the first); each is paired
            with the scanned layer before it.
        hits: hits per unit to average over (default: all the atlas keeps, its ``k``).
        top: inputs listed per unit and sign (and whose kernels are kept).
        ablation: images to zero each unit of the ablation layers on (0: no ablation).
        ablation_layers: the layers to ablate (default: the last scanned layer that is not the logits).
        seed: the seed of the ablation's sample of images and its random units.
        images: the data set's folder, if it moved (default: the manifest's ``dataset.root``).
        labels: the images' labels from a CSV file of path,label rows (else their folders); the
            ablation counts each image for its label where labels map onto the model's
            classes, else for its predicted class.
        labels_from_name: the images' labels from their file names instead (a regex).
        batch_size: hits or images per forward pass.
        weights: where the atlas's weights file is now, if it moved.
        progress: show progress bars.

    Raises:
        LayerError: an unknown layer, or one without a scanned layer before it.
        DataError: the data set is gone, or does not hold the atlas's hit images.
        ConvscopeError: a bad number, or an ablation sample larger than the data set.

    Example:
        >>> found = make_circuits("atlas", layers=["features.4"], ablation=200)  # doctest: +SKIP
        >>> found.inputs[0].top(7, n=3)  # doctest: +SKIP
        [(12, 0.21, 40.5), (3, 0.08, 15.2), (40, 0.05, 9.9)]
    """
    for name, value, least in (("top", top, 1), ("batch size", batch_size, 1), ("ablation", ablation, 0), ("hits", hits if hits is not None else 1, 1)):
        if value < least:
            raise ConvscopeError(f"{name} must be at least {least}, got {value}", hint="e.g. --top 8 --hits 9 --ablation 500")
    source = atlas if isinstance(atlas, AtlasSource) else atlas_source(atlas, weights)
    manifest = read_manifest(source.atlas)
    pairs = layer_pairs(source.layers, layers)
    if not pairs and not ablation:
        raise LayerError(
            f"the atlas {source.atlas} has one layer only: no unit has a scanned layer below it to take its inputs from",
            hint="rebuild the atlas with more layers (--layers), or ablate this one with --ablation N",
        )
    network, model = source.network, source.network.model
    classes = count_classes(network) if ablation else 0
    ablated = pick_ablation_layers(source.layers, classes, ablation_layers) if ablation else []
    image_list = dataset(manifest, images, labels, labels_from_name)
    sample = _ablation_sample(network, image_list, classes, ablation, seed) if ablation else None
    load = image_loader(image_list, network.preprocess, model)
    index = {path: i for i, path in enumerate(image_list.paths)}
    kept = int(manifest.get("k") or 0)
    per_unit = hits if hits is not None else (kept or None)
    found: list[Any] = []
    direct: tuple[bool, ...] = ()
    kernels: Kernels = {}
    if pairs:
        from convscope.circuits.inputs import circuit_inputs

        tables = {upper.name: hit_table(source.atlas, upper.name, index, per_unit) for _, upper in pairs}
        with progress_bar(desc="circuits", unit="img", disable=not progress, dynamic_ncols=True) as bar:
            found = list(circuit_inputs(model, pairs, tables, load, batch_size=batch_size, progress=_counter(bar)))
        example = load([int(next((t.images[0] for t in tables.values() if len(t)), 0))])
        direct, kernels = pair_kernels(model, pairs, found, top, example)
    done = []
    if sample is not None:
        from convscope.circuits.ablation import ablate

        (images_chosen, classes_chosen), _ = sample
        for layer in ablated:
            with progress_bar(desc=f"ablate {layer.name}", unit="batch", disable=not progress, dynamic_ncols=True) as bar:
                done.append(ablate(model, layer, load, images_chosen, classes_chosen, batch_size=batch_size, seed=seed, progress=_counter(bar)))
    return Circuits(
        inputs=tuple(found), kernels=kernels, direct=direct, ablations=tuple(done), top=top,
        hits=int(per_unit or 0), ablation_info=sample[1] if sample is not None else None, model=dict(manifest.get("model") or {}),
    )


def _counter(bar: Any) -> Callable[..., None]:
    """A ``progress(done[, total])`` callback that shows ``done`` (of ``total``) on ``bar``."""

    def update(done: int, total: int | None = None) -> None:
        if total is not None:
            bar.total = int(total)
        bar.n = int(done)
        bar.refresh()

    return update


def _ablation_sample(network: Any, images: ImageList, classes: int, count: int, seed: int) -> tuple[tuple[np.ndarray, np.ndarray | None], AblationInfo]:
    """The ablation's images ``(N,)`` and their classes (``None``: their predicted classes) and
    how they were chosen: a seeded sample of ``count`` images, of the labelled ones when the
    images are counted by label.

    Raises:
        ConvscopeError: ``count`` is larger than the images there are to sample.
    """
    from convscope.circuits.ablation import sample_images

    with warnings.catch_warnings(record=True) as caught:  # explain's wording ("explaining ..."), said here for the ablation
        warnings.simplefilter("always")
        targets, class_by = class_targets(images, network.class_names, classes, None)
    for warning in caught:
        text = str(warning.message).replace("explaining the predicted classes", "the ablation counts each image for its predicted class")
        text = text.replace("; if it was trained otherwise, use --class-by predicted", "; if it was trained otherwise, give labels that name its classes")
        warnings.warn(text, warning.category, stacklevel=3)
    candidates = np.flatnonzero(np.asarray(targets) >= 0) if class_by == "label" else np.arange(len(images))
    if count > len(candidates):
        what = "labelled images" if class_by == "label" else "images"
        raise ConvscopeError(
            f"an ablation over {count} images needs that many, but {images.root} has {len(candidates)} {what}",
            hint=f"ask for at most --ablation {len(candidates)}",
        )
    picked = candidates[np.asarray(sample_images(len(candidates), count, seed), dtype=np.int64)]
    classes_of = np.asarray(targets, dtype=np.int64)[picked] if class_by == "label" else None
    names = network.class_names or (label_names(images, classes) if class_by == "label" else None)
    return (picked.astype(np.int64), classes_of), AblationInfo(count, seed, class_by, tuple(names) if names else None)
