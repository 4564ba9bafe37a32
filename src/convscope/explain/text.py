"""How explanations print a share: signed, in percent, one decimal."""

from __future__ import annotations


def signed_percent(share: float) -> str:
    """``share`` (a fraction) as a signed percentage with one decimal; a share that rounds to
    zero prints as ``+0.0%`` whatever its sign (never ``-0.0%``).

    Example:
        >>> signed_percent(0.1234), signed_percent(-0.02), signed_percent(-0.00001)
        ('+12.3%', '-2.0%', '+0.0%')
    """
    value = round(share * 100, 1)
    return f"{value + 0.0:+.1f}%"  # adding 0.0 turns -0.0 into 0.0
