"""``convscope explain ATLAS|MODEL IMAGE... [--weights W]``: flags in, :func:`explain` out.

With an atlas folder as the first argument, the atlas supplies the model, its weights (checked
by SHA-256; ``--weights`` says where the file is now if it moved), the preprocessing and the
layers; with a model source, the flags mean what they mean for ``convscope atlas``. Every image
is explained before anything is written, so a bad image, class or layer writes nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convscope.errors import ConvscopeError
from convscope.explain.text import signed_percent


def add_parser(sub: Any, add_model_args: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """Add the ``explain`` subcommand to the CLI's subparsers (``add_model_args``: the CLI's model flags)."""
    p = sub.add_parser(
        "explain",
        help="explain an image's class through its units",
        description="For the predicted class (or --class) of each IMAGE, rank the units of each layer by their "
        "relevance to the class logit (gradient x activation summed over positions, signed, as a share of the "
        "layer's sum of |relevance|; or with --method lrp, LRP with the epsilon-plus-flat composite), draw each top unit's conditional heatmap and activation map, and list the "
        "units that fire most. MODEL may be an atlas folder: it supplies the model, weights, preprocessing and layers. "
        "Writes explanation.json and explanation.png into --out; with an atlas and no --out, into ATLAS/explain/<image name>/, "
        "which the atlas's viewer shows (index.html#/explain/<image name>). Given one FOLDER instead of images, every image is "
        "explained for its class (its label, or its predicted class) and the relevances are averaged per class: each "
        "class's units of highest mean share (classes.json, classes.png); the pass resumes after a crash and runs under torchrun.",
    )
    add_model_args(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files; or one FOLDER of images: per class, the units most relevant on average over its images")
    p.add_argument("--layers", nargs="+", metavar="LAYER", help="layers (default: the atlas's layers, or the model's default layers)")
    p.add_argument("--class", dest="class_", metavar="N|NAME", help="class index or name (default: the predicted class)")
    p.add_argument("--top", type=int, default=10, metavar="N", help="units per layer (default 10)")
    p.add_argument("--region", metavar="TOP,LEFT,BOTTOM,RIGHT", help="also list the units whose receptive fields cover this box (model-input pixels), strongest there first")
    p.add_argument("--method", choices=("gradient", "lrp"), default="gradient",
                   help="relevance: gradient x activation (default; any network) or LRP epsilon-plus-flat "
                   "(conv, linear, ReLU, pooling nets; refused where a module has no rule)")
    p.add_argument("--no-heatmaps", action="store_true", help="skip the conditional heatmaps (faster)")
    p.add_argument("--out", "-o", metavar="DIR", help="folder to write (default: inside the atlas, ATLAS/explain/<image name>/, "
                   "or for a FOLDER ATLAS/explain/classes; with a model, ./explain or ./explain-classes); a previous one is replaced atomically")
    from convscope.explain.classes_command import add_folder_args

    add_folder_args(p)
    return p


def is_atlas(source: str) -> bool:
    """Whether the model argument names an atlas folder."""
    return (Path(source) / "manifest.json").is_file()


def network_from_flags(args: argparse.Namespace, network_from_args: Callable[[argparse.Namespace], Any]) -> tuple[Any, list, dict, Any]:
    """``(network, layers, model section, atlas source or None)`` from an atlas (its model,
    weights, preprocessing and layers) or from the model flags."""
    from convscope.explain.atlas_source import atlas_source
    from convscope.network.layers import select_layers

    if is_atlas(args.model):
        if any(getattr(args, flag, None) for flag in ("input_size", "resize", "mean", "std")):
            raise ConvscopeError("an atlas fixes the preprocessing", hint="leave out --input-size, --resize, --mean and --std")
        source = atlas_source(args.model, args.weights)
        network, infos = source.network, source.pick(args.layers)
        if args.device:
            network.model.to(args.device)
        return network, infos, {**network.describe(), "atlas": str(Path(args.model).absolute())}, source
    network = network_from_args(args)
    return network, select_layers(network.model, args.layers, network.preprocess.input_size), network.describe(), None


def run(args: argparse.Namespace, network_from_args: Callable[[argparse.Namespace], Any]) -> Path:
    """Do ``convscope explain``: returns the folder written (inside an atlas: ``ATLAS/explain``)."""
    if len(args.images) == 1 and Path(args.images[0]).is_dir():  # a folder: every class's units over its images
        from convscope.explain.classes_command import run_classes

        return run_classes(args, lambda: network_from_flags(args, network_from_args), is_atlas(args.model))
    from convscope.explain.api import explain
    from convscope.explain.folder import check_explanation_out, write_explanations
    from convscope.explain.in_atlas import explanations_home, write_in_atlas
    from convscope.explain.region import parse_region

    in_atlas = args.out is None and is_atlas(args.model)
    out = Path(args.out or "explain")
    if in_atlas:
        explanations_home(args.model)  # before the work: a bad ATLAS/explain fails at once
    else:
        check_explanation_out(out.absolute())
    region = parse_region(args.region) if args.region else None
    if args.top < 1:
        raise ConvscopeError(f"--top must be at least 1, got {args.top}", hint="e.g. --top 10")
    network, infos, model, source = network_from_flags(args, network_from_args)
    explanations = [
        explain(source or network, image, layers=infos, target=args.class_, top=args.top, region=region, heatmaps=not args.no_heatmaps,
                method=args.method)
        for image in args.images
    ]
    if in_atlas:
        model = {key: value for key, value in model.items() if key != "class_names"}  # the manifest has them
        folders = write_in_atlas(args.model, explanations, args.images, model)
        written = folders[0].parent
    else:
        folders = [write_explanations(out, explanations, args.images, model)]
        written = folders[0]
    for image, e in zip(args.images, explanations):
        name = e.class_name or f"class {e.target}"
        print(f"{image}: {name} ({e.target}), p={float(e.probabilities[e.target]):.3f}"
              + ("" if e.predicted == e.target else f"; predicted {e.predicted}"))
        for layer in e.layers:
            units = ", ".join(f"{u.unit} {signed_percent(u.share)}" for u in layer.units)
            print(f"  {layer.layer}: {units}")
            if layer.region is not None:
                print(f"    under the region: {', '.join(f'{r.unit} ({r.activation:.3g})' for r in layer.region) or 'none'}")
    for folder in folders:
        print(f"explanation: {folder / 'explanation.json'}")
    if in_atlas:
        index = Path(args.model) / "index.html"
        print("open " + ", ".join(f"{index}#/explain/{folder.name}" for folder in folders))
    return written
