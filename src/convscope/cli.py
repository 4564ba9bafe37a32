"""The ``convscope`` command: flags in, calls to the Python API out; no logic of its own."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from convscope.version import __version__
from convscope.analysis import evolve_command
from convscope.cli_help import Formatter, Parser, add_examples
from convscope.circuits import command as circuits_command
from convscope.explain import command as explain_command
from convscope.errors import ConvscopeError, ConvscopeWarning
from convscope.network.preprocess import DECODERS
from convscope.scan.job import PRECISIONS
from convscope.stats.quantiles import DEFAULT_BUDGET

MODEL_HELP = (
    "the model: torchvision:NAME (e.g. torchvision:alexnet), path/to/file.py:factory or "
    "package.module:factory (a function returning an nn.Module), or a TorchScript file"
)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE or HxW, got {text!r}") from None
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected SIZE or HxW with positive numbers, got {text!r}")
    return (sizes[0], sizes[-1])


def _add_model_args(p: argparse.ArgumentParser, *, weights: bool = True) -> None:
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    if not weights:  # the command brings its own weights (evolve: one file per checkpoint)
        p.set_defaults(weights=None)
    else:
        p.add_argument("--weights", metavar="FILE|NAME", help="a state-dict file (loaded with weights_only=True; a 'state_dict' key and a 'module.' prefix are handled), or a torchvision weights name such as DEFAULT or IMAGENET1K_V1 (downloads through torch's cache)")
    g = p.add_argument_group("preprocessing (default: from the torchvision weights' metadata, else ImageNet's 224/256)")
    g.add_argument("--input-size", type=_size, metavar="SIZE|HxW", help="model input size after the crop, e.g. 224 or 32")
    g.add_argument("--resize", type=int, metavar="N", help="resize the short side to N before the centre crop (0: resize straight to the input size)")
    g.add_argument("--mean", type=float, nargs=3, metavar=("R", "G", "B"), help="normalisation mean of [0, 1] pixels")
    g.add_argument("--std", type=float, nargs=3, metavar=("R", "G", "B"), help="normalisation std of [0, 1] pixels")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps... (default: cpu)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="convscope",
        formatter_class=lambda prog: Formatter(prog, max_help_position=20),
        description="See what every hidden unit of a trained ConvNet has learned.",
    )
    parser.add_argument("--version", action="version", version=f"convscope {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("atlas", help="scan images and write the atlas of every unit", description="Scan IMAGES with MODEL; for every unit of the chosen layers keep the k image patches that activate it most, cropped to its receptive field, and write them as an atlas folder (the winning images, every unit's hits, overview.png, the viewer index.html, manifest.json; --grids adds a PNG grid per unit and a mosaic per layer).")
    _add_model_args(p)
    p.add_argument("images", metavar="IMAGES", help="folder of images, searched recursively (an ImageFolder layout, one folder per class, gives labels), or a text file listing image paths one per line, relative to --root")
    p.add_argument("--out", "-o", required=True, metavar="ATLAS", help="atlas folder to write; a previous atlas there is replaced atomically")
    p.add_argument("--root", metavar="FOLDER", help="the folder the paths of an IMAGES list file are relative to (default: the list file's folder)")
    subset = p.add_mutually_exclusive_group()
    subset.add_argument("--limit", type=_positive, metavar="N", help="scan only the first N images (in image order)")
    subset.add_argument("--sample", type=_positive, metavar="N", help="scan N images drawn at random (seeded by --seed, kept in image order): a quick look at a big data set")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument("--layers", nargs="+", metavar="NAME", help="layers to scan: dotted names, shell globs ('layer*.conv2', quote them) or type:CLASS ('type:Conv2d': every conv) or the keywords 'blocks' and 'convs' (default: blocks, the stem and every block; 'convs': every Conv2d that runs); `convscope layers MODEL` lists them")
    p.add_argument("-k", type=_positive, default=9, help="hits kept per unit (default 9: 3x3 grids)")
    p.add_argument("--batch-size", type=_positive, default=32, help="images per forward pass (default 32)")
    p.add_argument("--workers", type=int, default=None, help="data-loading worker processes (default: none on a CPU, where they would take cores from the convolutions; on a GPU the CPUs shared out among the processes, one kept for each, at most 8)")
    p.add_argument("--projection", choices=["deconvnet", "guided", "none"], default="none", help="draw each hit's projection beside its patch: Zeiler & Fergus's deconvnet or guided backprop (default none)")
    p.add_argument("--occlusion", action="store_true", help="add, for each unit's top hit, the drop of its activation as a grey square slides over its box (about 50 forward passes per unit)")
    p.add_argument("--featurevis", nargs="?", type=int, const=128, default=0, metavar="STEPS", help="also optimise an image for every unit (feature visualisation, default 128 steps when given without a number), drawn left of its patches; each unit's record holds the activation it reached over its top dataset activation")
    p.add_argument("--class-names", metavar="FILE", help="names of the model's output classes, one per line in output order (or a JSON list); default: torchvision's or timm's metadata where the weights have it. Scanned as the last layer, a classifier's output units are named after their classes")
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--labels", metavar="CSV", help="the images' classes from a CSV file of path,label rows (default: the folders of an ImageFolder layout); with labels every unit gets class means, a selectivity, a purity and a suggested label")
    labels.add_argument("--labels-from-name", metavar="REGEX", help="the images' classes from their file names: the regex's first group (or group 'label'), e.g. '^(n\\d+)_' for ImageNet's n01440764_tench.jpg")
    p.add_argument("--grids", action="store_true", help="also write every unit's 3x3 patch grid as a PNG (layers/LAYER/units/) and every layer's mosaic.png, for papers and slides (default: the viewer draws the patches from the stored images; overview.png is always written)")
    p.add_argument("--fast-decode", action="store_true", help="decode large JPEGs at a reduced scale (1/2, 1/4 or 1/8, Pillow's draft) before the resize: faster, but trades exactness for speed, as pixels (and so activations) no longer equal torchvision's Resize + CenterCrop of the full image (default: full-resolution decode)")
    p.add_argument("--decoder", choices=DECODERS, default="pillow", help="how image files become pixels: pillow (default; exactly torchvision's Resize + CenterCrop on PIL images), torchcodec (TorchCodec's decoder and torchvision's tensor transforms, in the loader's workers) or nvjpeg (the same with JPEGs decoded on the GPU in batches, for GPUs the CPU workers cannot keep busy); the last two need pip install 'convscope[decode]' and give pixels a level or two from Pillow's where an image is resized")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--no-resume", action="store_true", help="start the scan afresh: ignore and remove the state an interrupted run of the same job saved beside ATLAS (by default it resumes)")
    p.add_argument("--checkpoint-every", type=_positive, metavar="N", help="images between two saves of the scan state that a rerun resumes from (default 2000; per process under torchrun)")
    p.add_argument("--precision", choices=list(PRECISIONS), default="float32", help="the scan's forward passes: float32 (default), or bfloat16/float16 under autocast, faster on GPUs though some units' top hits change (see docs/guides/precision.md)")
    p.add_argument("--channels-last", action="store_true", help="scan with the model in channels-last memory (faster convolutions on GPUs)")
    p.add_argument("--quantile-budget", type=int, default=DEFAULT_BUDGET, metavar="N", help=f"values each unit's quantiles keep: exact up to N images, then a sketch (rank error under 0.1%% at the default {DEFAULT_BUDGET}); memory about 4N bytes per unit and process (default {DEFAULT_BUDGET})")
    p.add_argument("--circuits", action="store_true", help="then compute the atlas's circuits (as `convscope circuits ATLAS`: every unit's inputs from the layer before, written to ATLAS/circuits/)")
    circuits_command.add_circuit_args(p)

    p = sub.add_parser("layers", help="list a model's layers, output shapes and receptive fields", description="List every layer that outputs a feature map, with its output shape (from a dry run) and receptive field (size, stride, offset). '*' marks the default layers (the stem and every block).")
    _add_model_args(p)

    p = sub.add_parser("demo", help="train a small AlexNet offline and build its atlas", description="Train a small AlexNet-like ConvNet on photos that ship with scikit-image (or on --data), cache its weights, build the atlas of its five conv layers and print where it is. Works with no network.")
    p.add_argument("--out", "-o", default="convscope-demo", metavar="ATLAS", help="atlas folder (default ./convscope-demo)")
    p.add_argument("--data", metavar="FOLDER", help="train and scan on this ImageFolder (one folder per class) instead")
    p.add_argument("--cache", metavar="DIR", help="where the trained weights are cached (default ~/.cache/convscope)")
    p.add_argument("--projection", choices=["deconvnet", "guided", "none"], default="deconvnet", help="projection drawn beside each patch (default deconvnet)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    p = sub.add_parser("occlude", help="occlusion map of a unit or a class on one image", description="Slide a grey square (the dataset mean colour) over IMAGE and draw how much a unit's strongest activation, or a class probability, drops with the square at each position (Zeiler & Fergus 2014, Fig. 7). The square that lowers it most is outlined in yellow.")
    _add_model_args(p)
    p.add_argument("image", metavar="IMAGE", help="an image file")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--unit", metavar="LAYER:UNIT", help="a unit, e.g. features.10:37")
    what.add_argument("--class", dest="class_", metavar="N|NAME", help="a class index or name of the model's output")
    p.add_argument("--size", type=_positive, help="square side in model-input pixels (default: a seventh of the input)")
    p.add_argument("--stride", type=_positive, help="pixels between square positions (default: a quarter of the size)")
    p.add_argument("--out", "-o", metavar="PNG", help="picture to write (default: occlusion-<target>.png)")

    p = sub.add_parser("style", help="neural style transfer (Gatys et al.)", description="Optimise the pixels of an image so that its features at the content layers match CONTENT's and its Gram matrices at the style layers match the STYLE images' (Gatys, Ecker & Bethge 2016). Writes the picture and, beside it, a JSON record of the losses (per style layer at start and end). Default layers: Gatys's conv1_1..conv5_1 and conv4_2 on a VGG; on other networks five default layers spread over depth for style and the one at 65% of the depth for content.")
    p.add_argument("content", metavar="CONTENT", help="the content image (with --texture: a style image too)")
    p.add_argument("styles", metavar="STYLE", nargs="+", help="one or more style images (their Gram matrices are averaged)")
    p.add_argument("--model", default="torchvision:vgg19", help=MODEL_HELP + " (default torchvision:vgg19)")
    p.add_argument("--weights", metavar="FILE|NAME", help="a state-dict file or a torchvision weights name (VGG-19: IMAGENET1K_V1, downloaded); without it the weights are random")
    p.add_argument("--device", help="cpu, cuda, cuda:1, mps... (default: cpu)")
    p.add_argument("--out", "-o", default="stylised.png", metavar="PNG", help="picture to write (default stylised.png); the losses go to the same name with .json")
    p.add_argument("--force", action="store_true", help="overwrite --out and its .json if they exist")
    p.add_argument("--content-layers", nargs="+", metavar="NAME", help="dotted names (or VGG's conv4_2)")
    p.add_argument("--style-layers", nargs="+", metavar="NAME", help="dotted names (or VGG's conv1_1 ...)")
    p.add_argument("--content-weight", type=float, default=1.0, help="weight of the content loss (default 1)")
    p.add_argument("--style-weight", type=float, default=100.0, help="weight of the style loss (default 100; each style layer's loss is relative to its own value at the start image, each content layer's to its target's size)")
    p.add_argument("--style-image-weights", type=float, nargs="+", metavar="W", help="one weight per STYLE image (default equal)")
    p.add_argument("--tv-weight", type=float, default=0.0, help="weight of the total-variation smoothing (default 0)")
    p.add_argument("--size", type=_positive, help="long side of the result in pixels (default 256; 192 with --explain, as convscope.style.explain)")
    p.add_argument("--init", choices=["content", "noise"], default="content", help="start from the content image or seeded noise (default content)")
    p.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs", help="default lbfgs")
    p.add_argument("--lr", type=float, help="step size (default 1 for lbfgs, 0.02 for adam)")
    p.add_argument("--steps", type=int, help="optimiser steps per pyramid level (default 300; 200 per reconstruction with --explain, as convscope.style.explain)")
    p.add_argument("--pyramid", type=_positive, default=1, help="coarse-to-fine levels: 3 runs at size/4, size/2, size (default 1)")
    p.add_argument("--preserve-colour", action="store_true", help="keep the content's colours, transfer only luminance (Gatys et al. 2016)")
    p.add_argument("--texture", action="store_true", help="no content image: synthesise a texture of size x size from every image given (implies --init noise)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    p.add_argument("--explain", action="store_true", help="instead of a transfer, draw Gatys et al.'s Figure 1 for this network: CONTENT reconstructed from noise through each content layer alone (default on a VGG conv1_2..conv5_2, else the style layers) and STYLE through the first style layer, the first two, ... all of them (--steps each)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = sub.add_parser("featurevis", help="optimise the image each unit responds to most", description="Optimise, for every unit named, an image that maximises its activation (Olah et al., Distill 2017: a Fourier image with decorrelated colour, random pad/jitter/scale/rotation per image and step, Adam; all units of a layer in one batch; ReLUs that silence a unit pass the gradient that would wake it). Writes a sheet of the images (one row per layer) and, beside it, a JSON of the activation each image reached.")
    _add_model_args(p)
    p.add_argument("--unit", "-u", dest="units", nargs="+", required=True, metavar="LAYER:UNITS", help="units to visualise: features.3:12, features.3:0-15 (a range), features.3:all")
    p.add_argument("--out", "-o", default="featurevis.png", metavar="PNG", help="the sheet to write (default featurevis.png); the numbers go to the same name with .json")
    p.add_argument("--force", action="store_true", help="overwrite --out and its .json if they exist")
    p.add_argument("--where", choices=["centre", "map"], default="centre", help="maximise the unit at the centre position (default) or its mean over the whole map")
    p.add_argument("--negative", action="store_true", help="minimise instead: what the unit responds to least")
    p.add_argument("--per-unit", type=_positive, default=1, metavar="N", help="images per unit (default 1); with --diversity they differ")
    p.add_argument("--diversity", type=float, default=0.0, metavar="W", help="weight of the diversity term between a unit's images (Gram matrices; e.g. 1)")
    p.add_argument("--size", type=_positive, metavar="PX", help="image side (default: the units' receptive field, 32 px at least, the input size at most)")
    p.add_argument("--steps", type=_positive, default=128, help="optimisation steps (default 128)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam step size (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the images and transforms (default 0)")
    p.add_argument("--colour-from", metavar="IMAGES", help="decorrelate colour with the covariance of these images (a folder; a sample of 64) instead of ImageNet's")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "evolve",
        help="follow units over training checkpoints",
        description="Load each of CHECKPOINTS (in training order) into MODEL, scan IMAGES once per checkpoint "
        "(decoded once, kept in memory), and write per layer a figure of chosen units' strongest hit at every "
        "checkpoint (units down, checkpoints across, a red frame where the image changed) and a settle curve "
        "(how much of each unit's top-k images stays between checkpoints).",
    )
    _add_model_args(p, weights=False)
    p.add_argument("images", metavar="IMAGES", help="folder of images, searched recursively")
    p.add_argument("--checkpoints", nargs="+", required=True, metavar="CKPT", help="two or more state-dict files (as --weights takes), in training order")
    p.add_argument("--names", nargs="+", metavar="NAME", help="a label per checkpoint for the figures (default: the file names without suffix)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", "-o", metavar="FOLDER", help="folder to write (default ./evolve); a previous evolution folder there is replaced atomically")
    where.add_argument("--atlas", metavar="ATLAS", help="write into this atlas, as ATLAS/evolution, and refresh its viewer to show it (instead of --out)")
    p.add_argument("--layers", nargs="+", metavar="NAME", help="layers to follow (as for `convscope atlas`; default: the stem and every block)")
    p.add_argument("--units", nargs="+", metavar="LAYER:UNITS", help="units to show, e.g. features.3:12 or features.3:0-5 (default: per layer the --per-layer clearest, mutually different units of the last checkpoint)")
    p.add_argument("--per-layer", type=_positive, default=6, metavar="N", help="units shown per layer by the default rule (default 6)")
    p.add_argument("-k", type=_positive, default=9, help="hits kept per unit; the settle curve compares these top-k image sets (default 9)")
    p.add_argument("--projection", choices=["deconvnet", "guided", "none"], default="none", help="draw each top hit's projection beside its patch (default none)")
    p.add_argument("--max-images", type=_positive, default=2000, metavar="N", help="images decoded and kept in memory at most; a larger folder is cut to a seeded subsample (default 2000)")
    p.add_argument("--batch-size", type=_positive, default=32, help="images per forward pass (default 32)")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes for the one decoding pass (default 0)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    p = sub.add_parser("invariance", help="features and class under translation, scale, rotation", description="Sweep a few images (default 5 of IMAGES, or the files given) through vertical translation (the paper's -60..+60 px of 224, as 27% of the input side), scale 1.0..1.8 and rotation 0..350 degrees in the model-input frame; record the relative distance ||f(Tx)-f(x)||/||f(x)|| at the first conv and at the penultimate layer (pooled), the true class's probability where labels are known, optionally one unit's spatial max, and Zhang (2019)'s shift consistency. Writes OUT/invariance.png and OUT/invariance.json.")
    _add_model_args(p)
    p.add_argument("images", metavar="IMAGES", nargs="+", help="a folder (COUNT images spread over it, one per class in an ImageFolder layout) or image files")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", "-o", metavar="FOLDER", help="folder for invariance.png and invariance.json (default invariance/)")
    where.add_argument("--atlas", metavar="ATLAS", help="write into this atlas, as ATLAS/invariance, and refresh its viewer to show it (instead of --out)")
    p.add_argument("--count", type=_positive, default=5, help="images taken from a folder (default 5)")
    p.add_argument("--labels-from-name", metavar="REGEX", help="the true class from the file name: the regex's first group, matched against the model's class names, e.g. '^n\\d+_(.+)\\.' for ImageNet's n01440764_tench.jpg")
    p.add_argument("--unit", metavar="LAYER:UNIT", help="also draw this unit's spatial max under each transformation")
    p.add_argument("--max-shift", type=_positive, metavar="PX", help="translation reach in model-input px (default: 60/224 of the input height)")
    p.add_argument("--pairs", type=_positive, default=20, help="random shift pairs per image for the shift consistency (default 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shift pairs (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite invariance.png and invariance.json in --out")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = sub.add_parser("serve", help="serve an atlas read-only on 127.0.0.1", description="Serve the atlas folder over HTTP, read-only, bound to 127.0.0.1 unless --host says otherwise.")
    p.add_argument("atlas", metavar="ATLAS")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    explain_command.add_parser(sub, _add_model_args)
    circuits_command.add_parser(sub)
    add_examples(parser)
    return parser


def _network(args: argparse.Namespace):
    from dataclasses import replace

    from convscope.network.load import load_network

    network = load_network(args.model, args.weights)
    changes = {}
    if args.input_size:
        changes["input_size"] = args.input_size
        if args.resize is None:
            changes["resize"] = min(args.input_size)
    if args.resize is not None:
        changes["resize"] = args.resize or None
    if args.mean:
        changes["mean"] = tuple(args.mean)
    if args.std:
        changes["std"] = tuple(args.std)
    if changes:
        network = replace(network, preprocess=replace(network.preprocess, **changes))
    if args.device:
        try:
            network.model.to(args.device)
        except (RuntimeError, AssertionError, ValueError) as exc:
            raise ConvscopeError(
                f"cannot use device {args.device!r}: {str(exc).splitlines()[0]}",
                hint="leave out --device to run on the CPU, or check `python -c 'import torch; print(torch.cuda.is_available())'`",
            ) from None
    return network


def _cmd_atlas(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from convscope.pipeline import make_atlas

    if args.ablation and not args.circuits:
        raise ConvscopeError("--ablation goes with --circuits", hint="add --circuits, or run `convscope circuits ATLAS --ablation N` later")

    network = _network(args)
    if args.class_names:
        from convscope.data import read_class_names

        network = replace(network, class_names=read_class_names(args.class_names))
    network = replace(network, preprocess=replace(network.preprocess, fast_decode=args.fast_decode, decoder=args.decoder))
    out = make_atlas(
        network,
        args.images,
        args.out,
        layers=args.layers,
        k=args.k,
        batch_size=args.batch_size,
        workers=args.workers,
        projection=None if args.projection == "none" else args.projection,
        occlusion=args.occlusion,
        grids=args.grids,
        featurevis=args.featurevis,
        labels=args.labels,
        labels_from_name=args.labels_from_name,
        progress=not args.quiet,
        resume=not args.no_resume,
        checkpoint_every=args.checkpoint_every,
        root=args.root,
        limit=args.limit,
        sample=args.sample,
        seed=args.seed,
        precision=args.precision,
        channels_last=args.channels_last,
        quantile_budget=args.quantile_budget,
    )
    if int(os.environ.get("RANK", "0")) > 0:  # another process of a torchrun job: rank 0 wrote the atlas and says where
        return
    print(f"atlas: {out}\n  overview: {out / 'overview.png'}\n  viewer:   {out / 'index.html'}")
    if args.circuits:
        circuits_command.circuits_into_atlas(
            out, ablation=args.ablation, seed=args.seed, labels=args.labels,
            labels_from_name=args.labels_from_name, batch_size=args.batch_size, progress=not args.quiet,
        )


def _cmd_layers(args: argparse.Namespace) -> None:
    from convscope.network.layers import default_layers, discover_layers

    network = _network(args)
    h, w = network.preprocess.input_size
    defaults = set(default_layers(network.model, (h, w)))
    print(f"{network.source}: input 3x{h}x{w}; '*' = default layer (the stem and every block; --layers convs: every Conv2d); '?' = receptive field unknown")
    print(f"  {'layer':<32} {'type':<18} {'output':<16} {'rf size':>9} {'stride':>7} {'offset':>9}")
    for info in discover_layers(network.model, (h, w)):
        rf = info.receptive_field
        shape = "x".join(str(s) for s in info.shape)
        per_unit = info.fields is not None and rf is None
        if per_unit:
            geo = ("per unit", "", "")
        elif rf is None:
            geo = ("?", "?", "?")
        elif rf.stride == (0, 0):
            geo = ("global", "-", "-")
        else:
            geo = (_pair(rf.size), _pair(rf.stride), _pair(rf.offset))
        notes = []
        if rf is not None and rf.padding != "zeros":
            notes.append(f"{rf.padding} padding")
        if info.calls > 1:
            notes.append(f"runs {info.calls}x per forward: not scannable")
        if info.dims is None:
            notes.append("layout unknown: not scannable")
        elif info.dims != (1, 2, 3) and info.shape[1:] != (1, 1):
            notes.append("channels-last")
        note = f"  ({'; '.join(notes)})" if notes else ""
        mark = "*" if info.name in defaults else " "
        print(f"{mark} {info.name:<32} {info.type:<18} {shape:<16} {geo[0]:>9} {geo[1]:>7} {geo[2]:>9}{note}")
        if per_unit:
            print(f"      {info.fields.text()}")


def _pair(values: tuple[int, int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"


def _cmd_demo(args: argparse.Namespace) -> None:
    from convscope.demo import run_demo

    run_demo(
        Path(args.out),
        data=Path(args.data) if args.data else None,
        cache_dir=Path(args.cache) if args.cache else None,
        projection=None if args.projection == "none" else args.projection,
        progress=not args.quiet,
    )


def _cmd_occlude(args: argparse.Namespace) -> None:
    from convscope.atlas.writer import write_png_atomic
    from convscope.pipeline import occlude
    from convscope.project.occlusion import ClassTarget, UnitTarget

    network = _network(args)
    if args.unit:
        layer, _, unit = args.unit.rpartition(":")
        if not layer or not unit.isdigit():
            raise ConvscopeError(f"--unit takes LAYER:UNIT, e.g. features.10:37, not {args.unit!r}")
        target, name = UnitTarget(layer, int(unit)), f"{layer}-{unit}"
    else:
        target, name = ClassTarget(_class_index(network, args.class_)), f"class-{args.class_}"
    result = occlude(network, args.image, target, size=args.size, stride=args.stride)
    out = Path(args.out or f"occlusion-{name}.png")
    write_png_atomic(out, result.picture)
    lowest = float(result.values.min())
    print(f"{name}: {result.baseline:.4g} on the intact image, down to {lowest:.4g} with the square at {list(result.worst)}")
    print(f"picture: {out}")


def _class_index(network, text: str) -> int:
    if text.isdigit():
        return int(text)
    names = network.class_names or ()
    if text not in names:
        raise ConvscopeError(f"the model has no class named {text!r}", hint="give the class index instead, e.g. --class 281")
    return names.index(text)


def _png_and_record(args: argparse.Namespace, example: str) -> tuple[Path, Path]:
    """``--out`` (a .png) and the .json beside it, refused if either exists without ``--force``."""
    out = Path(args.out)
    record = out.with_suffix(".json")
    if out.suffix.lower() != ".png":
        raise ConvscopeError(f"--out must name a .png file, got {out}", hint=f"e.g. --out {example}")
    for path in (out, record):
        if path.exists() and not args.force:
            raise ConvscopeError(f"{path} exists", hint="pass --force to overwrite it, or choose another --out")
    return out, record


def _cmd_style(args: argparse.Namespace) -> None:
    from convscope.atlas.writer import write_json, write_png_atomic

    out, record = _png_and_record(args, "result.png")
    if args.explain and args.texture:
        raise ConvscopeError("--explain needs a content image; it cannot be combined with --texture", hint="drop --texture")
    args.input_size = args.resize = args.mean = args.std = None
    args.size = args.size or (192 if args.explain else 256)  # the Python API's defaults of each mode
    args.steps = args.steps if args.steps is not None else (200 if args.explain else 300)
    network = _network(args)  # the preprocessing's mean and std normalise the pixels; --size sets the size
    if network.weights is None:
        print(
            f"note: {network.source} has random weights (no --weights). Every layer's loss is normalised, so a random "
            "VGG still transfers the painting's colours and fine texture onto a recognisable photo, but not its brush "
            "strokes; pass --weights for a trained network",
            file=sys.stderr,
        )
    image, data = (_style_explain if args.explain else _style_transfer)(args, network)
    write_png_atomic(out, image)
    write_json(record, data)
    print(f"picture: {out}\nrecord:  {record}")


def _style_bar(args: argparse.Namespace, total: int):
    """A tqdm bar and the progress function that feeds it (``(None, None)`` with --quiet)."""
    if args.quiet:
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="style", unit="step")

    def progress(step: int, losses) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(total=f"{losses.total:.4g}", style=f"{sum(losses.style.values()):.3g}", content=f"{sum(losses.content.values()):.3g}")

    return bar, progress


def _style_transfer(args: argparse.Namespace, network) -> tuple:
    """The stylised picture ``uint8 (H, W, 3)`` and its JSON record."""
    import numpy as np

    from convscope.style import preserve_colour, quality, stylise

    images = [args.content, *args.styles]
    content, styles = (None, images) if args.texture else (args.content, args.styles)
    bar, progress = _style_bar(args, args.steps * args.pyramid)
    try:
        result = stylise(
            network, content, styles,
            content_layers=args.content_layers, style_layers=args.style_layers,
            content_weight=args.content_weight, style_weight=args.style_weight,
            style_image_weights=args.style_image_weights, tv_weight=args.tv_weight, size=args.size,
            init="noise" if args.texture else args.init, optimizer=args.optimizer, steps=args.steps, lr=args.lr,
            seed=args.seed, pyramid=args.pyramid, progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    image = result.image
    if args.preserve_colour and content is not None:
        from PIL import Image

        from convscope.data import open_rgb

        original = open_rgb(Path(content)).resize((image.shape[1], image.shape[0]), Image.Resampling.BICUBIC)
        image = preserve_colour(image, np.asarray(original))
    check = quality(result)
    ratios = ", ".join(f"{k} {v:.3g}" for k, v in result.style_ratios().items())
    print(f"style loss end/start per layer: {ratios}")
    for line in check.lines():
        print(line)
    data = {
        **result.to_dict(), "quality": check.to_dict(), "content": None if content is None else str(content),
        "styles": [str(s) for s in styles], "preserve_colour": bool(args.preserve_colour),
    }
    return image, data


def _style_explain(args: argparse.Namespace, network) -> tuple:
    """Gatys's Figure 1 ``uint8 (H, W, 3)`` for this network and its JSON record."""
    import numpy as np

    from convscope.data import open_rgb
    from convscope.style import explain, explain_figure, explain_layers

    rows, style_layers = explain_layers(network, args.content, args.styles, args.content_layers, args.style_layers, args.size)
    bar, progress = _style_bar(args, args.steps * (len(rows) + len(style_layers)))
    try:
        explanation = explain(
            network, args.content, args.styles, content_layers=rows, style_layers=style_layers, size=args.size,
            steps=args.steps, seed=args.seed, progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    content, style = (np.asarray(open_rgb(Path(p))) for p in (args.content, args.styles[0]))
    figure = explain_figure(explanation, content, style)
    data = {**explanation.to_dict(), "content": str(args.content), "styles": [str(s) for s in args.styles],
            "size": args.size, "steps": args.steps, "seed": args.seed, "model": network.source}
    return figure, data


def _cmd_featurevis(args: argparse.Namespace) -> None:
    from convscope.atlas.writer import write_json, write_png_atomic
    from convscope.featurevis import featurevis_sheet, visualise
    from convscope.network.layers import select_layers

    out, record = _png_and_record(args, "featurevis.png")
    network = _network(args)
    wanted: dict[str, list[int] | None] = {}
    for text in args.units:
        layer, _, units = text.rpartition(":")
        if not layer or not units:
            raise ConvscopeError(f"--unit {text!r} is not LAYER:UNITS", hint="e.g. --unit features.3:12 or features.3:0-15 or features.3:all")
        wanted.setdefault(layer, [])
        chosen = wanted[layer]
        if units == "all":
            wanted[layer] = None
        elif chosen is not None:
            chosen.extend(_unit_range(units, text))
    infos = {i.name: i for i in select_layers(network.model, list(wanted), network.preprocess.input_size)}  # unknown layers fail now
    colour = None
    if args.colour_from:
        from convscope.atlas.build import data_colour
        from convscope.data import find_images

        colour = data_colour(find_images(Path(args.colour_from)), network)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(desc="featurevis", unit="step", dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.update(done - bar.n)

    results = []
    try:
        for layer, units in wanted.items():
            if bar is not None:
                bar.set_description(f"featurevis {layer}")
            results.append(visualise(
                network, layer, units, where=args.where, negative=args.negative, per_unit=args.per_unit,
                diversity_weight=args.diversity, size=args.size, steps=args.steps, lr=args.lr, seed=args.seed, colour=colour,
                progress=progress if bar is not None else None, info=infos[layer],
            ))
    finally:
        if bar is not None:
            bar.close()
    write_png_atomic(out, featurevis_sheet(results))
    write_json(record, {
        "model": network.source, "weights": network.weights,
        "layers": [{"layer": v.layer, "units": v.units.tolist(), "reached": v.reached.tolist(), "objective": v.objective.tolist(),
                    "size": list(v.size), "settings": v.settings, "seconds": round(v.seconds, 3)} for v in results],
    })
    print(f"sheet:   {out}\nrecord:  {record}")


def _unit_range(text: str, whole: str) -> list[int]:
    """``"12"`` -> [12]; ``"0-15"`` -> 0..15."""
    try:
        first, _, last = text.partition("-")
        return list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise ConvscopeError(f"--unit {whole!r}: {text!r} is not a unit, a range or 'all'", hint="e.g. 12, 0-15 or all") from None


def _cmd_serve(args: argparse.Namespace) -> None:
    from convscope.atlas.serve import serve

    serve(Path(args.atlas), host=args.host, port=args.port)


def _cmd_evolve(args: argparse.Namespace) -> None:
    evolve_command.run(args, _network)


def _cmd_explain(args: argparse.Namespace) -> None:
    explain_command.run(args, _network)


def _cmd_circuits(args: argparse.Namespace) -> None:
    circuits_command.run(args)


def _cmd_invariance(args: argparse.Namespace) -> None:
    from convscope.analysis.in_atlas import analysis_folder, refresh_viewer
    from convscope.analysis.invariance_run import check_invariance_out, run_invariance, write_invariance

    out = analysis_folder(args.atlas, "invariance") if args.atlas else Path(args.out or "invariance")
    check_invariance_out(out, args.force)
    unit = None
    if args.unit:
        layer, _, index = args.unit.rpartition(":")
        if not layer or not index.isdigit():
            raise ConvscopeError(f"--unit takes LAYER:UNIT, e.g. conv1:3, not {args.unit!r}")
        unit = (layer, int(index))
    images = args.images[0] if len(args.images) == 1 else args.images
    result = run_invariance(_network(args), images, count=args.count, labels_from_name=args.labels_from_name, unit=unit, shift=args.max_shift, pairs=args.pairs, seed=args.seed, progress=not args.quiet)
    write_invariance(result, out, model=args.model, force=args.force)
    print(f"layers {result.first_layer} and {result.late_layer}; mean shift consistency {result.mean_consistency:.3f}")
    print(f"figure and numbers: {out}/invariance.png, {out}/invariance.json")
    if args.atlas:
        print(f"viewer: {refresh_viewer(args.atlas)}#/invariance")


COMMANDS = {"evolve": _cmd_evolve, "featurevis": _cmd_featurevis, "atlas": _cmd_atlas, "layers": _cmd_layers, "demo": _cmd_demo, "occlude": _cmd_occlude, "style": _cmd_style, "serve": _cmd_serve, "invariance": _cmd_invariance, "explain": _cmd_explain, "circuits": _cmd_circuits}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.showwarning = _show_warning
        try:
            COMMANDS[args.command](args)
        except ConvscopeError as exc:
            if args.debug:
                raise
            print(f"convscope: error: {exc}", file=sys.stderr)
            return 1
        except BrokenPipeError:  # `convscope layers MODEL | head`
            sys.stderr.close()
            return 0
        except KeyboardInterrupt:
            print(f"convscope: interrupted{_interrupted_note(args)}", file=sys.stderr)
            return 130
    return 0


def _interrupted_note(args: argparse.Namespace) -> str:
    """What a Ctrl-C left behind: a resume is promised only when a scan state was saved."""
    if args.command not in ("atlas", "demo"):
        return ""
    from convscope.scan.resume import state_file

    note = "; no atlas was written (a previous one is unchanged)"
    if not state_file(Path(args.out)).is_file():
        return f"{note}; no scan state was saved yet, so the same command starts the scan again"
    if getattr(args, "no_resume", False):
        return f"{note}; the same command without --no-resume resumes the scan from its last save"
    return f"{note}; the same command again resumes the scan from its last save"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    prefix = "warning" if issubclass(category, ConvscopeWarning) else category.__name__
    print(f"convscope: {prefix}: {message}", file=sys.stderr)
