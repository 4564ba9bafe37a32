"""How settled a layer is between two checkpoints, and the settle curve over training.

The measure (Zeiler & Fergus 2014, Section 4.2: "the lower layers of the model can be seen
to converge within a few epochs; the upper layers only develop after a considerable number
of epochs"), between two consecutive checkpoints, over *every* unit of the layer:

- ``topk_overlap``: the mean over units of the Jaccard overlap ``|A & B| / |A | B|`` of the
  unit's top-k *image* sets ``A`` (before) and ``B`` (after); 1 when every unit keeps its
  k images, 0 when none keeps any.
- ``top1_same``: the share of units whose strongest hit is on the same image.

A unit whose k top activations are all equal at either checkpoint (dead after a ReLU, or
constant) has a top-k made of ties in image order, which says nothing; it is left out
(``units`` counts the units measured). A layer with none left gets ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from convscope.scan.topk import TopK


@dataclass(frozen=True)
class Settle:
    """A layer's settle numbers between two consecutive checkpoints (see the module docstring).

    Attributes:
        topk_overlap: mean Jaccard overlap of the units' top-k image sets, or ``None``.
        top1_same: share of units whose top-1 image is unchanged, or ``None``.
        units: units measured (live at both checkpoints).
    """

    topk_overlap: float | None
    top1_same: float | None
    units: int

    def to_dict(self) -> dict:
        return {"topk_overlap": self.topk_overlap, "top1_same": self.top1_same, "units": self.units}


def _informative(topk: TopK) -> np.ndarray:
    """``bool (units,)``: the unit has a hit and (with k > 1) its top-k values are not all equal."""
    has = topk.images[:, 0].numpy() >= 0
    values = topk.values.double().numpy()
    if values.shape[1] < 2:
        return has
    values = np.where(np.isfinite(values), values, values[:, :1])  # missing hits change no spread
    return has & (values.max(axis=1) - values.min(axis=1) > 0)


def settle_layer(before: TopK, after: TopK) -> Settle:
    """The settle numbers of one layer from its top-k at two checkpoints ``(units, k)`` each.

    Example:
        >>> import torch
        >>> a = TopK(torch.tensor([[3., 2.], [5., 1.]]), torch.tensor([[0, 1], [2, 3]]), torch.zeros(2, 2, dtype=torch.long))
        >>> b = TopK(torch.tensor([[4., 2.], [5., 1.]]), torch.tensor([[1, 0], [2, 4]]), torch.zeros(2, 2, dtype=torch.long))
        >>> s = settle_layer(a, b)
        >>> s.topk_overlap, s.top1_same, s.units
        (0.6666666666666666, 0.5, 2)
    """
    keep = _informative(before) & _informative(after)
    first, second = before.images.numpy(), after.images.numpy()
    overlaps, same = [], []
    for unit in np.flatnonzero(keep):
        a, b = set(first[unit][first[unit] >= 0].tolist()), set(second[unit][second[unit] >= 0].tolist())
        overlaps.append(len(a & b) / len(a | b))
        same.append(first[unit, 0] == second[unit, 0])
    if not overlaps:
        return Settle(None, None, 0)
    return Settle(float(np.mean(overlaps)), float(np.mean(same)), len(overlaps))


def _line(row: Sequence[Settle], key: str) -> np.ndarray:
    return np.array([np.nan if getattr(x, key) is None else getattr(x, key) for x in row], dtype=np.float64)


def settle_figure(
    layers: Sequence[str],
    names: Sequence[str],
    settles: Sequence[Sequence[Settle]],
    to_final: Sequence[Sequence[Settle]] | None = None,
    title: str = "",
) -> np.ndarray:
    """``uint8 (H, W, 3)``: the settle curves, one colour per layer (light: shallow, dark: deep).

    Left: between consecutive checkpoints, each layer's top-k overlap (solid) and share of
    top-1 images kept (dashed). Right (with ``to_final``): each checkpoint's top-k overlap
    with the last checkpoint's, i.e. how much of its final top hits a layer already has.

    Args:
        layers: layer names, shallow to deep.
        names: the checkpoints' labels; the left x axis has one tick per step ``names[i-1] -> names[i]``.
        settles: per layer, per checkpoint after the first, its :class:`Settle`.
        to_final: per layer, per checkpoint, its :class:`Settle` against the last checkpoint.
        title: the figure's title.

    Example:
        >>> s = [[Settle(0.5, 0.5, 4), Settle(0.9, 1.0, 4)], [Settle(0.1, 0.0, 4), Settle(0.3, 0.25, 4)]]
        >>> settle_figure(["conv1", "conv2"], ["e1", "e2", "e3"], s).shape[2]
        3
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    steps = len(names) - 1
    panels = 2 if to_final is not None else 1
    width = panels * max(5.0, 0.9 * steps + 2.5) + 2.6
    figure = Figure(figsize=(width, 4.6), dpi=100)
    canvas = FigureCanvasAgg(figure)
    colours = colormaps["viridis"](np.linspace(0.85, 0.0, max(1, len(layers))))
    left = figure.add_subplot(1, panels, 1)
    x = np.arange(1, steps + 1)
    for layer, row, colour in zip(layers, settles, colours):
        left.plot(x, _line(row, "topk_overlap"), "-o", color=colour)
        left.plot(x, _line(row, "top1_same"), "--", marker="x", color=colour, alpha=0.7)
    left.set_xticks(x, [f"{names[i - 1]}\n-> {names[i]}" for i in x], fontsize=8)
    left.set_xlim(0.5, steps + 0.5)
    left.set_ylabel("share kept")
    left.set_title("kept since the previous checkpoint", fontsize=10)
    axes = [left]
    if to_final is not None:
        right = figure.add_subplot(1, panels, 2)
        x = np.arange(len(names))
        for layer, row, colour in zip(layers, to_final, colours):
            right.plot(x, _line(row, "topk_overlap"), "-o", color=colour)
        right.set_xticks(x, list(names), fontsize=8, rotation=30 if len(names) > 5 else 0)
        right.set_title(f"top-k shared with the last checkpoint ({names[-1]})", fontsize=10)
        axes.append(right)
    for a in axes:
        a.set_ylim(-0.02, 1.02)
        a.grid(alpha=0.3)
    styles = [Line2D([], [], color="0.3", linestyle="-", marker="o", label="top-k images: Jaccard overlap"),
              Line2D([], [], color="0.3", linestyle="--", marker="x", label="top-1 image kept: share of units")]
    left.legend(handles=styles, fontsize=8, loc="upper left", frameon=False)
    layer_lines = [Line2D([], [], color=c, linestyle="-", marker="o", label=name) for name, c in zip(layers, colours)]
    axes[-1].legend(handles=layer_lines, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="layer")
    figure.suptitle(title or "how settled each layer is: the images of its units' top hits over training", fontsize=11)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
