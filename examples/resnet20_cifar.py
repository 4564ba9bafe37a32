"""The CIFAR-10 ResNet-20 of He et al. 2016, "Deep Residual Learning for Image Recognition", section 4.2.

A 3x3 convolution with 16 filters, then three stages of ``n = 3`` basic blocks on
feature maps of 32x32, 16x16 and 8x8 with 16, 32 and 64 filters (6n + 2 = 20 weighted
layers), global average pooling and a 10-way linear classifier. Each basic block is
``conv3x3 -> BN -> ReLU -> conv3x3 -> BN``, plus the shortcut, then ReLU. The first
block of stages 2 and 3 halves the map with stride 2 in its first convolution.

Shortcuts are the paper's *option A*, without parameters: the identity, or where a
block changes shape, every second row and column of the input (``x[:, :, ::2, ::2]``)
with the new channels zero-padded, half before and half after the old ones.

Module names match the state dict of akamaster/pytorch_resnet_cifar10 once its
``module.`` prefix is stripped (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``linear``),
so convscope's loader reads that checkpoint directly::

    convscope atlas examples/resnet20_cifar.py:resnet20 IMAGES --weights resnet20-cifar10.th \\
        --input-size 32 --out atlas/

Example:
    >>> model = resnet20().eval()
    >>> model(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: subsample by ``stride`` and zero-pad ``out_channels - in_channels`` channels.

    ``(N, C_in, H, W)`` to ``(N, C_out, ceil(H / stride), ceil(W / stride))``.

    Example:
        >>> ZeroPadShortcut(16, 32, stride=2)(torch.ones(1, 16, 32, 32)).shape
        torch.Size([1, 32, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.before = (out_channels - in_channels) // 2
        self.after = out_channels - in_channels - self.before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.before, self.after))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    ``(N, in_channels, H, W)`` to ``(N, out_channels, H / stride, W / stride)``.

    Example:
        >>> BasicBlock(16, 32, stride=2)(torch.zeros(1, 16, 32, 32)).shape
        torch.Size([1, 32, 16, 16])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = ZeroPadShortcut(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A CIFAR ResNet of depth ``6 * blocks + 2``: ``(N, 3, 32, 32)`` images to ``(N, classes)`` logits.

    Args:
        blocks: basic blocks per stage (3 for ResNet-20, 9 for ResNet-56).
        classes: outputs of the final linear layer.

    Example:
        >>> CifarResNet(blocks=1)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """

    def __init__(self, blocks: int = 3, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._stage(16, 16, blocks, stride=1)
        self.layer2 = self._stage(16, 32, blocks, stride=2)
        self.layer3 = self._stage(32, 64, blocks, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, blocks: int, stride: int) -> nn.Sequential:
        first = BasicBlock(in_channels, out_channels, stride)
        return nn.Sequential(first, *(BasicBlock(out_channels, out_channels) for _ in range(blocks - 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(torch.flatten(self.pool(x), 1))


def resnet20() -> nn.Module:
    """ResNet-20 for CIFAR-10 (0.27 M parameters), randomly initialised.

    Example:
        >>> sum(p.numel() for p in resnet20().parameters())
        269722
    """
    return CifarResNet(blocks=3, classes=10)
