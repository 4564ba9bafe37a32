"""``timm:NAME`` model sources: an architecture of PyTorch Image Models (the ``timm`` extra).

The preprocessing is read from timm's own eval transform for the model's pretrained
config (``timm.data.resolve_data_config`` + ``create_transform``): its resize, centre
crop, interpolation, mean and std, so activations equal what a timm user computes.
Weights come from ``--weights FILE`` (a state dict) or a pretrained tag (``pretrained``
for the default, or a tag such as ``a1_in1k``) downloaded through timm where a network
exists; offline, the error says which file to fetch.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from convscope.errors import ModelError, WeightsError
from convscope.network.network import Network
from convscope.network.preprocess import Preprocess
from convscope.network.weights import with_weights_file


def timm_network(source: str, weights: str | Path | None) -> Network:
    """The :class:`~convscope.network.network.Network` of ``timm:NAME`` (random weights without ``weights``).

    Example:
        >>> timm_network("timm:resnet18", None).preprocess.resize  # doctest: +SKIP
        235
    """
    timm = _import_timm()
    name = source.split(":", 1)[1]
    known = timm.list_models()
    if name.split(".", 1)[0] not in known:
        close = difflib.get_close_matches(name, known, n=3)
        raise ModelError(
            f"timm has no model called {name!r}",
            hint=f"did you mean {', '.join(close)}?" if close else "see timm.list_models()",
        )
    tag = None if weights is None or Path(weights).is_file() else str(weights)
    model = _create(timm, name, tag)
    network = Network(model=model, source=source, preprocess=timm_preprocess(model), class_names=_class_names(model))
    if tag is not None:
        return replace(network, weights=f"{name}.{tag}" if tag != "pretrained" else name)
    if weights is not None:
        return with_weights_file(network, Path(weights))
    return network


def _import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ModelError(
            "timm: models need the timm package", hint="pip install 'convscope[timm]' (or pip install timm)"
        ) from None
    return timm


def _create(timm: Any, name: str, tag: str | None) -> nn.Module:
    if tag is None:
        return timm.create_model(name, pretrained=False)
    full = name if tag == "pretrained" else f"{name.split('.', 1)[0]}.{tag}"
    try:
        return timm.create_model(full, pretrained=True)
    except RuntimeError as exc:
        if "Unknown model" in str(exc) or "Invalid pretrained tag" in str(exc):
            raise WeightsError(
                f"{tag!r} is neither a file nor a timm pretrained tag of {name}",
                hint=f"pass an existing state-dict file, 'pretrained', or a tag of: {', '.join(timm.list_pretrained(name + '*')[:8])}",
            ) from None
        raise _offline(timm, full, exc) from None
    except Exception as exc:  # no network, blocked host, missing cache
        raise _offline(timm, full, exc) from None


def _offline(timm: Any, full: str, exc: Exception) -> WeightsError:
    cfg = timm.create_model(full, pretrained=False).pretrained_cfg
    where = cfg.get("hf_hub_id") or cfg.get("url") or full
    return WeightsError(
        f"could not download the timm weights {full} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
        hint=f"fetch the weights of {where} on a machine with a network, save "
        f"timm.create_model({full!r}, pretrained=True).state_dict() with torch.save, and pass --weights FILE",
    )


def timm_preprocess(model: nn.Module) -> Preprocess:
    """The :class:`Preprocess` equal to timm's eval transform for ``model``'s pretrained config.

    Raises:
        ModelError: the transform is one convscope cannot reproduce (a crop mode other
            than centre or squash); ``--input-size``, ``--resize``, ``--mean``, ``--std``
            then set the preprocessing by hand.
    """
    from timm.data import create_transform, resolve_data_config
    from torchvision import transforms as T

    config = resolve_data_config({}, model=model)
    steps = create_transform(**config, is_training=False).transforms
    kinds = [type(step).__name__ for step in steps]
    resize = next((s for s in steps if isinstance(s, T.Resize)), None)
    crop = next((s for s in steps if isinstance(s, T.CenterCrop)), None)
    normalize = next((s for s in steps if isinstance(s, T.Normalize)), None)
    known = {"Resize", "CenterCrop", "ToTensor", "MaybeToTensor", "Normalize"}
    if resize is None or normalize is None or not set(kinds) <= known:
        raise ModelError(
            f"cannot reproduce timm's eval transform for this model ({', '.join(kinds)})",
            hint="set the preprocessing with --input-size, --resize, --mean and --std",
        )
    height, width = (int(v) for v in (crop.size if crop is not None else config["input_size"][1:]))
    short = resize.size if isinstance(resize.size, int) else resize.size[0] if len(resize.size) == 1 else None
    if short is None and tuple(resize.size) != (height, width):  # a resize to a shape, then a crop
        raise ModelError(
            f"cannot reproduce timm's eval transform for this model (resize to {tuple(resize.size)}, crop to {(height, width)})",
            hint="set the preprocessing with --input-size, --resize, --mean and --std",
        )
    return Preprocess(
        input_size=(height, width),
        resize=None if short is None else int(short),  # None: squashed straight to the input size
        mean=tuple(float(v) for v in config["mean"]),  # type: ignore[arg-type]  (Normalize holds float32 copies)
        std=tuple(float(v) for v in config["std"]),  # type: ignore[arg-type]
        interpolation=resize.interpolation.value,
    )


def _class_names(model: nn.Module) -> tuple[str, ...] | None:
    try:
        from timm.data import ImageNetInfo, infer_imagenet_subset

        subset = infer_imagenet_subset(model)
        return tuple(ImageNetInfo(subset).label_descriptions()) if subset else None
    except Exception:  # older timm, or a model that is not an ImageNet classifier
        return None
