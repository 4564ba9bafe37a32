"""Gatys et al.'s Figure 1 for any network: what each layer's content and style hold.

A *content reconstruction* starts from seeded noise and optimises only the content loss
of one layer: the image that layer cannot tell from the content image. Shallow layers
give the photo back almost exactly; deep ones keep the objects and lose the pixels.
A *style reconstruction* optimises only the style loss of the first style layer, then
of the first two, ... then of all of them: a texture with the painting's Gram matrices
up to that depth, whose structures grow with the layers included.

Every reconstruction is one call of :func:`convscope.style.transfer.stylise`, so the
hooks, the frozen weights and the losses are those of a style transfer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from convscope.network.load import Network
from convscope.style.layers import resolve, vgg_names
from convscope.style.transfer import ImageLike, ProgressFn, StyleResult, stylise

#: Gatys et al.'s content reconstructions (Fig. 1): conv1_2 ... conv5_2 on a VGG.
GATYS_CONTENT_DEPTHS = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")


@dataclass(frozen=True)
class Reconstruction:
    """One picture of the figure.

    Attributes:
        kind: ``"content"`` (from one content layer) or ``"style"`` (from the first style layers).
        layers: the layers whose loss was optimised.
        result: the optimisation's :class:`StyleResult` (``result.image`` is ``uint8 (H, W, 3)``).
    """

    kind: str
    layers: tuple[str, ...]
    result: StyleResult

    def ratio(self) -> float:
        """The optimised loss at the end over the one at the start (the noise's), summed over the layers."""
        start, end = self.result.start, self.result.end
        before, after = (start.content, end.content) if self.kind == "content" else (start.style, end.style)
        total = sum(before.values())
        return sum(after.values()) / total if total > 0 else 0.0


@dataclass(frozen=True)
class Explanation:
    """Content reconstructions (one per content layer) and style reconstructions (first 1, 2, ... style layers)."""

    content: tuple[Reconstruction, ...]
    style: tuple[Reconstruction, ...]

    def to_dict(self) -> dict:
        """Per picture: its layers and the end/start ratio of its loss (the JSON written beside the figure)."""
        return {
            f"{kind}_reconstructions": [{"layers": list(r.layers), "loss_end_over_start": r.ratio(), "seconds": round(r.result.seconds, 3)} for r in recs]
            for kind, recs in (("content", self.content), ("style", self.style))
        }


def explain_content_layers(model: nn.Module, style_layers: Sequence[str]) -> list[str]:
    """The layers of the content row: Gatys's ``conv1_2 ... conv5_2`` on a VGG, else the style layers (spread over depth)."""
    aliases = vgg_names(model)
    if all(name in aliases for name in GATYS_CONTENT_DEPTHS):
        return [aliases[name] for name in GATYS_CONTENT_DEPTHS]
    return list(style_layers)


def explain_layers(
    network: Network, content: ImageLike, styles: ImageLike | Sequence[ImageLike],
    content_layers: Sequence[str] | None = None, style_layers: Sequence[str] | None = None, size: int = 192,
) -> tuple[list[str], list[str]]:
    """``(content row layers, style layers)`` of :func:`explain`, checked on the images (a run of zero steps)."""
    probe = stylise(network, content, styles, content_layers=content_layers, style_layers=style_layers, size=size, steps=0)
    rows = resolve(network.model, content_layers) if content_layers is not None else explain_content_layers(network.model, probe.style_layers)
    return rows, probe.style_layers


def explain(
    network: Network,
    content: ImageLike,
    styles: ImageLike | Sequence[ImageLike],
    *,
    content_layers: Sequence[str] | None = None,
    style_layers: Sequence[str] | None = None,
    size: int = 192,
    steps: int = 200,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> Explanation:
    """Reconstruct ``content`` from each content layer and ``styles`` from the first 1, 2, ... style layers.

    Args:
        network: a loaded network.
        content: the content image; styles: one or more style images (Gram matrices averaged).
        content_layers: one reconstruction per layer; default :func:`explain_content_layers`.
        style_layers: default as for :func:`stylise` (Gatys's ``conv1_1 ... conv5_1`` on a VGG).
        size: long side of the content reconstructions; the style ones are ``size`` x ``size``.
        steps: L-BFGS steps of each reconstruction, all from the same seeded noise.
        progress: called after every step of every reconstruction, as ``progress(step, losses)``
            with ``step`` counted over the whole figure.

    Returns:
        An :class:`Explanation`; every picture ``uint8 (H, W, 3)``.

    Example:
        >>> net = load_network("torchvision:vgg19", weights="vgg19.pth")  # doctest: +SKIP
        >>> figure = explain(net, "photo.jpg", "starry_night.jpg")  # doctest: +SKIP
        >>> [r.layers for r in figure.style][:2]  # doctest: +SKIP
        [('features.0',), ('features.0', 'features.5')]
    """
    if content_layers is not None and style_layers is not None:  # named: no probe (the CLI has run one to count the steps)
        content_list, style_list = resolve(network.model, content_layers), resolve(network.model, style_layers)
    else:
        content_list, style_list = explain_layers(network, content, styles, content_layers, style_layers, size)
    done = 0

    def counted(step: int, losses) -> None:
        if progress is not None:
            progress(done + step, losses)

    content_recs = []
    for layer in content_list:
        result = stylise(
            network, content, styles, content_layers=[layer], style_layers=style_list[:1], style_weight=0.0,
            size=size, init="noise", steps=steps, seed=seed, progress=counted,
        )
        content_recs.append(Reconstruction("content", (layer,), result))
        done += steps
    style_recs = []
    for depth in range(1, len(style_list) + 1):
        result = stylise(
            network, None, styles, style_layers=style_list[:depth], size=size, init="noise", steps=steps, seed=seed,
            progress=counted,
        )
        style_recs.append(Reconstruction("style", tuple(style_list[:depth]), result))
        done += steps
    return Explanation(tuple(content_recs), tuple(style_recs))
