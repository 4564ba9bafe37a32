"""Where a network comes from: torchvision, the user's own factory, or a TorchScript file.

Model sources (the ``MODEL`` argument of the CLI):

- ``torchvision:NAME``: a torchvision architecture (``torchvision:alexnet``).
- ``timm:NAME``: a timm architecture (``timm:convnext_tiny``; the ``timm`` extra), with
  timm's own eval preprocessing (see :mod:`convscope.network.timm_source`).
- ``path/to/file.py:factory``: a Python file defining ``factory() -> nn.Module``.
- ``package.module:factory``: the same, imported from an installed package.
- ``path/to/model.pt``: a TorchScript file (``torch.jit.save``).

Weights (``--weights``): a state-dict file, loaded with ``torch.load(weights_only=True)``
(a ``state_dict`` key is unwrapped and a ``module.`` prefix stripped), or for torchvision
models a weights name such as ``DEFAULT`` or ``IMAGENET1K_V1``, for timm models
``pretrained`` or a pretrained tag (``a1_in1k``), downloaded where a network exists.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convscope.errors import ModelError, WeightsError
from convscope.network.device import model_device, model_dtype
from convscope.network.preprocess import Preprocess


@dataclass(frozen=True)
class Network:
    """A model with everything needed to read it: preprocessing, provenance, class names.

    Attributes:
        model: the module, in eval mode.
        source: the model source as given (``torchvision:alexnet``).
        weights: the weights file or torchvision weights name, or ``None`` (random init).
        weights_sha256: SHA-256 of the weights file, or ``None``.
        preprocess: how images become model inputs.
        class_names: names of the model's output classes, where known.
        training: a record of how the model was trained (the demo fills it).
    """

    model: nn.Module
    source: str
    preprocess: Preprocess
    weights: str | None = None
    weights_sha256: str | None = None
    class_names: tuple[str, ...] | None = None
    training: dict[str, Any] | None = field(default=None)

    def model_input(self, pixels: torch.Tensor) -> torch.Tensor:
        """``uint8 (N, 3, H, W)`` model-input-frame pixels -> the normalised input ``(N, 3, H, W)``
        on the model's device, in its dtype (a half or bfloat16 model gets half or bfloat16)."""
        device = model_device(self.model)
        return self.preprocess.normalize(pixels.to(device)).to(model_dtype(self.model))

    def describe(self) -> dict[str, Any]:
        """The ``model`` section of an atlas manifest."""
        d: dict[str, Any] = {
            "source": self.source,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "class_names": list(self.class_names) if self.class_names else None,
        }
        if self.training is not None:
            d["training"] = self.training
        return d


def load_network(
    source: str,
    weights: str | Path | None = None,
    *,
    preprocess: Preprocess | None = None,
) -> Network:
    """Build the model named by ``source`` and load ``weights`` into it.

    Args:
        source: a model source (see the module docstring).
        weights: a state-dict file, a torchvision weights name, or ``None``.
        preprocess: overrides the preprocessing found from the weights' metadata.

    Example:
        >>> net = load_network("torchvision:alexnet")  # random weights
        >>> net.preprocess.input_size
        (224, 224)
    """
    if source.startswith("torchvision:"):
        network = _torchvision(source, weights)
    elif source.startswith("timm:"):
        from convscope.network.timm_source import timm_network

        network = timm_network(source, weights)
    elif _is_factory(source):
        network = Network(model=_factory(source), source=source, preprocess=Preprocess())
        if weights is not None:
            network = with_weights_file(network, Path(weights))
    else:
        network = _torchscript(source)
        if weights is not None:
            network = with_weights_file(network, Path(weights))
    if preprocess is not None:
        network = replace(network, preprocess=preprocess)
    network.model.eval()
    return network


def _is_factory(source: str) -> bool:
    head, sep, tail = source.rpartition(":")
    return bool(sep) and bool(head) and tail.isidentifier() and not Path(source).exists()


def _torchvision(source: str, weights: str | Path | None) -> Network:
    import torchvision

    name = source.split(":", 1)[1]
    known = torchvision.models.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        raise ModelError(
            f"torchvision has no model called {name!r}",
            hint=f"did you mean {', '.join(close)}?" if close else "see torchvision.models.list_models()",
        )
    model = torchvision.models.get_model(name, weights=None)
    enum = torchvision.models.get_model_weights(name)
    meta_weights = enum.DEFAULT
    network = Network(model=model, source=source, preprocess=_torchvision_preprocess(meta_weights))
    if weights is None:
        return replace(network, class_names=_categories(meta_weights))
    if Path(weights).is_file():
        return replace(with_weights_file(network, Path(weights)), class_names=_categories(meta_weights))
    chosen = _weights_enum_member(enum, str(weights), name)
    try:
        state = chosen.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # no network, blocked host, corrupt cache
        raise WeightsError(
            f"could not download the torchvision weights {chosen} ({type(exc).__name__}: {exc})",
            hint=f"download {chosen.url} on a machine with a network and pass --weights FILE "
            f"(or put it in {Path(torch.hub.get_dir()) / 'checkpoints'})",
        ) from None
    _load_state(model, state, str(weights))
    return replace(
        network,
        weights=str(chosen),
        preprocess=_torchvision_preprocess(chosen),
        class_names=_categories(chosen),
    )


def _weights_enum_member(enum: Any, text: str, model_name: str) -> Any:
    member = text.rsplit(".", 1)[-1]
    names = [w.name for w in enum] + ["DEFAULT"]
    if member not in names:
        raise WeightsError(
            f"{text!r} is neither a file nor a torchvision weights name for {model_name}",
            hint=f"pass an existing state-dict file, or one of: {', '.join(names)}",
        )
    return enum[member] if member != "DEFAULT" else enum.DEFAULT


def _torchvision_preprocess(weights: Any) -> Preprocess:
    t = weights.transforms()
    crop = getattr(t, "crop_size", [224])
    resize = getattr(t, "resize_size", [256])
    interpolation = getattr(t, "interpolation", None)
    return Preprocess(
        input_size=(int(crop[0]), int(crop[-1])),
        resize=int(resize[0]),
        mean=tuple(float(v) for v in t.mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in t.std),  # type: ignore[arg-type]
        interpolation=interpolation.value if interpolation is not None else "bilinear",
    )


def _categories(weights: Any) -> tuple[str, ...] | None:
    categories = weights.meta.get("categories")
    return tuple(categories) if categories else None


def _factory(source: str) -> nn.Module:
    target, _, attr = source.rpartition(":")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _import_file(Path(target))
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ModelError(
                f"cannot import module {target!r}: {exc}",
                hint="give a file (path/to/file.py:factory) or an importable module (package.module:factory)",
            ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise ModelError(
            f"{target} has no callable {attr!r}",
            hint=f"callables found there: {', '.join(names[:12]) or 'none'}",
        )
    try:
        model = factory()
    except Exception as exc:
        raise ModelError(
            f"calling {attr}() from {target} failed: {type(exc).__name__}: {exc}",
            hint="the factory must build the model with no arguments; run it in Python to see the traceback",
        ) from None
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"{attr}() from {target} returned {type(model).__name__}, not a torch.nn.Module",
            hint="make the factory return the model",
        )
    return model


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist", hint="check the path before the ':'")
    name = f"convscope_user_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelError(f"cannot import {path} as Python", hint="the model file must be a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ModelError(
            f"running {path} failed: {type(exc).__name__}: {exc}",
            hint=f"run `python {path}` to see the full traceback",
        ) from None
    return module


def _torchscript(source: str) -> Network:
    path = Path(source)
    if not path.is_file():
        raise ModelError(
            f"{source!r} is not a model source: no such file",
            hint="use torchvision:NAME, path/to/file.py:factory, package.module:factory or a TorchScript file",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ModelError(
            f"{path} is not a TorchScript file ({type(exc).__name__})",
            hint="for a state dict, name the architecture and pass the file as weights: "
            "`convscope atlas torchvision:NAME IMAGES --weights FILE` or `file.py:factory --weights FILE`",
        ) from None
    from convscope.network.torchscript import to_hookable

    return Network(
        model=to_hookable(scripted),
        source=source,
        preprocess=Preprocess(),
        weights_sha256=file_sha256(path),
    )


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def with_weights_file(network: Network, path: Path) -> Network:
    """``network`` with the state dict in ``path`` loaded (``weights_only=True``) and recorded."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist", hint="check the --weights path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"cannot read {path} as a weights file ({type(exc).__name__}: {str(exc).splitlines()[0]})",
            hint="save weights with torch.save(model.state_dict(), FILE); convscope loads with weights_only=True",
        ) from None
    _load_state(network.model, state, str(path))
    return replace(network, weights=str(path), weights_sha256=file_sha256(path))


def unwrap_state_dict(state: Any, what: str) -> dict[str, torch.Tensor]:
    """A plain state dict from ``state``: unwraps ``state_dict``/``model`` keys, strips ``module.``."""
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(
            f"{what} holds no state dict (a dict of tensors)",
            hint="save weights with torch.save(model.state_dict(), FILE)",
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _load_state(model: nn.Module, state: Any, what: str) -> None:
    state = unwrap_state_dict(state, what)
    expected = model.state_dict()
    # Checkpoints from before torch 0.4.1 lack BatchNorm's step counter; torch fills it in.
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:8])}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:8])}")
        if wrong:
            parts.append(f"shape mismatches ({len(wrong)}): {'; '.join(wrong[:4])}")
        raise WeightsError(
            f"the weights in {what} do not fit the model: " + " | ".join(parts),
            hint="check that the architecture matches the one the weights were saved from",
        )
    model.load_state_dict(state, strict=False)  # strictness checked above, with clearer messages
