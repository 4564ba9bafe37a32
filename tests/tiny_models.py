"""Tiny hand-built models and helpers shared by the tests (importable as `tiny_models`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn


def tiny_alexnet(num_classes: int = 4) -> nn.Module:
    """Two convs and a pool: features.0 (3x3, pad 1), features.3 after a 2x2 pool; the same weights every call."""
    torch.manual_seed(0)
    features = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU()
    )
    model = nn.Sequential()
    model.add_module("features", features)
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten())
    model.add_module("classifier", nn.Linear(6, num_classes))
    return model


class ColourNet(nn.Module):
    """One 1x1 conv whose three units are the red, green and blue channels of the input.

    With identity normalisation, unit c's activation at (row, col) is the pixel's
    channel c in [0, 1]: the top hits are hand-predictable.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Fire(nn.Module):
    """SqueezeNet's Fire module: a 1x1 squeeze, then 1x1 and 3x3 expands concatenated (3 + 3 units)."""

    def __init__(self) -> None:
        super().__init__()
        self.squeeze, self.relu = nn.Conv2d(3, 4, 1), nn.ReLU()
        self.expand1x1, self.expand1x1_relu = nn.Conv2d(4, 3, 1), nn.ReLU()
        self.expand3x3, self.expand3x3_relu = nn.Conv2d(4, 3, 3, padding=1), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.relu(self.squeeze(x))
        return torch.cat([self.expand1x1_relu(self.expand1x1(s)), self.expand3x3_relu(self.expand3x3(s))], 1)


class FireNet(nn.Module):
    """A Fire module named ``fire`` and a Conv2d named ``unused`` that the forward never calls."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fire, self.unused = Fire(), nn.Conv2d(6, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fire(x)


def fire_net() -> nn.Module:
    return FireNet()


def write_images(folder: Path, count: int, size: int = 16, *, classes: tuple[str, ...] = (), seed: int = 0) -> list[Path]:
    """Random RGB PNGs, in class sub-folders when ``classes`` is given."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        sub = folder / classes[i % len(classes)] if classes else folder
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths
