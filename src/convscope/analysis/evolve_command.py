"""``convscope evolve MODEL IMAGES --checkpoints CKPT [CKPT ...]``: flags in, :func:`evolve` out.

Registered in :mod:`convscope.cli` with two lines::

    evolve_command.add_parser(sub)                                          # in build_parser
    COMMANDS["evolve"] = lambda args: evolve_command.run(args, _network)    # beside COMMANDS

``run`` gets the CLI's own model loader (``network_from_args(args) -> Network``), so the
model and preprocessing flags mean exactly what they mean for ``convscope atlas``; the
parser sets ``weights=None`` (each checkpoint brings its own).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convscope.errors import ConvscopeError

MODEL_HELP = (
    "the model: torchvision:NAME (e.g. torchvision:alexnet), path/to/file.py:factory or "
    "package.module:factory (a function returning an nn.Module), or a TorchScript file"
)


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE or HxW, got {text!r}") from None
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected SIZE or HxW with positive numbers, got {text!r}")
    return (sizes[0], sizes[-1])


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``evolve`` subcommand to ``sub`` (what ``ArgumentParser.add_subparsers()`` returns)."""
    p = sub.add_parser(
        "evolve",
        help="follow units over training checkpoints (Zeiler & Fergus's Figure 4) and how settled each layer is",
        description="Load each of CHECKPOINTS (in training order) into MODEL, scan IMAGES once per checkpoint "
        "(decoded once, kept in memory), and write per layer a figure of chosen units' strongest hit at every "
        "checkpoint (units down, checkpoints across, a red frame where the image changed) and a settle curve "
        "(how much of each unit's top-k images stays between checkpoints).",
    )
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("images", metavar="IMAGES", help="folder of images, searched recursively")
    p.add_argument("--checkpoints", nargs="+", required=True, metavar="CKPT", help="two or more state-dict files (as --weights takes), in training order")
    p.add_argument("--names", nargs="+", metavar="NAME", help="a label per checkpoint for the figures (default: the file names without suffix)")
    p.add_argument("--out", "-o", default="evolve", metavar="FOLDER", help="folder to write (default ./evolve); a previous evolution folder there is replaced atomically")
    p.add_argument("--layers", nargs="+", metavar="NAME", help="layers to follow (as for `convscope atlas`; default: the stem and every block)")
    p.add_argument("--units", nargs="+", metavar="LAYER:UNITS", help="units to show, e.g. features.3:12 or features.3:0-5 (default: per layer the --per-layer clearest, mutually different units of the last checkpoint)")
    p.add_argument("--per-layer", type=_positive, default=6, metavar="N", help="units shown per layer by the default rule (default 6)")
    p.add_argument("-k", type=_positive, default=9, help="hits kept per unit; the settle curve compares these top-k image sets (default 9)")
    p.add_argument("--projection", choices=["deconvnet", "guided", "none"], default="none", help="draw each top hit's projection beside its patch (default none)")
    p.add_argument("--max-images", type=_positive, default=2000, metavar="N", help="images decoded and kept in memory at most; a larger folder is cut to a seeded subsample (default 2000)")
    p.add_argument("--batch-size", type=_positive, default=32, help="images per forward pass (default 32)")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes for the one decoding pass (default 0)")
    g = p.add_argument_group("preprocessing (default: from the torchvision weights' metadata, else ImageNet's 224/256)")
    g.add_argument("--input-size", type=_size, metavar="SIZE|HxW", help="model input size after the crop, e.g. 224 or 32")
    g.add_argument("--resize", type=int, metavar="N", help="resize the short side to N before the centre crop (0: resize straight to the input size)")
    g.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), help="normalisation mean of [0, 1] pixels")
    g.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), help="normalisation std of [0, 1] pixels")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps... (default: cpu)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(weights=None)
    return p


def parse_units(texts: list[str] | None) -> dict[str, list[int]]:
    """``["features.3:12", "features.3:0-2"]`` -> ``{"features.3": [12, 0, 1, 2]}``.

    Example:
        >>> parse_units(["a.b:3", "a.b:5-6", "c:0"])
        {'a.b': [3, 5, 6], 'c': [0]}
    """
    out: dict[str, list[int]] = {}
    for text in texts or []:
        layer, _, units = text.rpartition(":")
        try:
            first, _, last = units.partition("-")
            picked = list(range(int(first), int(last or first) + 1))
        except ValueError:
            picked = []
        if not layer or not picked:
            raise ConvscopeError(f"--units {text!r} is not LAYER:UNIT or LAYER:FIRST-LAST", hint="e.g. --units features.3:12 features.3:0-5")
        out.setdefault(layer, []).extend(picked)
    return out


def run(args: argparse.Namespace, network_from_args: Callable[[argparse.Namespace], Any]) -> Path:
    """Do ``convscope evolve``: returns the folder written."""
    from convscope.analysis.evolve import check_checkpoints, evolve
    from convscope.analysis.evolve_folder import check_evolution_out, write_evolution

    check_checkpoints(args.checkpoints)  # before loading anything: one checkpoint fails at once
    check_evolution_out(Path(args.out))
    network = network_from_args(args)
    evolution = evolve(
        network,
        Path(args.images),
        args.checkpoints,
        layers=args.layers,
        units=parse_units(args.units),
        n_units=args.per_layer,
        k=args.k,
        projection=None if args.projection == "none" else args.projection,
        names=args.names,
        max_images=args.max_images,
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.quiet,
    )
    out = write_evolution(Path(args.out), evolution, {"source": network.source})
    print(f"evolution: {out}\n  figure: {out / 'evolution.png'}\n  settle: {out / 'settle.png'}")
    for layer in evolution.layers:
        numbers = ", ".join("-" if s.topk_overlap is None else f"{s.topk_overlap:.2f}" for s in layer.settle)
        print(f"  {layer.layer}: top-{evolution.k} overlap between checkpoints: {numbers}")
    return out
