"""Write the offline viewer into an atlas folder.

The page must work from ``file://`` with no server. Browsers block ``fetch()``
of local files but not ``<script src>``, so the atlas's JSON is re-emitted as
small JavaScript files that hand it to one registration function::

    ATLAS/index.html
    ATLAS/viewer/viewer.js, viewer.css
    ATLAS/viewer/data/manifest.js     convscopeRegister("manifest", null, JSON.parse('...'))
    ATLAS/viewer/data/analyses.js     convscopeRegister("evolution", 0, JSON.parse('{"folder": ...}')) ...

    ATLAS/layers/features.0/hits.js   convscopeRegister("layer", 0,\n{...}\n);   written by the atlas itself

A version-4 atlas stores each layer's records once, as the data script ``layers/<layer>/hits.js``
(:mod:`~convscope.atlas.records`), which the page loads only when that layer is shown; for an
older atlas (a ``hits.json`` per layer) this writes ``viewer/data/layer-<i>.js`` from it, as
before. ``analyses.js`` holds the records of the analyses
kept inside the atlas (:func:`find_analyses`: ``ATLAS/evolution/`` from ``convscope
evolve --atlas``, ``ATLAS/invariance/`` ..., ``ATLAS/circuits/`` (units' inputs and ablation, whose
per-layer data scripts ``circuits/viewer/*.js`` the page loads when a unit is shown), and the explained images ``ATLAS/explain/<name>/``
from ``convscope explain ATLAS IMAGE``; a class-relevance folder ``ATLAS/explain/classes/`` from
``convscope explain ATLAS FOLDER`` without its per-class units, which the page loads from that
folder's own data scripts), one call per folder, loaded with the page. Nothing is fetched from
outside the atlas.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from convscope.atlas.format import read_layer_hits, read_manifest
from convscope.atlas.records import to_json

#: The assets copied from the package: the page, its scripts and its styles.
ASSET_NAMES = ("index.html", "viewer.js", "analyses.js", "explain.js", "classes.js", "circuits.js", "viewer.css")

#: Analysis folders the viewer shows: record file -> (its "format", the data script's kind).
ANALYSIS_RECORDS = {
    "evolution.json": ("convscope-evolution", "evolution"),
    "invariance.json": ("convscope-invariance", "invariance"),
    "circuits.json": ("convscope-circuits", "circuits"),
}

#: The folder of explanations inside an atlas (``convscope explain ATLAS IMAGE``), and the records
#: its subfolders may hold: record file -> (its "format", the data script's kind).
EXPLAIN_FOLDER = "explain"
EXPLAIN_RECORDS = {
    "explanation.json": ("convscope-explanation", "explanation"),
    "classes.json": ("convscope-classes", "classes"),
}

#: Characters that must not appear raw inside a JS string literal in a page.
_JS_STRING_ESCAPES = str.maketrans({
    "\\": "\\\\",
    "'": "\\'",
    "<": "\\x3c",  # no `</script>` or `<!--`
    ">": "\\x3e",
    "&": "\\x26",
})


def js_register_call(kind: str, index: int | None, payload: Any) -> str:
    """One line of JavaScript that passes ``payload`` to ``convscopeRegister``.

    The payload is serialised as JSON (all non-ASCII escaped, so U+2028/U+2029
    never appear raw) and wrapped in a single-quoted string for ``JSON.parse``,
    which keeps exact JSON semantics (a ``"__proto__"`` key stays a plain key)
    and escapes ``\\``, ``'``, ``<``, ``>`` and ``&``.

    Example:
        >>> print(js_register_call("layer", 0, {"name": "</script>"}), end="")
        window.convscopeRegister("layer", 0, JSON.parse('{"name":"\\x3c/script\\x3e"}'));
    """
    return _register(kind, index, to_json(payload))


def _register(kind: str, index: int | None, text: str) -> str:
    """:func:`js_register_call` of a payload already serialised by :func:`to_json`."""
    literal = text.translate(_JS_STRING_ESCAPES)
    kind_js = json.dumps(kind, ensure_ascii=True)
    index_js = "null" if index is None else str(int(index))
    return f"window.convscopeRegister({kind_js}, {index_js}, JSON.parse('{literal}'));\n"


def find_analyses(atlas_dir: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """The analyses kept inside an atlas: ``(kind, folder name, record)`` per direct subfolder
    whose record file (:data:`ANALYSIS_RECORDS`) holds a JSON object with that record's
    ``"format"``, in folder-name order.

    Then the explanations: per subfolder of ``ATLAS/explain/`` (not a link, and not a hidden
    one: an explanation being written sits there as ``.NAME.XXXXXXXX.partial``) whose record
    (:data:`EXPLAIN_RECORDS`) is ours, ``(kind, "explain/<name>", record)``.

    Links (folders or records) are skipped, so the viewer never reads outside the atlas; so
    are folders whose record is missing, unreadable or of another format.

    Example:
        >>> find_analyses(Path("atlas"))  # doctest: +SKIP
        [('evolution', 'evolution', {'format': 'convscope-evolution', ...})]
    """
    found = []
    for folder in sorted(Path(atlas_dir).iterdir(), key=lambda path: path.name):
        if folder.is_symlink() or not folder.is_dir():
            continue
        for record_name, (format, kind) in ANALYSIS_RECORDS.items():
            record = _read_record(folder / record_name)
            if isinstance(record, dict) and record.get("format") == format:
                found.append((kind, folder.name, record))
    return found + _find_in(Path(atlas_dir) / EXPLAIN_FOLDER, EXPLAIN_RECORDS)


def _find_in(home: Path, records: dict[str, tuple[str, str]]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(kind, "<home's name>/<folder>", record)`` per subfolder of ``home`` holding one of ``records``."""
    if home.is_symlink() or not home.is_dir():
        return []
    found = []
    for folder in sorted(home.iterdir(), key=lambda path: path.name):
        if folder.name.startswith(".") or folder.is_symlink() or not folder.is_dir():
            continue
        for record_name, (format, kind) in records.items():
            record = _read_record(folder / record_name)
            if isinstance(record, dict) and record.get("format") == format:
                found.append((kind, f"{home.name}/{folder.name}", record))
    return found


def _read_record(path: Path) -> Any:
    """The parsed JSON of a regular file (not a link), or ``None`` if it is missing, unreadable or
    holds ``NaN`` or ``Infinity`` (not JSON, and not what convscope writes)."""
    if path.is_symlink() or not path.is_file():
        return None
    try:
        return json.loads(path.read_bytes(), parse_constant=_not_json)
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def classes_summary(record: dict[str, Any]) -> dict[str, Any]:
    """A class-relevance record without the units of ``overall`` and of each class: what
    ``analyses.js`` holds of it (the page loads a class's units from the folder's own data
    scripts, :mod:`convscope.explain.classes_viewer`; with 1,000 classes the whole record is ~10 MB).

    Example:
        >>> classes_summary({"format": "convscope-classes", "overall": {"images": 2, "layers": []},
        ...                  "classes": [{"class": 0, "images": 2, "layers": []}]})
        {'format': 'convscope-classes', 'overall': {'images': 2}, 'classes': [{'class': 0, 'images': 2}]}
    """
    def bare(entry: Any) -> Any:
        return {key: value for key, value in entry.items() if key != "layers"} if isinstance(entry, dict) else entry

    summary = dict(record)
    if "overall" in summary:
        summary["overall"] = bare(summary["overall"])
    if isinstance(summary.get("classes"), list):
        summary["classes"] = [bare(entry) for entry in summary["classes"]]
    return summary


def analyses_script(analyses: Sequence[tuple[str, str, dict[str, Any]]]) -> str:
    """The data script of :func:`find_analyses`'s result: per analysis one call with
    ``{"folder": name, "record": record}``, indexed in order (an empty script without any); a
    class-relevance record as :func:`classes_summary`."""
    return "".join(
        js_register_call(kind, index, {"folder": folder, "record": classes_summary(record) if kind == "classes" else record})
        for index, (kind, folder, record) in enumerate(analyses)
    )


def write_viewer(atlas_dir: Path) -> None:
    """Write ``index.html`` and ``viewer/`` (assets and data scripts) into an atlas.

    Reads ``manifest.json``, the analysis folders inside the atlas (:func:`find_analyses`) and,
    for an atlas older than version 4 only, each layer's ``hits.json``; replaces any earlier
    ``viewer/`` folder so no stale data is left behind.

    Example:
        >>> write_viewer(Path("atlas"))  # doctest: +SKIP
    """
    atlas_dir = Path(atlas_dir)
    manifest = read_manifest(atlas_dir)
    old = [(index, layer) for index, layer in enumerate(manifest["layers"]) if not (isinstance(layer, dict) and str(layer.get("hits")).endswith(".js"))]
    layer_texts = {index: to_json(read_layer_hits(atlas_dir, layer)) for index, layer in old}

    viewer_dir = atlas_dir / "viewer"
    if viewer_dir.exists():
        shutil.rmtree(viewer_dir)
    data_dir = viewer_dir / "data"
    data_dir.mkdir(parents=True)

    assets = resources.files("convscope.atlas").joinpath("assets")
    for name in ASSET_NAMES:
        target = atlas_dir / name if name == "index.html" else viewer_dir / name
        target.write_bytes(assets.joinpath(name).read_bytes())

    (data_dir / "manifest.js").write_text(js_register_call("manifest", None, manifest), encoding="ascii")
    for index, text in layer_texts.items():
        (data_dir / f"layer-{index}.js").write_text(_register("layer", index, text), encoding="ascii")
    (data_dir / "analyses.js").write_text(analyses_script(find_analyses(atlas_dir)), encoding="ascii")
