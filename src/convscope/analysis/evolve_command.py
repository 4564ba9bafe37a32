"""``convscope evolve MODEL IMAGES --checkpoints CKPT [CKPT ...]``: flags in, :func:`evolve` out.

The flags are defined in :mod:`convscope.cli` with the other commands'; ``run`` gets the
CLI's own model loader (``network_from_args(args) -> Network``), so the model and
preprocessing flags mean exactly what they mean for ``convscope atlas``; there is no
``--weights`` (each checkpoint brings its own). With ``--atlas ATLAS`` (instead of ``--out``)
the folder is ``ATLAS/evolution`` and the atlas's viewer is refreshed to show it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convscope.errors import ConvscopeError

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
    from convscope.analysis.in_atlas import analysis_folder, refresh_viewer

    check_checkpoints(args.checkpoints)  # before loading anything: one checkpoint fails at once
    target = analysis_folder(args.atlas, "evolution") if args.atlas else Path(args.out or "evolve")
    check_evolution_out(target)
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
    out = write_evolution(target, evolution, {"source": network.source})
    print(f"evolution: {out}\n  figure: {out / 'evolution.png'}\n  settle: {out / 'settle.png'}")
    if args.atlas:
        print(f"  viewer: {refresh_viewer(args.atlas)}#/evolution")
    for layer in evolution.layers:
        numbers = ", ".join("-" if s.topk_overlap is None else f"{s.topk_overlap:.2f}" for s in layer.settle)
        print(f"  {layer.layer}: top-{evolution.k} overlap between checkpoints: {numbers}")
    return out
