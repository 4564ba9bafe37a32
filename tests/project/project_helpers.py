"""Small models and a Captum wrapper shared by the projection tests."""

from __future__ import annotations

import torch
from torch import nn

from convscope.hooks import capture, run_until_captured


class SingleActivation(nn.Module):
    """``model``'s activation ``layer[unit, row, col]`` as the output ``(N,)``, for Captum."""

    def __init__(self, model: nn.Module, layer: str, unit: int, row: int, col: int) -> None:
        super().__init__()
        self.model, self.layer, self.where = model, layer, (unit, row, col)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen: dict[str, torch.Tensor] = {}
        with capture(self.model, [self.layer], seen.__setitem__, stop_after_last=True):
            run_until_captured(self.model, x)
        unit, row, col = self.where
        return seen[self.layer][:, unit, row, col]


def tiny_pool_net(inplace: bool = False) -> nn.Sequential:
    """conv-relu-pool-conv-relu-pool-conv, random weights; 16x16 input gives 2x2 at layer 6."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
        nn.Conv2d(6, 5, 3, padding=1),
    )  # fmt: skip


class FunctionalNet(nn.Module):
    """Same layers as :func:`tiny_pool_net`, with ReLUs as functional calls of kind ``how``."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1), nn.Conv2d(6, 5, 3, padding=1)
        self.how = how

    def relu(self, x: torch.Tensor) -> torch.Tensor:
        if self.how == "F.relu":
            return nn.functional.relu(x)
        if self.how == "F.relu(inplace)":
            return nn.functional.relu(x, inplace=True)
        if self.how == "torch.relu":
            return torch.relu(x)
        x.relu_()  # the in-place method; its result is dropped on purpose
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(self.relu(self.c1(x)), 2)
        x = nn.functional.max_pool2d(self.relu(self.c2(x)), 2)
        return self.c3(x)

    def as_sequential(self) -> nn.Sequential:
        net = tiny_pool_net()
        for mine, theirs in ((self.c1, net[0]), (self.c2, net[3]), (self.c3, net[6])):
            theirs.load_state_dict(mine.state_dict())
        return net


def no_hooks_left(model: nn.Module) -> bool:
    """True when no module of ``model`` holds a hook and no torch function mode is active."""
    for module in model.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks,
                      module._backward_pre_hooks):  # fmt: skip
            if hooks:
                return False
    return torch._C._len_torch_function_stack() == 0
