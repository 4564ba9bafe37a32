"""Save the state of a long scan now and then, so a rerun after a crash or Ctrl-C resumes it.

The state lives beside the atlas folder as ``.<atlas>.scan.pt`` and holds a
fingerprint of everything that decides the scan (model, weights, layers, k,
preprocessing, the image list). A rerun with the same fingerprint goes on from the
last saved batch; anything else starts afresh. The file is removed once the atlas
is written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from convscope.data import ImageList
from convscope.network.layers import LayerInfo
from convscope.network.load import Network
from convscope.scan.scan import ScanState


def state_file(out: Path) -> Path:
    """Where the scan state of the atlas ``out`` is kept."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.scan.pt"


def fingerprint(network: Network, layers: Sequence[LayerInfo], images: ImageList, k: int) -> str:
    """A digest of everything that decides the scan's result."""
    described = {
        "model": [network.source, network.weights, network.weights_sha256],
        "preprocess": network.preprocess.to_dict(),
        "layers": [[info.name, info.units] for info in layers],
        "k": k,
        "root": str(images.root),
        "images": hashlib.sha256("\n".join(images.paths).encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def save(path: Path, digest: str, state: ScanState) -> None:
    """Write ``state`` atomically (temporary name, then rename)."""
    tmp = path.with_name(path.name + ".partial")
    torch.save({"fingerprint": digest, "state": state.state_dict()}, tmp)
    os.replace(tmp, path)


def load(path: Path, digest: str, state: ScanState) -> bool:
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
