"""HTML pieces for Jupyter's rich display: escaped text, numbers, inline images, an SVG histogram, bars, badges.

Everything is self-contained: images are ``data:`` URIs, styles are inline (a notebook keeps
them when it sanitises untrusted output), there are no scripts and nothing is fetched. Every
string that comes from data (layer, class and file names, labels) goes through :func:`esc`.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

FONT = "font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; font-size: 13px; line-height: 1.35"
INK, MUTED, RULE, PAPER = "#1f2328", "#656d76", "#d0d7de", "#ffffff"
ACCENT, BAR = "#0969da", "#8cb4e6"
#: Badge colours of a suggested label's confidence.
CONFIDENCE = {"high": "#1a7f37", "medium": "#9a6700", "low": "#6e7781", "none": "#afb8c1"}


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes.

    Example:
        >>> esc("<script>alert('x')</script> & \\"y\\"")
        '&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;y&quot;'
    """
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits; ``"–"`` for ``None`` or NaN.

    Example:
        >>> number(15.479413), number(0.000123), number(None), number(float("nan")), number(12345.6)
        ('15.5', '0.000123', '–', '–', '1.23e+04')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.{digits}g}"


def percent(value: Any) -> str:
    """A share in [0, 1] as a percentage; ``"–"`` for ``None`` or NaN.

    Example:
        >>> percent(0.9995), percent(0.25), percent(None)
        ('99.95%', '25%', '–')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100 * float(value):.4g}%"


def png_uri(image: Image.Image | np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of an RGB image (a PIL image or ``uint8 (H, W, 3)``).

    Example:
        >>> png_uri(np.zeros((2, 2, 3), np.uint8))[:22]
        'data:image/png;base64,'
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def img(image: Image.Image | np.ndarray, *, side: int, title: str = "", css: str = "") -> str:
    """An ``<img>`` of ``image`` fitted into a ``side``-pixel square: a small picture enlarged by
    a whole factor with crisp pixels, a large one reduced smoothly.

    Example:
        >>> tag = img(np.zeros((3, 3, 3), np.uint8), side=64, title="<b>")
        >>> 'width="63"' in tag, "pixelated" in tag, "&lt;b&gt;" in tag
        (True, True, True)
    """
    width, height = image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])
    longest = max(width, height, 1)
    scale = float(side // longest) if longest <= side else side / longest
    pixelated = "image-rendering: pixelated; " if scale > 1 else ""
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    return (
        f'<img src="{png_uri(image)}" width="{w}" height="{h}" alt="{esc(title)}" title="{esc(title)}" '
        f'style="{pixelated}display: block; {css}">'
    )


def histogram_svg(
    counts: Sequence[int] | np.ndarray,
    low: float,
    high: float,
    marks: Sequence[tuple[str, float]] = (),
    *,
    width: int = 340,
    height: int = 96,
    title: str = "",
) -> str:
    """An inline SVG bar chart of ``counts`` ``(bins,)`` in equal bins from ``low`` to ``high``,
    with a vertical tick and its name at every ``(name, value)`` of ``marks`` (e.g. quantiles).

    Example:
        >>> svg = histogram_svg([1, 4, 2], 0.0, 3.0, [("median", 1.5)], title="<unit>")
        >>> svg.count("<rect"), "median" in svg, "&lt;unit&gt;" in svg
        (3, True, True)
    """
    counts = np.asarray(counts, dtype=np.float64)
    pad, axis = 4, 16
    plot_w, plot_h = width - 2 * pad, height - axis - 14
    top = 12
    peak = counts.max() if counts.size and counts.max() > 0 else 1.0
    bar_w = plot_w / max(len(counts), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'style="display: block; overflow: visible" role="img">',
        f"<title>{esc(title)}</title>",
    ]
    for i, count in enumerate(counts):
        h = plot_h * count / peak
        if count > 0:
            h = max(h, 1.0)  # a non-empty bin stays visible
        parts.append(f'<rect x="{pad + i * bar_w:.2f}" y="{top + plot_h - h:.2f}" width="{max(bar_w - 1, 0.5):.2f}" height="{h:.2f}" fill="{BAR}"><title>{int(count)}</title></rect>')
    baseline = top + plot_h
    parts.append(f'<line x1="{pad}" y1="{baseline}" x2="{pad + plot_w}" y2="{baseline}" stroke="{MUTED}" stroke-width="1"/>')
    span = high - low if math.isfinite(high - low) and high > low else 1.0
    for name, value in marks:
        if value is None or not math.isfinite(value):
            continue
        x = pad + plot_w * min(max((value - low) / span, 0.0), 1.0)
        parts.append(f'<line x1="{x:.2f}" y1="{top - 2}" x2="{x:.2f}" y2="{baseline + 3}" stroke="{ACCENT}" stroke-width="1" stroke-dasharray="2,2"/>')
        parts.append(f'<text x="{x:.2f}" y="{top - 4}" font-size="10" fill="{ACCENT}" text-anchor="middle">{esc(name)}</text>')
    label = f'font-size="10" fill="{MUTED}" y="{baseline + 12}"'
    parts.append(f'<text x="{pad}" {label} text-anchor="start">{esc(number(low))}</text>')
    parts.append(f'<text x="{pad + plot_w}" {label} text-anchor="end">{esc(number(high))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bars(rows: Sequence[tuple[str, float, bool]], *, width: int = 140) -> str:
    """Horizontal bars: per ``(name, value, highlighted)`` the name, a bar as long as
    ``value`` relative to the largest (negative values clipped to 0) and the value.

    Example:
        >>> html_ = bars([("cat", 2.0, True), ("<dog>", 1.0, False)])
        >>> "&lt;dog&gt;" in html_, html_.count("<tr")
        (True, 2)
    """
    peak = max([v for _, v, _ in rows if v is not None and math.isfinite(v)] + [0.0])
    out = ['<table style="border-collapse: collapse">']
    for name, value, highlighted in rows:
        share = max(value, 0.0) / peak if peak > 0 and value is not None and math.isfinite(value) else 0.0
        colour = ACCENT if highlighted else BAR
        weight = "font-weight: 600; " if highlighted else ""
        out.append(
            f'<tr><td style="padding: 1px 8px 1px 0; text-align: right; {weight}max-width: 140px; overflow: hidden; '
            f'text-overflow: ellipsis; white-space: nowrap" title="{esc(name)}">{esc(name)}</td>'
            f'<td style="padding: 1px 0"><div style="width: {width}px; background: #f0f2f4; height: 10px">'
            f'<div style="width: {share * width:.1f}px; background: {colour}; height: 10px"></div></div></td>'
            f'<td style="padding: 1px 0 1px 6px; color: {MUTED}; font-variant-numeric: tabular-nums">{esc(number(value))}</td></tr>'
        )
    out.append("</table>")
    return "".join(out)


def badge(text: str, colour: str) -> str:
    """A small rounded label."""
    return f'<span style="display: inline-block; padding: 0 7px; border-radius: 9px; background: {colour}; color: #fff; font-size: 11px; line-height: 18px">{esc(text)}</span>'
