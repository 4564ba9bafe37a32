"""What the atlas's viewer needs of a class-relevance record, split so that a page loads only what it shows.

``classes.json`` of SqueezeNet's ten layers over ImageNet's 1,000 classes (top 10) is about
10 MB: too much for a data script that every page of the atlas loads. The viewer's
``analyses.js`` holds the record without its per-class units
(:func:`~convscope.atlas.viewer.classes_summary`), and the
class-relevance folder keeps, beside ``classes.json``, one data script per class and one per
layer (:func:`viewer_scripts`; the layout is documented in ``docs/atlas-format.md``, "Class
relevance"):

- ``viewer/class-all.js``, ``viewer/class-<k>.js``: the record's ``overall`` entry and class
  ``k``'s entry as they are (``{"class", "name", "images", "correct", "layers"}``), loaded when
  the class page shows that class;
- ``viewer/units-<i>.js``: for layer ``i`` of the record's ``layers``, the inverted index
  (:func:`unit_index`): per unit, the classes whose top units hold it, loaded by that unit's card.

Each script is one ``convscopeRegister(kind, index, JSON.parse('...'))`` line
(:func:`~convscope.atlas.viewer.js_register_call`), so every string stays data.
"""

from __future__ import annotations

from typing import Any

from convscope.atlas.viewer import js_register_call

#: The folder of data scripts inside a class-relevance folder.
VIEWER_FOLDER = "viewer"
#: The data scripts' kinds: a class's entry, a layer's inverted index.
CLASS_KIND = "classes-class"
UNITS_KIND = "classes-units"
#: The fields of each row of :func:`unit_index`.
UNIT_FIELDS = ("class", "mean_share", "rank", "top_count")


def class_file(class_index: int | None) -> str:
    """The data script of one class (``None``: all images), relative to the folder.

    Example:
        >>> class_file(207), class_file(None)
        ('viewer/class-207.js', 'viewer/class-all.js')
    """
    return f"{VIEWER_FOLDER}/class-{'all' if class_index is None else int(class_index)}.js"


def units_file(layer_index: int) -> str:
    """The data script of the inverted index of the record's layer ``layer_index``."""
    return f"{VIEWER_FOLDER}/units-{int(layer_index)}.js"


def unit_index(record: dict[str, Any], layer: str) -> dict[int, list[list[Any]]]:
    """Per unit of ``layer``, the classes in whose top units (the record's, per class) it appears:
    ``[class, mean_share, rank, top_count]`` rows (``rank`` 1 for a class's first unit), highest
    ``mean_share`` first, lower class first on ties. Units in no class's top are left out;
    ``overall`` is not a class.

    Example:
        >>> record = {"classes": [
        ...     {"class": 3, "layers": [{"layer": "c", "units": [{"unit": 5, "mean_share": 0.5, "top_count": 2}]}]},
        ...     {"class": 7, "layers": [{"layer": "c", "units": [{"unit": 1, "mean_share": 0.4, "top_count": 1},
        ...                                                      {"unit": 5, "mean_share": 0.25, "top_count": 1}]}]}]}
        >>> unit_index(record, "c")
        {5: [[3, 0.5, 1, 2], [7, 0.25, 2, 1]], 1: [[7, 0.4, 1, 1]]}
    """
    index: dict[int, list[list[Any]]] = {}
    for entry in record["classes"]:
        for shown in entry["layers"]:
            if shown["layer"] != layer:
                continue
            for rank, unit in enumerate(shown["units"], start=1):
                index.setdefault(int(unit["unit"]), []).append([entry["class"], unit["mean_share"], rank, unit["top_count"]])
    for rows in index.values():
        rows.sort(key=lambda row: (-row[1], row[0]))
    return index


def viewer_scripts(record: dict[str, Any]) -> dict[str, str]:
    """Every data script of the folder (see the module's docstring): relative path -> its text (ASCII)."""
    scripts = {class_file(None): js_register_call(CLASS_KIND, None, record["overall"])}
    for entry in record["classes"]:
        scripts[class_file(entry["class"])] = js_register_call(CLASS_KIND, entry["class"], entry)
    for i, layer in enumerate(record["layers"]):
        rows = unit_index(record, layer)
        payload = {"layer": layer, "fields": list(UNIT_FIELDS), "units": {str(unit): rows[unit] for unit in sorted(rows)}}
        scripts[units_file(i)] = js_register_call(UNITS_KIND, i, payload)
    return scripts
