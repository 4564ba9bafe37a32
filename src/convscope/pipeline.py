"""The whole job in one call: model + image folder -> atlas folder."""

from __future__ import annotations

import warnings
from dataclasses import replace
from collections.abc import Sequence
from pathlib import Path

import torch

from convscope.atlas.build import RenderOptions, write_atlas
from convscope.data import ImageDataset, find_images, make_loader
from convscope.errors import ConvscopeError, ConvscopeWarning, DataError
from convscope.network.layers import select_layers
from convscope.network.load import Network, load_network
from convscope.network.preprocess import Preprocess
from convscope.scan.scan import scan


def make_atlas(
    model: str | Network,
    images: str | Path,
    out: str | Path,
    *,
    weights: str | Path | None = None,
    layers: Sequence[str] | None = None,
    k: int = 9,
    preprocess: Preprocess | None = None,
    batch_size: int = 32,
    workers: int = 0,
    device: str | torch.device | None = None,
    projection: str | None = None,
    progress: bool = True,
) -> Path:
    """Scan ``images`` with ``model`` and write the atlas of its units to ``out``.

    Args:
        model: a model source (``torchvision:alexnet``, ``file.py:make``, a TorchScript
            file) or an already loaded :class:`Network`.
        images: a folder of images (recursive; an ImageFolder layout gives labels).
        out: the atlas folder to write (a previous atlas there is replaced).
        weights: weights for a model source (file or torchvision weights name).
        layers: layer names to scan; default: every Conv2d.
        k: hits kept per unit.
        preprocess: overrides the model's preprocessing.
        batch_size, workers: data loading.
        device: where to run (default: where the model is).
        projection: ``"deconvnet"``, ``"guided"`` or ``None``.

    Returns:
        The atlas folder.

    Example:
        >>> make_atlas("torchvision:alexnet", "photos/", "atlas/", weights="alexnet.pth")  # doctest: +SKIP
    """
    if k < 1:
        raise ConvscopeError(f"k must be at least 1, got {k}", hint="pass -k 9 for the lecture's 3x3 grids")
    if batch_size < 1:
        raise ConvscopeError(f"batch size must be at least 1, got {batch_size}")
    network = model if isinstance(model, Network) else load_network(model, weights, preprocess=preprocess)
    if isinstance(model, Network) and preprocess is not None:
        network = replace(network, preprocess=preprocess)
    if device is not None:
        network.model.to(device)
    image_list = find_images(Path(images))
    infos = select_layers(network.model, layers, network.preprocess.input_size)
    loader = make_loader(ImageDataset(image_list, network.preprocess), batch_size=batch_size, workers=workers)
    result = scan(
        network.model,
        [(info.name, info.units) for info in infos],
        loader,
        network.preprocess.normalize,
        k=k,
        total=len(image_list.paths),
        progress=progress,
    )
    if result.image_count == 0:
        reasons = "; ".join(f"{image_list.paths[i]}: {r}" for i, r in result.failed[:3])
        raise DataError(f"no image in {images} could be read ({reasons})", hint="check the files open in an image viewer")
    skipped = len(image_list.skipped) + len(result.failed)
    if skipped:
        warnings.warn(f"{skipped} files were skipped (listed in the atlas manifest)", ConvscopeWarning, stacklevel=2)
    if result.image_count < k:
        warnings.warn(
            f"only {result.image_count} images were scanned, fewer than k={k}: units get {result.image_count} hits",
            ConvscopeWarning,
            stacklevel=2,
        )
    return write_atlas(
        Path(out), network, image_list, infos, result, k=k, options=RenderOptions(projection=projection), progress=progress
    )
