"""The :class:`Network`: a model with what it takes to read it (preprocessing, provenance, class names).

Where one comes from is :mod:`convscope.network.load`; loading a weights file into one,
:mod:`convscope.network.weights`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

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
