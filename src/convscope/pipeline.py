"""Each job in one call: model + image folder -> atlas folder; model + image -> occlusion map."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from convscope.atlas.build import RenderOptions, serve_atlas, write_atlas
from convscope.atlas.deal import Deal
from convscope.atlas.writer import check_out
from convscope.data import ImageList, default_workers, failure_reason, image_source, open_rgb, take, with_labels
from convscope.errors import ConvscopeError, ConvscopeWarning, DataError
from convscope.network.device import model_device
from convscope.network.geometry import Box
from convscope.network.layers import LayerInfo, select_layers
from convscope.network.load import Network, load_network
from convscope.network.preprocess import Preprocess
from convscope.project.occlusion import ClassTarget, UnitTarget, occlusion_map, render_occlusion, target_values
from convscope.scan import distributed
from convscope.scan.job import ScanJob, remove_states, run_scan
from convscope.scan.scan import ScanResult
from convscope.stats.quantiles import DEFAULT_BUDGET


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
    workers: int | None = None,
    device: str | torch.device | None = None,
    projection: str | None = None,
    occlusion: bool = False,
    grids: bool = False,
    featurevis: int = 0,
    labels: str | Path | None = None,
    labels_from_name: str | None = None,
    progress: bool = True,
    resume: bool = True,
    checkpoint_every: int | None = None,
    root: str | Path | None = None,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
    precision: str = "float32",
    channels_last: bool = False,
    quantile_budget: int = DEFAULT_BUDGET,
) -> Path:
    """Scan ``images`` with ``model`` and write the atlas of its units to ``out``.

    Under ``torchrun`` (or in a process group the caller made) every process scans its
    shard of the images, the shards are merged exactly on rank 0, every rank computes its
    share of the units' pictures (pass 2), and rank 0 writes the atlas: the same atlas one
    process writes (see :mod:`convscope.scan.distributed` and :mod:`convscope.atlas.deal`).

    Args:
        model: a model source (``torchvision:alexnet``, ``file.py:make``, a TorchScript
            file) or an already loaded :class:`Network`.
        images: a folder of images (recursive; an ImageFolder layout gives labels), or a
            text file listing image paths, one per line, relative to ``root`` (default: the
            file's folder), in the order to scan them.
        out: the atlas folder to write (a previous atlas there is replaced).
        weights: weights for a model source (file or torchvision weights name).
        layers: layer names, globs or keywords to scan (as ``convscope atlas --layers``); default: the
            stem and every block (:func:`~convscope.network.layers.default_layers`).
        k: hits kept per unit.
        preprocess: overrides the model's preprocessing.
        batch_size: images per batch.
        workers: loader worker processes (``None``: :func:`~convscope.data.default_workers`,
            none on a CPU, the machine's CPUs shared out on a GPU).
        device: where to run (default: where the model is).
        projection: ``"deconvnet"``, ``"guided"`` or ``None``.
        occlusion: add an occlusion map of each unit's top hit (slow: ~50 forward
            passes per unit).
        grids: also write every unit's patch grid PNG and every layer's mosaic (for
            papers and slides); the viewer does not need them.
        featurevis: optimise an image for every unit with this many steps (0: none;
            128 is a good default), drawn left of its patches (see :mod:`convscope.featurevis`).
        labels: a CSV file of ``path,label`` rows giving the images' classes (instead
            of an ImageFolder's folders).
        labels_from_name: a regular expression whose
            first group (or group ``label``) in each file name is its class, e.g.
            ``'^(n\\d+)_'`` for ImageNet's ``n01440764_tench.jpg``. With labels, every
            unit gets class means, a selectivity, a purity and a suggested label.
        resume: go on from the state an interrupted run of the same job saved
            beside ``out`` (one file per rank); False starts afresh and removes that state.
        checkpoint_every: images between two saves of that state (default 2000).
        limit: scan only the first ``limit`` images, to try a big data set quickly.
        sample: scan only ``sample`` images drawn at random with ``seed`` (kept in image order).
        seed: the seed of ``sample``.
        precision: the scan's forward passes in ``"float32"`` (the model's own type) or,
            under autocast, ``"bfloat16"`` / ``"float16"``: faster on GPUs, and some units'
            top hits change (measured in docs/guides/precision.md); the pictures of pass 2 stay in float32.
        channels_last: scan with the model in channels-last memory (faster convolutions on
            GPUs, the same hits up to the kernels' rounding).
        quantile_budget: values each unit's quantiles keep per process: exact up to that many
            images, then a sketch (rank error under 0.1% at the default 8192); memory about
            ``4 * quantile_budget`` bytes per unit.

    Returns:
        The atlas folder.

    Example:
        >>> make_atlas("torchvision:alexnet", "photos/", "atlas/", weights="alexnet.pth")  # doctest: +SKIP
    """
    if k < 1:
        raise ConvscopeError(f"k must be at least 1, got {k}", hint="pass -k 9 for the lecture's 3x3 grids")
    if batch_size < 1:
        raise ConvscopeError(f"batch size must be at least 1, got {batch_size}")
    if projection not in (None, "deconvnet", "guided"):
        raise ConvscopeError(f"unknown projection {projection!r}", hint="use 'deconvnet', 'guided' or None")
    check_out(Path(out))  # before the scan: a folder that is not ours fails now, not an hour later
    network = model if isinstance(model, Network) else load_network(model, weights, preprocess=preprocess)
    if isinstance(model, Network) and preprocess is not None:
        network = replace(network, preprocess=preprocess)
    device = distributed.rank_device(device)
    if device is not None:
        network.model.to(device)
    image_list = take(with_labels(image_source(images, root), labels, labels_from_name), limit, sample, seed)
    infos = select_layers(network.model, layers, network.preprocess.input_size)
    runs_on = model_device(network.model)
    if workers is None:
        workers = default_workers(runs_on, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    job = ScanJob(k, batch_size, workers, resume, checkpoint_every, progress, precision, channels_last, quantile_budget)
    options = RenderOptions(projection=projection, occlusion=occlusion, grids=grids, featurevis=featurevis)
    with distributed.process_group(runs_on) as group:
        result = distributed.share(run_scan(network, image_list, infos, Path(out), job, group), group)
        deal = Deal(group)
        error = None
        try:
            if result.image_count == 0:  # on every rank
                reasons = "; ".join(f"{image_list.paths[i]}: {r}" for i, r in result.failed[:3])
                raise DataError(f"no image in {image_list.root} could be read ({reasons})", hint="check the files open in an image viewer")
            if deal.writes:
                _write(Path(out), network, image_list, infos, result, job, options, deal)
            else:
                serve_atlas(network, image_list, infos, result, k=k, options=options, deal=deal)
        except Exception as exc:  # told to the other ranks before it is raised here
            error = exc
        deal.finish(error)
        distributed.agree(group, error, "writing the atlas")
        if deal.writes:
            remove_states(Path(out))
    return Path(out)


def _write(
    out: Path, network: Network, image_list: ImageList, infos: Sequence[LayerInfo], result: ScanResult, job: ScanJob,
    options: RenderOptions, deal: Deal,
) -> Path:
    """Warn about what the scan found, then write the atlas (rank 0's part of :func:`make_atlas`)."""
    skipped = len(image_list.skipped) + len(result.failed)
    if skipped:
        warnings.warn(f"{skipped} files were skipped (listed in the atlas manifest)", ConvscopeWarning, stacklevel=2)
    nonfinite = {name: int(layer.nonfinite.sum()) for name, layer in result.layers.items() if layer.nonfinite.any()}
    if nonfinite:
        warnings.warn(
            "NaN or infinite activations were left out of the hits and means ("
            + ", ".join(f"{name}: {count}" for name, count in nonfinite.items())
            + "; counted per layer in the manifest)",
            ConvscopeWarning,
            stacklevel=2,
        )
    if result.image_count < job.k:
        warnings.warn(
            f"only {result.image_count} images were scanned, fewer than k={job.k}: units get {result.image_count} hits",
            ConvscopeWarning,
            stacklevel=2,
        )
    if options.projection == "deconvnet" and not _has_max_pooling(network.model):
        warnings.warn(
            "the model has no nn.MaxPool2d: deconvnet projections depend on the image only through "
            "max-pooling switches, so a unit's projections at one position are the same picture for "
            "every image; --projection guided depends on the image",
            ConvscopeWarning,
            stacklevel=2,
        )
    return write_atlas(
        out, network, image_list, infos, result, k=job.k, options=options, progress=job.progress, deal=deal, settings=job.settings
    )


def _has_max_pooling(model: torch.nn.Module) -> bool:
    return any(
        isinstance(m, torch.nn.MaxPool2d) or getattr(m, "original_name", None) == "MaxPool2d" for m in model.modules()
    )


@dataclass(frozen=True)
class Occlusion:
    """An occlusion experiment on one image (Zeiler & Fergus 2014, Fig. 7).

    Attributes:
        picture: ``uint8 (H, W, 3)`` the model-input image with the drop drawn over it.
        values: ``(rows, cols)`` the target's value with the square at each position.
        baseline: the target's value on the intact image.
        worst: the box ``[top, left, bottom, right)`` of the square that lowered it most.
    """

    picture: np.ndarray
    values: torch.Tensor
    baseline: float
    worst: Box


def occlude(
    network: Network, image: str | Path, target: UnitTarget | ClassTarget, *, size: int | None = None, stride: int | None = None
) -> Occlusion:
    """Slide a grey square (the mean colour) over ``image`` and record ``target``.

    Args:
        network: the model with its preprocessing.
        image: an image file; it is brought into the model-input frame.
        target: a unit (its strongest activation) or a class (its probability).
        size: the square's side in model-input pixels (default: a seventh of the input).
        stride: pixels between square positions (default: a quarter of ``size``).

    Example:
        >>> result = occlude(load_network("torchvision:alexnet"), "cat.jpg", ClassTarget(281))  # doctest: +SKIP
        >>> result.worst  # doctest: +SKIP
        Box(top=64, left=96, bottom=96, right=128)
    """
    path = Path(image)
    try:
        frame = network.preprocess.to_model_frame(open_rgb(path))
    except Exception as exc:
        raise DataError(f"cannot read image {path}: {failure_reason(exc)}", hint="give a readable image file") from None
    pixels = np.array(frame, dtype=np.uint8)  # a writable copy for torch
    size = size or max(1, min(network.preprocess.input_size) // 7)
    stride = stride or max(1, size // 4)
    x = network.model_input(torch.from_numpy(pixels).permute(2, 0, 1)[None])
    values = occlusion_map(network.model, x, target=target, size=size, stride=stride)
    baseline = float(target_values(network.model, x, target)[0])
    row, col = divmod(int(torch.argmin(values)), values.shape[1])
    worst = Box(row * stride, col * stride, row * stride + size, col * stride + size)
    picture = render_occlusion(pixels, values, size, stride, baseline=baseline)
    return Occlusion(picture, values, baseline, worst)
