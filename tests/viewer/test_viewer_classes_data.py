"""The class-relevance folder's viewer data: per class and per layer data scripts beside ``classes.json``.

Built by :func:`make_classes_atlas` (the CLI's folder mode over a tiny atlas, labels from a CSV
file, a hostile class name). Checked: each class script holds exactly that class's entry of
``classes.json`` (and the API's top units); each layer's inverted index equals a brute force over
every unit and class; ``analyses.js`` holds the record without the per-class units; the scripts
keep ``<`` and ``&`` out of the page; a record of SqueezeNet's size (ten layers, 1,000 classes,
top 10) is far smaller in ``analyses.js`` than whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convscope import explain_classes
from convscope.atlas.viewer import classes_summary
from convscope.data import image_source, with_labels
from convscope.explain.classes_viewer import CLASS_KIND, UNITS_KIND, UNIT_FIELDS, unit_index, viewer_scripts
from make_classes import HOSTILE, TOP, make_classes_atlas
from make_explained import HOSTILE_CLASS


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return make_classes_atlas(tmp_path_factory.mktemp("classes-data"))


def _calls(text: str) -> list[tuple[str, object, object]]:
    """The ``convscopeRegister(kind, index, JSON.parse('...'))`` calls of a data script."""
    calls = []
    for line in text.splitlines():
        head, rest = line.split("(", 1)
        assert head == "window.convscopeRegister"
        kind, index, body = rest.split(", ", 2)
        literal = body.removeprefix("JSON.parse('").removesuffix("'));")
        decoded = literal.encode().decode("unicode_escape")  # \x3c, \x26, \\ and \' back
        calls.append((json.loads(kind), json.loads(index), json.loads(decoded)))
    return calls


def _record(made: dict) -> dict:
    return json.loads((made["classes"] / "classes.json").read_text())


def test_each_class_has_a_script_with_its_entry(made: dict) -> None:
    record = _record(made)
    folder = made["classes"] / "viewer"
    names = sorted(path.name for path in folder.iterdir())
    expected = sorted(["class-all.js", *(f"class-{c['class']}.js" for c in record["classes"])] + [f"units-{i}.js" for i in range(len(record["layers"]))])
    assert names == expected
    assert [c["class"] for c in record["classes"]] == [0, 1, 3]
    assert _calls((folder / "class-all.js").read_text()) == [(CLASS_KIND, None, record["overall"])]
    for entry in record["classes"]:
        assert _calls((folder / f"class-{entry['class']}.js").read_text()) == [(CLASS_KIND, entry["class"], entry)]
    hostile = (folder / f"class-{HOSTILE}.js").read_text()
    assert _calls(hostile)[0][2]["name"] == HOSTILE_CLASS
    assert "<" not in hostile and "&" not in hostile and ">" not in hostile


def test_the_class_scripts_hold_the_apis_top_units(made: dict) -> None:
    """The scripts' numbers are :meth:`ClassRelevance.top_units` of the same pass done again through the API."""
    record = _record(made)
    images = with_labels(image_source(made["root"] / "photos"), made["root"] / "labels.csv", None)
    result = explain_classes(made["atlas"], images, top=TOP, progress=False)
    folder = made["classes"] / "viewer"
    for k in [None, *(c["class"] for c in record["classes"])]:
        (_, _, entry), = _calls((folder / f"class-{'all' if k is None else k}.js").read_text())
        for layer in entry["layers"]:
            assert layer["units"] == [u.to_dict() for u in result.top_units(layer["layer"], k)]


def test_the_inverted_index_is_a_brute_force_over_units_and_classes(made: dict) -> None:
    record = _record(made)
    manifest = json.loads((made["atlas"] / "manifest.json").read_text())
    units = {layer["name"]: layer["units"] for layer in manifest["layers"]}
    for i, layer in enumerate(record["layers"]):
        (kind, index, payload), = _calls((made["classes"] / "viewer" / f"units-{i}.js").read_text())
        assert (kind, index, payload["layer"], payload["fields"]) == (UNITS_KIND, i, layer, list(UNIT_FIELDS))
        expected = {}
        for unit in range(units[layer]):  # every unit, every class: where in the class's list is it?
            rows = []
            for entry in record["classes"]:
                listed = next(shown["units"] for shown in entry["layers"] if shown["layer"] == layer)
                ranks = [rank for rank, u in enumerate(listed, start=1) if u["unit"] == unit]
                if ranks:
                    u = listed[ranks[0] - 1]
                    rows.append([entry["class"], u["mean_share"], ranks[0], u["top_count"]])
            if rows:
                expected[str(unit)] = sorted(rows, key=lambda row: (-row[1], row[0]))
        assert payload["units"] == expected
        assert expected and len(expected) < units[layer]  # some units matter, some do not: the test can fail both ways


def test_analyses_js_holds_the_record_without_per_class_units(made: dict) -> None:
    record = _record(made)
    calls = [call for call in _calls((made["atlas"] / "viewer" / "data" / "analyses.js").read_text()) if call[0] == "classes"]
    assert len(calls) == 1
    payload = calls[0][2]
    assert payload["folder"] == "explain/classes"
    shown = payload["record"]
    assert "layers" not in shown["overall"] and all("layers" not in c for c in shown["classes"])
    assert shown["classes"] == [{k: v for k, v in c.items() if k != "layers"} for c in record["classes"]]
    assert {k: v for k, v in shown.items() if k not in ("overall", "classes")} == {k: v for k, v in record.items() if k not in ("overall", "classes")}


def test_a_record_of_squeezenets_size_stays_out_of_analyses_js() -> None:
    """Ten layers, 1,000 classes, top 10: the whole record is megabytes, the summary tens of kilobytes,
    one class's script a few kilobytes."""
    layers = [f"features.{i}" for i in range(10)]

    def entry(k: int | None) -> dict:
        units = [{"unit": (7 * (k or 0) + u) % 512, "mean_share": 0.123456789 / (u + 1), "mean_relevance": 1.23456789e-3 / (u + 1), "top_count": 1} for u in range(10)]
        return {"images": 1, "correct": 1, "layers": [{"layer": name, "units": units} for name in layers]}

    record = {"format": "convscope-classes", "version": 1, "layers": layers, "top": 10, "overall": entry(None),
              "classes": [{"class": k, "name": f"class name {k}", **entry(k)} for k in range(1000)]}
    whole = len(json.dumps(record))
    scripts = viewer_scripts(record)
    assert whole > 5_000_000
    assert len(json.dumps(classes_summary(record))) < 100_000
    assert max(len(text) for name, text in scripts.items() if "class-" in name) < 15_000
    assert len(scripts) == 1 + 1000 + 10
    assert sum(len(rows) for rows in unit_index(record, "features.3").values()) == 1000 * 10


def test_the_viewer_data_is_written_with_the_folder(tmp_path: Path, made: dict) -> None:
    """Outside an atlas (``--out``) the folder has its data scripts too, and the atlas's viewer is left alone."""
    from convscope.cli import main

    before = (made["atlas"] / "viewer" / "data" / "analyses.js").read_text()
    out = tmp_path / "elsewhere"
    assert main(["explain", str(made["atlas"]), str(made["root"] / "photos"), "--labels", str(made["root"] / "labels.csv"), "--top", "2", "--out", str(out), "-q"]) == 0
    assert (out / "viewer" / "class-all.js").is_file() and (out / "viewer" / "units-1.js").is_file()
    assert (made["atlas"] / "viewer" / "data" / "analyses.js").read_text() == before
