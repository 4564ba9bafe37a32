"""A real atlas of a tiny padded net with a class-relevance folder inside it, for the class page's tests.

The atlas is :func:`make_explained.build_atlas`'s (tests/tiny_models.py ``tiny_alexnet``, 9 random
images at 40 px, layers ``features.0`` and ``features.3``); its model's class names get a hostile
one (``<script>`` and ``&``) at class 1, and ``convscope explain ATLAS FOLDER`` (the CLI function)
runs over the photos with their labels from a CSV file: 4 images of ``tench`` (class 0), 3 of the
hostile class, 2 of ``tiger shark`` (class 3), top 3 units per image. It writes
``ATLAS/explain/classes/`` and refreshes the viewer.

Example:
    >>> paths = make_classes_atlas(tmp_path)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from convscope.cli import main
from make_explained import CLASS_NAMES, HOSTILE_CLASS, build_atlas, name_classes

HOSTILE = 1
#: Each photo's label, in file order (img000 ... img008).
LABELS = ["tench", HOSTILE_CLASS, "tiger shark", "tench", HOSTILE_CLASS, "tench", "tiger shark", HOSTILE_CLASS, "tench"]
TOP = 3


def make_classes_atlas(root: Path) -> dict:
    """The atlas with ``explain/classes/``; returns its paths (``classes``: that folder)."""
    paths = build_atlas(root, count=len(LABELS))
    atlas = paths["atlas"]
    name_classes(atlas, HOSTILE)
    csv = root / "labels.csv"
    csv.write_text("file,label\n" + "".join(f"{path.name},{label}\n" for path, label in zip(paths["images"], LABELS)))
    assert main(["explain", str(atlas), str(root / "photos"), "--labels", str(csv), "--top", str(TOP), "-q"]) == 0
    return {**paths, "classes": atlas / "explain" / "classes", "names": [HOSTILE_CLASS if i == HOSTILE else n for i, n in enumerate(CLASS_NAMES)]}
