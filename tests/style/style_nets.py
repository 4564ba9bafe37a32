"""Tiny hand-built networks for the style-transfer tests (seeded: the same weights every call)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from convscope.network.load import Network
from convscope.network.preprocess import Preprocess


def tiny_vgg() -> nn.Module:
    """A VGG-shaped net: features.0, 2 (block 1), pool, features.5, 7 (block 2), then a flat head."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module(
        "features",
        nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(inplace=True),
        ),
    )
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc", nn.Linear(16, 4))
    return model


def tiny_valid() -> nn.Module:
    """Unpadded convs after a 4x pool: an 8-pixel image is too small for it."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(4), nn.Conv2d(4, 4, 3), nn.ReLU())


def network(model: nn.Module | None = None) -> Network:
    model = tiny_vgg() if model is None else model
    return Network(model=model.eval(), source="tiny", preprocess=Preprocess(input_size=(32, 32), resize=None))


def stripes(h: int = 32, w: int = 32) -> np.ndarray:
    """Red and blue horizontal stripes, ``uint8 (h, w, 3)``."""
    img = np.zeros((h, w, 3), np.uint8)
    img[::4, :, 0] = 255
    img[2::4, :, 2] = 255
    return img


def photo(h: int = 32, w: int = 40, seed: int = 0) -> np.ndarray:
    """A smooth random "photo", ``uint8 (h, w, 3)``."""
    rng = np.random.default_rng(seed)
    small = rng.random((4, 5, 3))
    big = torch.nn.functional.interpolate(torch.tensor(small).permute(2, 0, 1)[None], size=(h, w), mode="bilinear")
    return (big[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
