"""``convscope explain ATLAS|MODEL FOLDER``: flags in, :func:`explain_classes` and :func:`write_classes` out.

The output goes to ``--out``, by default ``ATLAS/explain/classes`` beside the atlas's other
explanations, or ``./explain-classes`` without an atlas. The pass's state is saved beside it
(``.classes.classes.pt``) every ``--checkpoint-every`` images; the same command resumes it, and
it is removed once the folder is written. A folder written into the atlas's ``explain/`` is listed
by its viewer (rewritten then). Under ``torchrun`` every rank explains its shard and
rank 0 writes.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convscope.errors import ConvscopeError
from convscope.explain.text import signed_percent


def add_folder_args(p: argparse.ArgumentParser) -> None:
    """The flags of the folder mode (``convscope explain MODEL FOLDER``)."""
    g = p.add_argument_group("with a FOLDER of images (per class, the units most relevant on average)")
    g.add_argument("--class-by", choices=["label", "predicted"], help="each image's class: its label (folders of an ImageFolder layout, --labels or --labels-from-name, mapped onto the model's classes by name, by index, or in sorted order when there are as many) or its predicted class (default: the label where the labels map, else predicted)")
    labels = g.add_mutually_exclusive_group()
    labels.add_argument("--labels", metavar="CSV", help="the images' classes from a CSV file of path,label rows")
    labels.add_argument("--labels-from-name", metavar="REGEX", help="the images' classes from their file names, e.g. '^n\\d+_(.+)\\.' for ImageNet's n01440764_tench.jpg (class names) or '^(n\\d+)_' (wnids, in sorted order)")
    g.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per forward and backward pass (default 32)")
    g.add_argument("--workers", type=int, default=None, help="data-loading worker processes (default as for convscope atlas)")
    g.add_argument("--limit", type=int, metavar="N", help="only the first N images")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    g.add_argument("--no-resume", action="store_true", help="start afresh: ignore the state an interrupted run saved beside --out")
    g.add_argument("--checkpoint-every", type=int, metavar="N", help="images between two saves of the state a rerun resumes from (default 2000)")


def default_out(model: str, is_atlas: bool) -> Path:
    """``ATLAS/explain/classes`` for an atlas, else ``./explain-classes``."""
    return Path(model) / "explain" / "classes" if is_atlas else Path("explain-classes")


def run_classes(args: argparse.Namespace, network_from_flags: Callable[[], tuple[Any, list, dict, Any]], atlas: bool) -> Path:
    """Do ``convscope explain MODEL FOLDER``: returns the folder written (on every rank).

    Args:
        network_from_flags: gives ``(network, layers, model section, atlas source)`` (from the
            atlas or the model flags, see :func:`convscope.explain.command.network_from_flags`).
        atlas: whether ``args.model`` is an atlas folder.
    """
    from convscope.atlas.viewer import write_viewer
    from convscope.explain.classes import explain_classes
    from convscope.explain.classes_folder import FIGURE, RECORD, check_classes_out, figure_layer, write_classes
    from convscope.data import image_source, with_labels
    from convscope.scan import distributed
    from convscope.scan.job import remove_states

    given = [flag for flag, value in (("--class", args.class_), ("--region", args.region), ("--no-heatmaps", args.no_heatmaps)) if value]
    if given:
        raise ConvscopeError(f"{', '.join(given)} go with image files, not with a folder", hint="leave them out, or name the images")
    if args.top < 1:
        raise ConvscopeError(f"--top must be at least 1, got {args.top}", hint="e.g. --top 10")
    out = Path(args.out) if args.out else default_out(args.model, atlas)
    check_classes_out(out.absolute())  # before the pass: a folder that is not ours fails now
    images = with_labels(image_source(args.images[0]), args.labels, args.labels_from_name)
    network, infos, model, _ = network_from_flags()
    device = distributed.rank_device(args.device)
    if device is not None:
        network.model.to(device)
    result = explain_classes(
        network, images, layers=infos, top=args.top, class_by=args.class_by, batch_size=args.batch_size, workers=args.workers,
        out=out, resume_saved=not args.no_resume, checkpoint_every=args.checkpoint_every, progress=not args.quiet, limit=args.limit,
        method=args.method,
    )
    if result is None or int(os.environ.get("RANK", "0")) > 0:  # another process of a torchrun job: rank 0 writes
        return out.absolute()
    failed = [[images.paths[i], reason] for i, reason in result.failed]
    written = write_classes(out, result, model, atlas=args.model if atlas else None, failed=failed)
    remove_states(out, "classes")
    shown = atlas and written.parent.resolve() == (Path(args.model) / "explain").resolve()
    if shown:  # inside the atlas: its viewer lists the folder
        write_viewer(Path(args.model))
    by = "their labels" if result.class_by == "label" else "their predicted classes"
    print(f"{result.image_count} images by {by}, {len(result.classes)} classes" + (f"; {len(failed)} could not be read" if failed else ""))
    layer = figure_layer(result)
    for k in [None, *result.classes[:5]]:
        name = "all images" if k is None else (f"{result.class_name(k)} ({k})" if result.class_name(k) else f"class {k}")
        units = ", ".join(f"{u.unit} {signed_percent(u.mean_share)}" for u in result.top_units(layer, k, 5))
        print(f"  {name}, {layer}: {units}")
    print(f"classes: {written / RECORD}\n  figure: {written / FIGURE}")
    if shown:
        print(f"  viewer: {Path(args.model).absolute() / 'index.html'}#/explain/{written.name}")
    return written
