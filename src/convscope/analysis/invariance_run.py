"""The invariance job in one call (:func:`run_invariance`) and its folder (:func:`write_invariance`).

The folder holds ``invariance.png`` (:func:`~convscope.analysis.plots.invariance_figure`) and
``invariance.json`` (:meth:`Invariance.to_dict` plus the model and the sweeps); each file is
written under a temporary name and renamed; existing files are refused unless ``force``.
``convscope invariance --atlas ATLAS`` writes the folder as ``ATLAS/invariance`` (the atlas viewer
shows it: its record says ``"format": "convscope-invariance"``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

from convscope.analysis.invariance import Invariance, invariance
from convscope.analysis.invariance_inputs import choose_images, class_index, load_frame
from convscope.analysis.plots import invariance_figure
from convscope.analysis.transforms import default_sweeps, max_shift
from convscope.atlas.writer import write_json, write_png_atomic
from convscope.errors import ConvscopeError, ConvscopeWarning
from convscope.network.load import Network


def run_invariance(
    network: Network,
    images: str | Path | Sequence[str | Path],
    *,
    count: int = 5,
    labels_from_name: str | None = None,
    unit: tuple[str, int] | None = None,
    shift: int | None = None,
    pairs: int = 20,
    seed: int = 0,
    progress: bool = True,
) -> Invariance:
    """Figure 5's protocol on ``count`` images of a folder (or the given files).

    Example:
        >>> result = run_invariance(load_network("torchvision:alexnet"), "photos/")  # doctest: +SKIP
        >>> result.mean_consistency  # doctest: +SKIP
    """
    shift = max_shift(network.preprocess.input_size) if shift is None else shift
    if shift < 1 or shift >= min(network.preprocess.input_size):
        raise ConvscopeError(f"the shift must be 1..{min(network.preprocess.input_size) - 1} px, got {shift}", hint="leave out --max-shift for the paper's 27% of the side")
    files, folder_classes = choose_images(images, count, labels_from_name)
    inputs = []
    for path, text in files:
        pixels = load_frame(network, path, shift)
        label = class_index(network, text, folder_classes)
        if text is not None and label is None:
            warnings.warn(f"{path}: class {text!r} is not one of the model's classes; no probability curve", ConvscopeWarning, stacklevel=2)
        inputs.append((str(path), pixels, label))
    bar = None
    if progress:
        from convscope.progress import progress_bar

        bar = progress_bar(total=len(inputs), desc="invariance", unit="image")
    try:
        return invariance(network, inputs, default_sweeps(network.preprocess.input_size, shift), shift=shift, unit=unit, pairs=pairs, seed=seed, progress=bar.update if bar else None)
    finally:
        if bar:
            bar.close()


def check_invariance_out(out: str | Path, force: bool = False) -> tuple[Path, Path]:
    """``(out/invariance.png, out/invariance.json)``, refused if either exists without ``force``
    (call it before the sweeps, so that a wrong ``--out`` fails at once).

    Raises:
        ConvscopeError: a file exists and ``force`` is not set.
    """
    out = Path(out)
    picture, record = out / "invariance.png", out / "invariance.json"
    for path in (picture, record):
        if path.exists() and not force:
            raise ConvscopeError(f"{path} exists", hint="pass --force to overwrite it, or choose another --out or --atlas")
    return picture, record


def write_invariance(result: Invariance, out: str | Path, *, model: str = "", force: bool = False) -> Path:
    """Write ``out/invariance.png`` and ``out/invariance.json``; returns ``out``.

    Raises:
        ConvscopeError: a file exists and ``force`` is not set.
    """
    out = Path(out)
    picture, record = check_invariance_out(out, force)
    write_png_atomic(picture, invariance_figure(result, model))
    tmp = record.with_name(".invariance.json.partial")
    write_json(tmp, {"format": "convscope-invariance", "version": 1, "model": model, **result.to_dict()})
    tmp.replace(record)
    return out
