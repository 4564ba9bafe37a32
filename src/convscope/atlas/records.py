"""A layer's records on disk (atlas format version 4): stored once, compact, and expanded for readers.

A layer's records live in ``layers/<layer>/hits.js``, a data script of three lines that the
viewer loads with ``<script src>`` (which browsers allow from ``file://``, unlike ``fetch``)
and that every other tool reads as JSON from its second line::

    window.convscopeRegister("layer", 3,
    {"layer":"features.0","k":9,"hit_fields":["activation","image","row","col","top","left","bottom","right"],
     "images":[["images/000012.jpg","cat/0012.jpg","cat"]],"units":[{"unit":0,"mean":0.41,"hits":[[3.25,0,5,7,18,26,29,37]]}]}
    );

(the JSON is one line). A hit is one row of :data:`HIT_FIELDS`: its activation (a float32,
written as the shortest decimal that reads back as the same float32), its slot in the layer's
``images`` table (``[image_file, path, label]``: the stored JPEG, the path in the dataset, the label),
its position and its box. Its rank is its place in the list. Keys appear once per layer, not
once per hit; only our own fixed names are object keys (paths and labels are values), so the
JSON is safe as a JavaScript object literal. :func:`expand` turns a record back into the
version-3 shape (a dict per hit with ``rank``, ``activation``, ``image``, ``label``,
``image_file``, ``row``, ``col``, ``box``) that readers use.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

#: The columns of a stored hit, in order.
HIT_FIELDS = ("activation", "image", "row", "col", "top", "left", "bottom", "right")
#: The unit record's keys that hold hit lists.
HIT_LISTS = ("hits", "bottom")

_HEAD = 'window.convscopeRegister("layer", {index},\n'
_TAIL = "\n);\n"


def float32(value: float | None) -> float | None:
    """``value`` as the shortest decimal that reads back as the same float32 (``None``: not finite).

    Example:
        >>> float32(0.1 + 0.2), float32(float("nan")), float32(None)
        (0.3, None, None)
    """
    if value is None:
        return None
    single = np.float32(value)
    return float(str(single)) if np.isfinite(single) else None


def compact(record: dict[str, Any]) -> dict[str, Any]:
    """A layer's records as stored: each hit dict (``rank``, ``activation``, ``image``, ``label``,
    ``image_file``, ``row``, ``col``, ``box``, in rank order) a row of :data:`HIT_FIELDS`, its image a
    slot of the layer's ``images`` table; everything else as it is. :func:`expand` inverts it (up to
    the activations' float32 rounding).

    Example:
        >>> hit = {"rank": 0, "activation": 2.5, "image": "a.jpg", "label": None, "image_file": "images/000007.jpg",
        ...        "row": 1, "col": 2, "box": [-1, 0, 2, 3]}
        >>> stored = compact({"layer": "c", "units": [{"unit": 0, "hits": [hit]}]})
        >>> stored["images"], stored["units"][0]["hits"]
        ([['images/000007.jpg', 'a.jpg', None]], [[2.5, 0, 1, 2, -1, 0, 2, 3]])
        >>> expand(stored)["units"][0]["hits"] == [hit]
        True
    """
    slots: dict[str, int] = {}
    images: list[list[Any]] = []

    def row(rank: int, hit: dict[str, Any]) -> list[Any]:
        if hit["rank"] != rank:
            raise ValueError(f"hits must be in rank order: rank {hit['rank']} at place {rank}")
        slot = slots.get(hit["image_file"])
        if slot is None:
            slot = slots[hit["image_file"]] = len(images)
            images.append([hit["image_file"], hit["image"], hit["label"]])
        return [float32(hit["activation"]), slot, int(hit["row"]), int(hit["col"]), *(int(v) for v in hit["box"])]

    units = []
    for unit in record["units"]:
        unit = dict(unit)
        for key in HIT_LISTS:
            if key in unit:
                unit[key] = [row(rank, hit) for rank, hit in enumerate(unit[key])]
        units.append(unit)
    head = {key: value for key, value in record.items() if key != "units"}
    return head | {"hit_fields": list(HIT_FIELDS), "images": images, "units": units}


def to_json(payload: Any) -> str:
    """``payload`` as compact JSON with every non-ASCII character escaped (what the data
    scripts embed, and valid UTF-8 JSON for a data file too)."""
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def data_script(index: int, record: dict[str, Any]) -> str:
    """The text of ``hits.js``: ``record`` registered as layer ``index`` (see the module docstring).

    Example:
        >>> text = data_script(0, {"layer": "a</script>", "units": []})
        >>> print(text, end="")
        window.convscopeRegister("layer", 0,
        {"layer":"a</script>","units":[]}
        );
        >>> parse_data_script(text)
        {'layer': 'a</script>', 'units': []}
    """
    return _HEAD.format(index=int(index)) + to_json(record) + _TAIL


def parse_data_script(text: str) -> Any:
    """The JSON record of a ``hits.js`` text (ValueError if it is not one)."""
    lines = text.split("\n")
    if len(lines) != 4 or not lines[0].startswith('window.convscopeRegister("layer", ') or lines[2] != ");" or lines[3]:
        raise ValueError("not a convscope layer data script (three lines: the call, the JSON, ');')")
    return json.loads(lines[1])


def expand(record: dict[str, Any]) -> dict[str, Any]:
    """A stored layer record in the version-3 shape: each hit a dict (see the module docstring).

    Example:
        >>> stored = {"layer": "c", "k": 1, "hit_fields": list(HIT_FIELDS), "images": [["images/000007.jpg", "a.jpg", None]],
        ...           "units": [{"unit": 0, "mean": 1.0, "hits": [[2.5, 0, 1, 2, -1, 0, 2, 3]]}]}
        >>> expand(stored)["units"][0]["hits"]
        [{'rank': 0, 'activation': 2.5, 'image': 'a.jpg', 'label': None, 'image_file': 'images/000007.jpg', 'row': 1, 'col': 2, 'box': [-1, 0, 2, 3]}]
    """
    fields = record.get("hit_fields")
    if fields != list(HIT_FIELDS):
        raise ValueError(f"hit_fields {fields!r} are not {list(HIT_FIELDS)!r}")
    images = [tuple(row) for row in record["images"]]
    units = []
    for unit in record["units"]:
        unit = dict(unit)
        for key in HIT_LISTS:
            if key in unit:
                unit[key] = [_hit(rank, row, images) for rank, row in enumerate(unit[key])]
        units.append(unit)
    out = {key: value for key, value in record.items() if key not in ("hit_fields", "images")}
    out["units"] = units
    return out


def _hit(rank: int, row: Sequence[Any], images: Sequence[tuple[str, str, str | None]]) -> dict[str, Any]:
    activation, slot, position_row, position_col, *box = row
    stored, path, label = images[slot]
    return {"rank": rank, "activation": activation, "image": path, "label": label, "image_file": stored,
            "row": position_row, "col": position_col, "box": box}
