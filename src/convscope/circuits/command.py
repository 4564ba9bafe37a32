"""``convscope circuits ATLAS``: flags in, :func:`make_circuits` and :func:`write_circuits` out.

Computes an atlas's circuits and writes them into it (``ATLAS/circuits/``, which its viewer
then shows at ``index.html#/circuit/<layer>/<unit>``). ``convscope atlas ... --circuits`` calls
:func:`circuits_into_atlas` right after the atlas is written. Everything is computed before
anything is written, so bad input (an unknown layer, a sample larger than the data, the data
set gone) writes nothing.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convscope.circuits.result import Circuits

#: The example unit's inputs printed per pair.
SHOWN_INPUTS = 3


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``circuits`` subcommand to the CLI's subparsers."""
    p = sub.add_parser(
        "circuits",
        help="units' inputs from the layer below, and ablation",
        description="For each scanned layer of ATLAS (or --layers), every unit's inputs from the scanned layer before it: "
        "each lower unit's contribution (gradient x activation) to the unit's activation at its top hits, as a signed share; "
        "where one convolution connects the two layers, also the kernels. With --ablation N, each unit of the ablation layers "
        "(default: the last one before the logits) is zeroed on N sampled images and the drop of every class's logit recorded, "
        "with Bau et al.'s test (a class's top units zeroed together against as many random units). Writes ATLAS/circuits/, "
        "which the atlas's viewer shows (index.html#/circuit/<layer>/<unit>).",
    )
    p.add_argument("atlas", metavar="ATLAS", help="the atlas folder (its model, weights, layers, hits and images are used)")
    add_circuit_args(p)
    p.add_argument("--layers", nargs="+", metavar="NAME", help="the upper layers (default: every scanned layer but the first), each paired with the scanned layer before it")
    p.add_argument("--hits", type=int, metavar="K", help="hits per unit to average the inputs over (default: all the atlas keeps)")
    p.add_argument("--top", type=int, default=8, metavar="N", help="inputs listed per unit and sign (default 8)")
    p.add_argument("--ablation-layers", nargs="+", metavar="NAME", help="the layers to ablate (default: the last scanned layer that is not the logits)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the ablation's image sample and random units (default 0)")
    p.add_argument("--images", metavar="FOLDER", help="the images the atlas was scanned from, if they moved (default: the manifest's dataset root)")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--labels", metavar="CSV", help="the images' classes from a CSV file of path,label rows (default: their folders)")
    labels.add_argument("--labels-from-name", metavar="REGEX", help="the images' classes from their file names (a regex's first group), e.g. '^(n\\d+)_' for ImageNet's n01440764_tench.jpg: its wnids, in sorted order torchvision's classes")
    p.add_argument("--batch-size", type=int, default=32, metavar="B", help="hits or images per forward pass (default 32)")
    p.add_argument("--weights", metavar="FILE", help="where the atlas's weights file is now, if it moved (checked by SHA-256)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    return p


def add_circuit_args(p: argparse.ArgumentParser) -> None:
    """The flag that ``convscope circuits`` and ``convscope atlas --circuits`` share."""
    p.add_argument("--ablation", type=int, default=0, metavar="N", help="zero each unit of the ablation layers on N images sampled from the data set (default 0: no ablation)")


def run(args: argparse.Namespace) -> Path:
    """Do ``convscope circuits ATLAS``: returns the folder written."""
    return circuits_into_atlas(
        args.atlas, layers=args.layers, hits=args.hits, top=args.top, ablation=args.ablation, ablation_layers=args.ablation_layers,
        seed=args.seed, images=args.images, labels=args.labels, labels_from_name=args.labels_from_name, batch_size=args.batch_size,
        weights=args.weights, progress=not args.quiet,
    )


def circuits_into_atlas(atlas: str | Path, **options: Any) -> Path:
    """Compute the circuits of ``atlas`` (:func:`~convscope.circuits.api.make_circuits` with
    ``options``), write them into it, print a summary and the viewer's link; returns the folder."""
    from convscope.circuits.api import make_circuits
    from convscope.circuits.folder import write_circuits

    circuits = make_circuits(atlas, **options)
    written = write_circuits(atlas, circuits)
    for line in summary(circuits):
        print(line)
    example = _example(circuits)
    print(f"circuits: {written}")
    if example is not None:
        print(f"  viewer: {Path(atlas).absolute() / 'index.html'}#/circuit/{example[0]}/{example[1]}")
    return written


def _example(circuits: "Circuits") -> tuple[str, int] | None:
    """A unit to show: the first pair's unit with the strongest mean activation."""
    if not circuits.inputs:
        return None
    first = circuits.inputs[0]
    return first.layer, int(first.activations.argmax()) if len(first.activations) else 0


def summary(circuits: "Circuits") -> list[str]:
    """The lines the command prints: per pair one unit's top inputs; per ablation layer Bau's test.

    Example:
        >>> import numpy as np
        >>> from convscope.circuits.inputs import LayerInputs
        >>> from convscope.circuits.result import Circuits
        >>> found = LayerInputs("b", "a", np.array([[2.0, -3.0], [1.0, 0.0]]), np.array([1.0, 5.0]), np.array([9, 9]), "crop")
        >>> summary(Circuits((found,), {}, (True,), (), top=8, hits=9))
        ['b <- a (crop, one convolution): unit 1 (9 hits) excited by 0 +100%; inhibited by none']
    """
    lines = []
    for found, direct in zip(circuits.inputs, circuits.direct or (False,) * len(circuits.inputs)):
        unit = int(found.activations.argmax()) if len(found.activations) else 0
        how = f"{found.method}, one convolution" if direct else found.method
        pos, neg = (", ".join(f"{c} {100 * share:+.0f}%" for c, share, _ in found.top(unit, SHOWN_INPUTS, sign)) or "none" for sign in (1, -1))
        lines.append(f"{found.layer} <- {found.below} ({how}): unit {unit} ({int(found.hits[unit])} hits) excited by {pos}; inhibited by {neg}")
    info = circuits.ablation_info
    for found in circuits.ablations:
        beats = float(found.top_beats_random)
        shown = f"{100 * beats:.0f}%" if math.isfinite(beats) else "no class"
        by = f", {info.images} images by {'label' if info.class_by == 'label' else 'predicted class'}" if info else ""
        lines.append(f"ablation of {found.layer}{by}: zeroing a class's top {found.bau_n} units lowers its logit more than {found.bau_n} random units for {shown} of the classes")
    return lines
