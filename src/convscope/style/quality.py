"""Did a style transfer reach its targets? Two numbers per layer, each against a fixed level.

- **Style**: each style layer's Gram loss at the end is at most :data:`STYLE_RATIO_MAX`
  (1%) of its value at the start (the content image's, or the noise's).
- **Content**: each content layer's loss at the end is at most :data:`CONTENT_RATIO_MAX`
  of the loss of the style image itself (resized to the result): a picture that has the
  style and none of the content. Judged by eye on the real ImageNet SqueezeNet of
  ``../shared`` with The Starry Night, results at 0.50-0.62 of that loss keep the photo's
  object plainly recognisable, while at 0.72 and above its shape dissolves into the
  painting's strokes; the level sits between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from convscope.style.transfer import StyleResult

STYLE_RATIO_MAX = 0.01
CONTENT_RATIO_MAX = 0.67


@dataclass(frozen=True)
class Quality:
    """Per layer, the measured ratio and whether it is within its level.

    Attributes:
        style: per style layer, Gram loss end / start.
        content: per content layer, content loss end / the style image's (empty for a texture).
    """

    style: dict[str, float]
    content: dict[str, float]

    @property
    def style_met(self) -> bool:
        return all(v <= STYLE_RATIO_MAX for v in self.style.values())

    @property
    def content_met(self) -> bool:
        return all(v <= CONTENT_RATIO_MAX for v in self.content.values())

    def to_dict(self) -> dict:
        return {
            "style_ratio_max": STYLE_RATIO_MAX, "style_ratio": self.style, "style_met": self.style_met,
            "content_ratio_max": CONTENT_RATIO_MAX, "content_ratio": self.content, "content_met": self.content_met,
        }

    def lines(self) -> list[str]:
        """One line per target, for a terminal."""
        out = [f"style:   worst layer {max(self.style.values()):.3g} of its start (target <= {STYLE_RATIO_MAX}): "
               + ("met" if self.style_met else "not met; more --steps or a higher --style-weight")]
        if self.content:
            out.append(f"content: {max(self.content.values()):.3g} of the style image's content loss (target <= {CONTENT_RATIO_MAX}): "
                       + ("met" if self.content_met else "not met; a higher --content-weight keeps more of the photo"))
        return out


def quality(result: StyleResult) -> Quality:
    """The :class:`Quality` of a finished transfer."""
    return Quality(result.style_ratios(), result.content_ratios())
