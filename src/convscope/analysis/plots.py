"""The invariance figure (Zeiler & Fergus 2014, Figure 5), drawn with matplotlib's Agg backend into an array.

Rows: translation, scale, rotation; columns: first-layer distance, late-layer distance, the
true class's probability (left out when no image has a label) and the chosen unit's
activation (when there is one). One line per image. Nothing is shown or saved here.
"""

from __future__ import annotations

import numpy as np

from convscope.analysis.invariance import Invariance

_XLABEL = {"translation": "vertical shift (px, + down)", "scale": "scale factor", "rotation": "rotation (degrees)"}


def invariance_figure(result: Invariance, title: str = "") -> np.ndarray:
    """``uint8 (H, W, 3)``: the curves of every image of ``result``.

    Example:
        >>> invariance_figure(invariance(network, images, default_sweeps((32, 32)), shift=9)).shape[2]  # doctest: +SKIP
        3
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = [("first", f"{result.first_layer}: relative distance"), ("late", f"{result.late_layer} (pooled): relative distance")]
    if any(c.probability is not None for i in result.images for c in i.curves):
        columns.append(("probability", "P(true class)"))
    if result.unit is not None:
        columns.append(("unit", f"unit {result.unit[0]}:{result.unit[1]} (spatial max)"))
    kinds = [c.kind for c in result.images[0].curves] if result.images else []
    figure = Figure(figsize=(3.6 * len(columns), 2.7 * max(1, len(kinds)) + 0.8), dpi=100)
    canvas = FigureCanvasAgg(figure)
    for r, kind in enumerate(kinds):
        for c, (key, label) in enumerate(columns):
            axes = figure.add_subplot(len(kinds), len(columns), r * len(columns) + c + 1)
            for image in result.images:
                curve = image.curves[r]
                values = getattr(curve, key)
                if values is not None:
                    axes.plot(curve.values, values, marker=".", linewidth=1.2, label=_short(image.image))
            axes.set_xlabel(_XLABEL.get(kind, kind), fontsize=8)
            axes.set_title(label, fontsize=9)
            axes.tick_params(labelsize=7)
            axes.grid(alpha=0.3)
            if key == "probability":
                axes.set_ylim(-0.02, 1.02)
            if r == 0 and c == len(columns) - 1:
                axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    heading = title + (" — " if title else "") + f"mean shift consistency (Zhang 2019, ±{result.shift} px): {result.mean_consistency:.2f}"
    figure.suptitle(heading, fontsize=10)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _short(name: str) -> str:
    return name if len(name) <= 28 else "…" + name[-27:]
