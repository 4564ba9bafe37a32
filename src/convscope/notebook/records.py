"""A unit's hits and suggested label as read from a layer's records (``hits.js``; ``hits.json`` before format version 4) (see docs/atlas-format.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from convscope.errors import AtlasError
from convscope.network.geometry import Box


@dataclass(frozen=True)
class Hit:
    """One hit (or bottom hit) of a unit, as the atlas stores it.

    Attributes:
        rank: 0 for the strongest (for a bottom hit: the weakest).
        activation: the unit's value there (``None`` when not finite).
        image: the image's path relative to the scanned folder, ``/``-separated.
        label: the image's class name, or ``None``.
        image_file: the stored model-input-frame image, relative to the atlas folder.
        row, col: the position in the layer's output.
        box: the receptive field of the position, ``[top, left, bottom, right)`` in
            model-input pixels; it may reach past the image.

    Example:
        >>> hit = Hit.from_record({"rank": 0, "activation": 3.5, "image": "cat/1.jpg", "label": "cat",
        ...                        "image_file": "images/000001.jpg", "row": 2, "col": 3, "box": [-1, 0, 4, 5]})
        >>> hit.box, hit.box.height
        (Box(top=-1, left=0, bottom=4, right=5), 5)
    """

    rank: int
    activation: float | None
    image: str
    label: str | None
    image_file: str
    row: int
    col: int
    box: Box

    @classmethod
    def from_record(cls, record: Any) -> "Hit":
        """A hit from its JSON record; a malformed record is an :class:`AtlasError`."""
        try:
            activation = record.get("activation")
            return cls(
                rank=int(record["rank"]),
                activation=None if activation is None else float(activation),
                image=str(record["image"]),
                label=None if record.get("label") is None else str(record["label"]),
                image_file=str(record["image_file"]),
                row=int(record["row"]),
                col=int(record["col"]),
                box=Box(*(int(v) for v in record["box"])),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise AtlasError(
                f"a hit record of the atlas is malformed ({error!r}): {str(record)[:200]}",
                hint="the atlas is damaged; rebuild it with `convscope atlas`",
            ) from error


@dataclass(frozen=True)
class Label:
    """A unit's suggested label: the most common class among its top hits.

    Attributes:
        name: the class name; index: its class index (into ``Atlas.class_names``).
        agreeing: how many of the ``hits`` labelled top hits carry it.
        purity: share of the top hits in the unit's top class (by class mean).
        chance: probability of this much agreement by chance (``nan`` when not stored).
        confidence: ``"high"``, ``"medium"``, ``"low"`` or ``"none"``.
        text: one line for people, e.g. ``"deer: 9 of 9 hits, selectivity 0.29"``.

    Example:
        >>> Label.from_record({"name": "deer", "class": 4, "agreeing": 9, "hits": 9, "purity": 1.0,
        ...                    "chance": 1e-8, "confidence": "high", "text": "deer: 9 of 9 hits"}).confidence
        'high'
    """

    name: str
    index: int
    agreeing: int
    hits: int
    purity: float
    chance: float
    confidence: str
    text: str

    @classmethod
    def from_record(cls, record: Any) -> "Label | None":
        """The label of a unit's ``stats["label"]`` record (``None`` stays ``None``)."""
        if record is None:
            return None
        try:
            return cls(
                name=str(record["name"]),
                index=int(record["class"]),
                agreeing=int(record["agreeing"]),
                hits=int(record["hits"]),
                purity=_float(record.get("purity")),
                chance=_float(record.get("chance")),
                confidence=str(record.get("confidence", "none")),
                text=str(record.get("text", record["name"])),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise AtlasError(
                f"a label record of the atlas is malformed ({error!r}): {str(record)[:200]}",
                hint="the atlas is damaged; rebuild it with `convscope atlas`",
            ) from error


def _float(value: Any) -> float:
    """A JSON number as a float, ``None`` (a non-finite number) as NaN."""
    return math.nan if value is None else float(value)
