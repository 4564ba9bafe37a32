"""Write explanations as a folder, atomically.

The folder (format ``convscope-explanation``, version :data:`VERSION`):

- ``explanation.png`` (one image) or ``explanation-1.png``, ``explanation-2.png``, ... (several):
  :func:`~convscope.explain.figure.explanation_figure`;
- ``explanation.json``: ``{"format", "version", "model", "method", "explanations": [{"image", "figure",
  **explanation_record(...)}]}``: per image the class, its probability and logit, the five most
  probable classes (``top_classes``), and per layer its ``shape`` and ``receptive_fields``, the
  top units (``unit``, ``relevance``, ``share``, ``max_activation``, ``peak`` ``[row, col]``, ``box``
  ``[top, left, bottom, right)``, ``heatmap_sum``), the firing units and the region's units.
  Version 2 added ``top_classes``, ``shape`` and ``receptive_fields``, and inside an atlas
  (:mod:`convscope.explain.in_atlas`) the files the viewer reads.

It is built under a temporary name beside ``out`` and swapped into place; ``out`` may be missing,
empty, or a previous explanation folder; anything else is refused before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convscope.atlas.writer import atomic_folder, check_out, write_json, write_png
from convscope.explain.cards import atlas_cards
from convscope.explain.explanation import Explanation
from convscope.explain.figure import explanation_figure
from convscope.explain.viewer_data import explanation_record

FORMAT = "convscope-explanation"
VERSION = 2


def check_explanation_out(out: Path) -> None:
    """Refuse ``out`` unless it is missing, empty or an explanation folder.

    Raises:
        AtlasError: ``out`` is a link, a file, or another kind of folder.
    """
    check_out(out, record="explanation.json", format=FORMAT, what="an explanation folder")


def figure_name(index: int, count: int) -> str:
    """``explanation.png`` for one image, ``explanation-<index + 1>.png`` for several."""
    return "explanation.png" if count == 1 else f"explanation-{index + 1}.png"


def write_explanations(
    out: str | Path, explanations: Sequence[Explanation], images: Sequence[str], model: dict[str, Any] | None = None
) -> Path:
    """Write ``explanations`` (of ``images``, in order) to the folder ``out``; returns it, absolute."""
    out = Path(out).absolute()
    records = []
    with atomic_folder(out, check_explanation_out) as tmp:
        for i, (explanation, image) in enumerate(zip(explanations, images)):
            name = figure_name(i, len(explanations))
            write_png(tmp / name, explanation_figure(explanation, cards=atlas_cards(explanation)))
            records.append({"image": str(image), "figure": name, **explanation_record(explanation)})
        write_json(tmp / "explanation.json", {
            "format": FORMAT, "version": VERSION, "model": model, "method": explanations[0].method if explanations else "gradient x activation",
            "explanations": records,
        })
    return out
