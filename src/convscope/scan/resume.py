"""Save the state of a long scan now and then, so a rerun after a crash or Ctrl-C resumes it.

The state lives beside the atlas folder as ``.<atlas>.scan.pt`` and holds a
fingerprint of everything that decides the scan: the model's source and weights
file, a hash of its actual parameters and buffers (so a ``file.py:factory`` that
loads its own checkpoint, or an unseeded random model, never resumes another
run), the layers, k, the batch size, the preprocessing, every image's path, size and
modification time and, on many processes, the world size and this rank's shard. A rerun with the same fingerprint goes on from the last saved
batch; anything else starts afresh and drops the foreign state. The file is
removed once the atlas is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.nn.parameter import is_lazy

from convscope.data import ImageList
from convscope.network.layers import LayerInfo
from convscope.network.load import Network
from convscope.scan.progress import Resumable


def state_file(out: Path, kind: str = "scan") -> Path:
    """Where the state of the job writing ``out`` is kept: ``.<out>.<kind>.pt`` beside it
    (``kind``: ``"scan"`` for an atlas's pass 1, ``"classes"`` for explain's class relevance)."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.{kind}.pt"


def model_digest(model: torch.nn.Module) -> str:
    """A SHA-256 of ``model.state_dict()``: every name, dtype, shape and byte, in order.

    Tensors are copied to the CPU one at a time; AlexNet's 61M parameters take
    about 0.15 s on one CPU core (SHA-256 at ~2 GB/s). Entries that are not tensors (``extra_state``) enter
    by their ``repr``; uninitialised parameters and buffers of lazy modules (an ``nn.LazyLinear``
    that never ran) by their name and kind alone: they have no shape or values yet.

    Example:
        >>> a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        >>> model_digest(a) == model_digest(a), model_digest(a) == model_digest(b)
        (True, False)
    """
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(name.encode() + b"\0")
        if not isinstance(value, torch.Tensor):
            digest.update(b"object:" + repr(value).encode() + b"\0")
            continue
        if is_lazy(value):
            digest.update(b"uninitialized:" + type(value).__name__.encode() + b"\0")
            continue
        tensor = value.detach()
        digest.update(f"{tensor.dtype}:{tuple(tensor.shape)}:{tensor.layout}\0".encode())
        if tensor.is_meta:
            continue
        if tensor.layout != torch.strided or tensor.is_quantized:
            tensor = tensor.dequantize() if tensor.is_quantized else tensor.to_dense()
        data = tensor.to("cpu").contiguous().reshape(-1)
        if data.dtype == torch.bool:
            data = data.to(torch.uint8)
        digest.update(memoryview(data.view(torch.uint8).numpy()))
    return digest.hexdigest()


def images_digest(images: ImageList) -> str:
    """A SHA-256 of every image's path, size and modification time (``stat``, no reading)."""
    digest = hashlib.sha256()
    for index, relative in enumerate(images.paths):
        try:
            stat = images.path(index).stat()
            size, mtime = stat.st_size, stat.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        digest.update(f"{relative}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()


def fingerprint(
    network: Network,
    layers: Sequence[LayerInfo],
    images: ImageList,
    k: int,
    batch_size: int = 0,
    shard: dict[str, int] | None = None,
    settings: dict[str, object] | None = None,
) -> str:
    """A digest of everything that decides the scan's result (see the module's docstring); the
    batch size numbers the statistics' blocks, ``shard`` is this rank's part of a distributed
    scan, and ``settings`` how pass 1 computes (``ScanJob.settings``)."""
    described = {
        "model": [network.source, network.weights, network.weights_sha256],
        "parameters": model_digest(network.model),
        "preprocess": network.preprocess.to_dict(),
        "layers": [[info.name, info.units] for info in layers],
        "k": k,
        "batch_size": batch_size,
        "shard": shard,
        "settings": settings,
        "root": str(images.root),
        "images": images_digest(images),
        "labels": [list(images.labels or ()), list(images.class_names or ())],
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def save(path: Path, digest: str, state: Resumable) -> None:
    """Write ``state`` atomically (temporary name, then rename)."""
    tmp = path.with_name(path.name + ".partial")
    torch.save({"fingerprint": digest, "state": state.state_dict()}, tmp)
    os.replace(tmp, path)


def load(path: Path, digest: str, state: Resumable) -> bool:
    """Fill ``state`` from ``path`` if it holds a scan with the same fingerprint."""
    if not path.is_file():
        return False
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("fingerprint") != digest:
            return False
        state.load_state_dict(saved["state"])
    except Exception:  # a damaged or foreign file: scan from the start
        return False
    return True


def start(path: Path, digest: str, state: Resumable, *, resume: bool = True) -> bool:
    """Resume ``state`` from ``path`` when allowed and the fingerprint matches.

    Otherwise the state file there (another job's, a damaged one, or this job's when
    ``resume`` is False) is removed, so that a state file beside an atlas always
    belongs to the scan now running: the Ctrl-C message relies on that.

    Returns:
        Whether ``state`` was filled from the file.
    """
    if resume and load(path, digest, state):
        return True
    path.unlink(missing_ok=True)
    return False
