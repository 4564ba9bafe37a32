"""``convscope demo``: train the demo network (or load it from the cache) and build its atlas.

Beside the atlas, in ``<atlas>/evolution/``, it writes the evolution of the demo network's
units over its training checkpoints (Zeiler & Fergus's Figure 4, see
:mod:`convscope.analysis.evolve`), from the checkpoints the training kept (no extra training),
and refreshes the atlas's viewer so that it shows them (``index.html#/evolution``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from convscope.analysis.evolve import evolve
from convscope.analysis.evolve_folder import write_evolution
from convscope.analysis.in_atlas import refresh_viewer
from convscope.atlas.writer import check_out
from convscope.demo.model import CONV_LAYERS, TinyAlexNet
from convscope.demo.photos import export_tiles
from convscope.demo.train import train_demo
from convscope.network.network import Network
from convscope.network.weights import file_sha256
from convscope.pipeline import make_atlas

#: The demo scan's input: the photos' 96-pixel tiles, as they are.
TILE = 96


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/convscope`` or ``~/.cache/convscope``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convscope"


def demo_source(num_classes: int) -> str:
    """The model source that rebuilds the demo network, for ``convscope atlas`` or ``evolve``.

    Example:
        >>> demo_source(18)
        'convscope.demo:TinyAlexNet(num_classes=18)'
    """
    return f"convscope.demo:TinyAlexNet(num_classes={num_classes})"


def run_demo(
    out: Path,
    *,
    data: Path | None = None,
    cache_dir: Path | None = None,
    projection: str | None = "deconvnet",
    progress: bool = True,
) -> Path:
    """Train (or load) the demo network, scan its images and write the atlas to ``out``.

    Without ``data``, the network learns the Exemplar-CNN task on scikit-image's photos
    and the scan reads those photos cut into 96-pixel tiles; with ``data`` (an
    ImageFolder), it learns the folder's labels and scans the folder itself.

    Returns:
        The atlas folder (the evolution over training in its ``evolution`` folder).
    """
    check_out(out)  # a bad --out fails now, not after the training
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    result = train_demo(cache_dir, data, progress=progress)
    preprocess = result.preprocess
    if data is None:
        images = cache_dir / f"tiles-{TILE}-v2"
        if not (images / ".complete").is_file():
            export_tiles(images, size=TILE)
            (images / ".complete").write_text("")
        preprocess = replace(preprocess, input_size=(TILE, TILE), resize=TILE)
    else:
        images = Path(data)
    network = Network(
        model=result.model,
        source=demo_source(len(result.class_names or ())),
        preprocess=preprocess,
        weights=str(result.weights),
        weights_sha256=file_sha256(result.weights),
        class_names=result.class_names,
        training=result.training,
    )
    atlas = make_atlas(network, images, out, layers=list(CONV_LAYERS), k=9, projection=projection, progress=progress)
    evolution = None
    if len(result.checkpoints) >= 2:
        # A model of its own: evolve loads every checkpoint into it in turn.
        fresh = replace(network, model=TinyAlexNet(len(result.class_names or ())).eval())
        steps = evolve(
            fresh,
            images,
            [path for _, path in result.checkpoints],
            layers=list(CONV_LAYERS),
            k=9,
            projection=projection,
            names=[f"step {step}" for step, _ in result.checkpoints],
            progress=progress,
        )
        evolution = write_evolution(atlas / "evolution", steps, network.describe())
        refresh_viewer(atlas)  # the viewer shows the evolution (its route #/evolution)
    training = result.training
    print(
        f"demo network: {training['task']} task, {training['steps']} steps, "
        f"accuracy {training['accuracy_held_out_crops']:.1%} on held-out crops"
    )
    print(f"atlas:    {atlas}\noverview: {atlas / 'overview.png'}\nviewer:   {atlas / 'index.html'}")
    if evolution is not None:
        print(f"training: {evolution / 'evolution.png'}\nsettling: {evolution / 'settle.png'}\nin the viewer: {atlas / 'index.html'}#/evolution")
    return atlas
