"""Weights files: read a state dict safely (``torch.load(weights_only=True)``), fit it to a
network's model with clear messages, and record the file and its SHA-256."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from convscope.errors import WeightsError
from convscope.network.network import Network


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
    load_state(network.model, state, str(path))
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


def load_state(model: nn.Module, state: Any, what: str) -> None:
    """Load the state dict in ``state`` (as :func:`unwrap_state_dict` takes it) into ``model``,
    refusing with one message that lists every missing, unexpected and misshapen key."""
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
