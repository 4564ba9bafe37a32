"""The lecture's story as a curve: each layer's unit statistics over depth, one figure.

Drawn with matplotlib's Agg backend into an array (nothing is shown or saved here): the
share of dead and always-on units and, where the data had labels, the mean class
selectivity, top-class purity and label agreement of the units, layer by layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: The summary fields drawn, with their legend text and line style.
CURVES = (
    ("label_agreement", "top hits agreeing with the suggested label", "-", "o"),
    ("purity", "top hits in the top class (purity)", "-", "s"),
    ("selectivity", "class selectivity (Morcos et al.)", "-", "^"),
    ("dead", "dead units (never above zero)", "--", "x"),
    ("always_on", "always-on units (above zero on every image)", ":", "+"),
)


def depth_figure(layers: Sequence[str], summaries: Sequence[Mapping[str, float | None]], title: str = "") -> np.ndarray:
    """``uint8 (H, W, 3)``: one line per statistic of :data:`CURVES` over the layers.

    Args:
        layers: layer names, shallow to deep (the x axis).
        summaries: per layer its ``summary`` (see :func:`convscope.atlas.unit_stats.layer_statistics`);
            a statistic absent or ``None`` in every layer is not drawn.
        title: the figure's title.

    Example:
        >>> picture = depth_figure(["conv1", "conv2"], [{"dead": 0.0, "purity": 0.3}, {"dead": 0.1, "purity": 0.6}])
        >>> picture.dtype, picture.shape[2]
        (dtype('uint8'), 3)
    """
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    width = max(6.4, 0.45 * len(layers) + 3) + 3.2  # the legend sits right of the axes
    figure = Figure(figsize=(width, 4.2), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    x = np.arange(len(layers))
    for key, text, style, marker in CURVES:
        values = np.array([_value(s.get(key)) for s in summaries], dtype=np.float64)
        if np.isnan(values).all():
            continue
        axes.plot(x, values, linestyle=style, marker=marker, label=text)
    axes.set_xticks(x, [str(name) for name in layers], rotation=45 if len(layers) > 4 else 0, ha="right" if len(layers) > 4 else "center", fontsize=8)
    axes.set_ylim(-0.02, 1.02)
    axes.set_ylabel("share / index")
    axes.set_xlabel("layer (input to output)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if title:
        axes.set_title(title, fontsize=10)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _value(value: float | None) -> float:
    return float("nan") if value is None else float(value)
