"""Which layers style transfer reads: Gatys's VGG layers, a rule for every other network.

- A VGG (a ``features`` ``nn.Sequential`` of convs, activations and max-pools, as in
  torchvision's ``vgg11`` ... ``vgg19_bn``) gets Gatys et al.'s choice: style from
  ``conv1_1, conv2_1, conv3_1, conv4_1, conv5_1``, content from ``conv4_2``; for
  torchvision's VGG-19 these are ``features.0, 5, 10, 19, 28`` and ``features.21``.
  The names ``convB_K`` (block B, K-th conv) are accepted wherever a layer is named.
- Any other network: its default layers (:func:`convscope.network.layers.default_layers`,
  the stem and every block) that output a map larger than 1x1; style from five of
  them spread evenly from the first to the last, content from the one at 65% of the
  depth (SqueezeNet 1.0: style ``features.0, 4, 7, 9, 12``, content ``features.8``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from convscope.network.layers import default_layers, discover_layers

#: Gatys et al.'s layers, in VGG block names.
GATYS_STYLE = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
GATYS_CONTENT = ("conv4_2",)

#: Where the content layer sits, as a fraction of the depth, for non-VGG networks.
CONTENT_DEPTH = 0.65
#: How many style layers the rule picks for non-VGG networks.
STYLE_COUNT = 5


def vgg_names(model: nn.Module) -> dict[str, str]:
    """``{"conv1_1": "features.0", ...}`` for a VGG-like model; empty for any other.

    Blocks are counted by the max-pools of ``model.features``, convs within a block from 1.

    Example:
        >>> import torchvision
        >>> vgg_names(torchvision.models.vgg19())["conv4_2"]
        'features.21'
    """
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Sequential):
        return {}
    allowed = (nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.BatchNorm2d)
    if not all(isinstance(m, allowed) for m in features) or not any(isinstance(m, nn.MaxPool2d) for m in features):
        return {}
    names: dict[str, str] = {}
    block, conv = 1, 0
    for index, module in enumerate(features):
        if isinstance(module, nn.MaxPool2d):
            block, conv = block + 1, 0
        elif isinstance(module, nn.Conv2d):
            conv += 1
            names[f"conv{block}_{conv}"] = f"features.{index}"
    return names


def resolve(model: nn.Module, names: Sequence[str]) -> list[str]:
    """Dotted names for ``names``, with VGG's ``convB_K`` replaced by the module they stand for."""
    aliases = vgg_names(model)
    return [aliases.get(name, name) for name in names]


def default_style_layers(model: nn.Module, input_size: tuple[int, int]) -> tuple[list[str], list[str]]:
    """``(content_layers, style_layers)`` by the rule in the module docstring, for an ``input_size`` image."""
    aliases = vgg_names(model)
    if all(name in aliases for name in GATYS_STYLE + GATYS_CONTENT):
        return [aliases[n] for n in GATYS_CONTENT], [aliases[n] for n in GATYS_STYLE]
    blocks = set(default_layers(model, input_size))
    maps = [i.name for i in discover_layers(model, input_size) if i.name in blocks and i.shape[1] * i.shape[2] > 1]
    if not maps:
        return [], []
    n = len(maps)
    picks = sorted({round(i * (n - 1) / (STYLE_COUNT - 1)) for i in range(STYLE_COUNT)}) if n > 1 else [0]
    return [maps[round(CONTENT_DEPTH * (n - 1))]], [maps[i] for i in picks]
