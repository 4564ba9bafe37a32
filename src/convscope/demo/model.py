"""TinyAlexNet: AlexNet's five-conv-layer shape, scaled down to train on a laptop CPU.

The module names follow torchvision's ``alexnet`` exactly (``features.0``,
``features.3``, ``features.6``, ``features.8``, ``features.10`` are the five conv
layers), so everything said about AlexNet's layers reads the same here.
"""

from __future__ import annotations

import torch
from torch import nn

#: The names of the five conv layers, in order.
CONV_LAYERS = ("features.0", "features.3", "features.6", "features.8", "features.10")

#: Bump when the architecture or its initialisation changes: cached weights of an
#: older version are then trained again instead of being loaded.
MODEL_VERSION = 2


class TinyAlexNet(nn.Module):
    """AlexNet's layout (conv-pool-conv-pool-conv-conv-conv-pool, classifier), about 0.5 M weights.

    Shapes for a ``(N, 3, 96, 96)`` input (the training size; any input of at
    least 35x35 pixels works, the classifier averages over what is left):

    ============  ======================  ==================
    layer         module                  output
    ============  ======================  ==================
    features.0    Conv2d 3->48, 7x7 /2    (N, 48, 45, 45)
    features.2    MaxPool 3x3 /2          (N, 48, 22, 22)
    features.3    Conv2d 48->96, 5x5 p2   (N, 96, 22, 22)
    features.5    MaxPool 3x3 /2          (N, 96, 10, 10)
    features.6    Conv2d 96->128, 3x3 p1  (N, 128, 10, 10)
    features.8    Conv2d 128->128, 3x3 p1 (N, 128, 10, 10)
    features.10   Conv2d 128->96, 3x3 p1  (N, 96, 10, 10)
    features.12   MaxPool 3x3 /2          (N, 96, 4, 4)
    avgpool       AdaptiveAvgPool 1x1     (N, 96, 1, 1)
    classifier.0  Linear 96->num_classes  (N, num_classes)
    ============  ======================  ==================

    Every conv layer is followed by a ReLU (``features.1``, ``.4``, ``.7``,
    ``.9``, ``.11``); the ReLUs are not in-place, so forward hooks on the
    conv layers see the pre-ReLU outputs and hooks on the ReLUs the rectified ones.

    Args:
        num_classes: number of output classes.
        generator: the source of the initial weights (torch's global one if ``None``).

    Example:
        >>> TinyAlexNet(num_classes=10)(torch.zeros(2, 3, 96, 96)).shape
        torch.Size([2, 10])
    """

    def __init__(self, num_classes: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 48, kernel_size=7, stride=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(48, 96, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(96, 128, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(128, 128, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(128, 96, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(96, num_classes))
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """He-normal conv weights, small normal classifier weights, zero biases.

        conv1 starts 100x smaller than He-normal: its starting noise then fades under
        training and what it learns from the images shows (smooth edges and colours).
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                nn.init.zeros_(module.bias)
                if module is self.features[0]:
                    with torch.no_grad():
                        module.weight.mul_(0.01)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01, generator=generator)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores ``(N, num_classes)`` for normalised images ``(N, 3, H, W)``."""
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))
