"""Did a style transfer reach its targets? Two numbers per layer, each against a fixed level.

- **Style**: each style layer's Gram loss at the end is at most
  ``max(STYLE_RATIO_MAX, FLOOR_FACTOR * floor / start)`` of its value at the start (the content
  image's, or the noise's): 1% of the start, or 1.5x the layer's *floor*, whichever is larger.
  The floor (:attr:`convscope.style.transfer.StyleResult.floor`) is what the style image itself,
  resized to the result's shape, scores against the target: on the real SqueezeNet of ``../shared``
  with The Starry Night at 256 px the painting's own Gram loss is 1.2% of the photo's at
  ``features.9`` and 2.2% at ``features.12``, so a flat 1% would ask those layers to match the
  painting better than the painting does at that shape.
- **Content**: each content layer's loss at the end is at most :data:`CONTENT_RATIO_MAX`
  of the loss of the style image itself (resized to the result): a picture that has the
  style and none of the content. Judged by eye on the real ImageNet SqueezeNet of
  ``../shared`` with The Starry Night, results at 0.50-0.62 of that loss keep the photo's
  object plainly recognisable, while at 0.72 and above its shape dissolves into the
  painting's strokes; the level sits between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from convscope.style.transfer import StyleResult

STYLE_RATIO_MAX = 0.01
#: A style layer may end at this many times its floor (over its start) where that is above 1%.
FLOOR_FACTOR = 1.5
CONTENT_RATIO_MAX = 0.67


@dataclass(frozen=True)
class Quality:
    """Per layer, the measured ratio and whether it is within its level.

    Attributes:
        style: per style layer, Gram loss end / start.
        content: per content layer, content loss end / the style image's (empty for a texture).
        floor: per style layer, its floor / start (empty: the level is :data:`STYLE_RATIO_MAX` alone).
    """

    style: dict[str, float]
    content: dict[str, float]
    floor: dict[str, float] = field(default_factory=dict)

    def style_limit(self) -> dict[str, float]:
        """Per style layer, the most its end/start may be: ``max(1%, 1.5 * floor / start)``."""
        return {k: max(STYLE_RATIO_MAX, FLOOR_FACTOR * self.floor.get(k, 0.0)) for k in self.style}

    @property
    def style_met(self) -> bool:
        limit = self.style_limit()
        return all(v <= limit[k] for k, v in self.style.items())

    @property
    def content_met(self) -> bool:
        return all(v <= CONTENT_RATIO_MAX for v in self.content.values())

    def to_dict(self) -> dict:
        return {
            "style_ratio_max": STYLE_RATIO_MAX, "style_floor_factor": FLOOR_FACTOR, "style_floor_ratio": self.floor,
            "style_limit": self.style_limit(), "style_ratio": self.style, "style_met": self.style_met,
            "content_ratio_max": CONTENT_RATIO_MAX, "content_ratio": self.content, "content_met": self.content_met,
        }

    def lines(self) -> list[str]:
        """One line per target, for a terminal."""
        limit = self.style_limit()
        worst = max(self.style, key=lambda k: self.style[k] / limit[k])
        floor = f", {FLOOR_FACTOR}x its floor {self.floor[worst]:.3g}" if worst in self.floor else ""
        out = [f"style:   closest to its limit {worst}, {self.style[worst]:.3g} of its start (limit {limit[worst]:.3g}: "
               f"the larger of {STYLE_RATIO_MAX}{floor}): "
               + ("met" if self.style_met else "not met; more --steps or a higher --style-weight")]
        if self.content:
            out.append(f"content: {max(self.content.values()):.3g} of the style image's content loss (target <= {CONTENT_RATIO_MAX}): "
                       + ("met" if self.content_met else "not met; a higher --content-weight keeps more of the photo"))
        return out


def quality(result: StyleResult) -> Quality:
    """The :class:`Quality` of a finished transfer."""
    return Quality(result.style_ratios(), result.content_ratios(), result.floor_ratios())
