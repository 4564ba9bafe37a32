"""Where a network comes from: torchvision, the user's own factory, or a TorchScript file.

Model sources (the ``MODEL`` argument of the CLI):

- ``torchvision:NAME``: a torchvision architecture (``torchvision:alexnet``).
- ``timm:NAME``: a timm architecture (``timm:convnext_tiny``; the ``timm`` extra), with
  timm's own eval preprocessing (see :mod:`convscope.network.timm_source`).
- ``path/to/file.py:factory``: a Python file defining ``factory() -> nn.Module``.
- ``package.module:factory``: the same, imported from an installed package.
- ``...:factory(ARG=VALUE, ...)``: either, called with these arguments (Python literals only,
  never evaluated as code): ``convscope.demo:TinyAlexNet(num_classes=18)``.
- ``path/to/model.pt``: a TorchScript file (``torch.jit.save``).

Weights (``--weights``): a state-dict file, loaded with ``torch.load(weights_only=True)``
(a ``state_dict`` key is unwrapped and a ``module.`` prefix stripped), or for torchvision
models a weights name such as ``DEFAULT`` or ``IMAGENET1K_V1``, for timm models
``pretrained`` or a pretrained tag (``a1_in1k``), downloaded where a network exists.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib
import importlib.util
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convscope.errors import ModelError, WeightsError
from convscope.network.network import Network
from convscope.network.preprocess import Preprocess
from convscope.network.weights import file_sha256, load_state, with_weights_file

__all__ = ["Network", "load_network"]


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
    head, sep, tail = _split_factory(source)
    return bool(sep) and bool(head) and tail.split("(", 1)[0].isidentifier() and not Path(source).exists()


def _split_factory(source: str) -> tuple[str, str, str]:
    """``file.py:make(n=2)`` -> ``("file.py", ":", "make(n=2)")``: the last ``:`` before any ``(``."""
    name, paren, arguments = source.partition("(")
    head, sep, tail = name.rpartition(":")
    return head, sep, tail + paren + arguments


def factory_call(text: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    """The factory's name and arguments of ``make`` or ``make(18, width=2)``: Python literals only
    (numbers, strings, booleans, ``None``, tuples, lists, dicts), never evaluated as code.

    Example:
        >>> factory_call("TinyAlexNet(num_classes=18)")
        ('TinyAlexNet', (), {'num_classes': 18})

    Raises:
        ModelError: not a name, or a call whose arguments are not literals.
    """
    hint = "write the factory as NAME or NAME(ARG=VALUE, ...) with Python literals, e.g. 'model.py:resnet(depth=20)' (quoted in a shell)"
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ModelError(f"{text!r} is not a factory name or call", hint=hint) from None
    if isinstance(node, ast.Name):
        return node.id, (), {}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or any(k.arg is None for k in node.keywords):
        raise ModelError(f"{text!r} is not a factory name or a call of one", hint=hint)
    try:
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None}
    except ValueError:
        raise ModelError(f"the arguments of {text!r} are not all Python literals", hint=hint) from None
    return node.func.id, args, kwargs


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
    load_state(model, state, str(weights))
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
    target, _, call = _split_factory(source)
    attr, args, kwargs = factory_call(call)
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
        model = factory(*args, **kwargs)
    except Exception as exc:
        raise ModelError(
            f"calling {call} from {target} failed: {type(exc).__name__}: {exc}",
            hint="the factory must build the model from the arguments given (none: NAME, some: 'NAME(ARG=VALUE)'); "
            "run it in Python to see the traceback",
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
