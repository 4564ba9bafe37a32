"""Where rows and cols are in global maps that are split, sliced and concatenated along channels.

After a squeeze-excite gate every position of a map sees the whole image, but the map keeps its
rows and cols: MixNet's MixedConv2d splits it into channel groups and concatenates their convs,
GhostNet's Ghost module concatenates two halves and keeps the first channels, timm's
SelectAdaptivePool2d means over the map with keepdim. Each of these layers must stay scannable
(its layout known), with the whole image as every unit's field. Tiny hand-built modules stand in
for timm's, so this runs without timm.
"""

from __future__ import annotations

import torch
from torch import nn

from convscope.network.geometry import ReceptiveField
from convscope.network.layers import discover_layers


class Gate(nn.Module):
    """Squeeze-excite: the map times a gate computed from its mean."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x.mean((2, 3), keepdim=True))


class Mixed(nn.Module):
    """MixNet's MixedConv2d: two channel groups through a 3x3 and a 5x5 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(2, 2, 3, padding=1), nn.Conv2d(2, 2, 5, padding=2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([conv(part) for conv, part in zip(self.convs, torch.split(x, [2, 2], 1))], 1)


class Ghost(nn.Module):
    """GhostNet's Ghost module: a concatenation, then its first channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, 2 * x], 1)[:, :6]


class Pool(nn.Module):
    """timm's SelectAdaptivePool2d without flatten: a mean over the map, kept as 1 x 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


def test_global_maps_keep_rows_and_cols_through_channel_splits_and_concatenations():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Gate(), Mixed(), Ghost(), Pool()).eval()
    infos = {i.name: i for i in discover_layers(model, (16, 12))}
    whole = ReceptiveField(size=(16, 12), stride=(0, 0), offset=(0, 0))
    for name, shape in [("1", (4, 16, 12)), ("2", (4, 16, 12)), ("3", (6, 16, 12)), ("4", (6, 1, 1))]:
        info = infos[name]
        assert (info.shape, info.dims) == (shape, (1, 2, 3)), name
        assert info.fields is not None and info.receptive_field == whole, (name, info.fields)
