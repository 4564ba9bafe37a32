"""write_viewer finds the analysis folders inside an atlas and hands their records to the page."""

from __future__ import annotations

import json
from pathlib import Path

from convscope.atlas.viewer import find_analyses, write_viewer
from make_atlas import make_atlas
from test_viewer_data import decode_register_call

EVOLUTION = {"format": "convscope-evolution", "version": 2, "checkpoints": [{"name": "a"}, {"name": "b"}], "layers": []}
INVARIANCE = {"format": "convscope-invariance", "version": 1, "first_layer": "0", "late_layer": "2", "images": []}


def _record(folder: Path, name: str, data: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(data if isinstance(data, str) else json.dumps(data))


def _data_calls(root: Path) -> list[tuple[str, int | None, object]]:
    text = (root / "viewer/data/analyses.js").read_text(encoding="ascii")
    return [decode_register_call(line + "\n") for line in text.splitlines()]


def test_only_our_records_in_direct_subfolders_reach_the_page(tmp_path: Path) -> None:
    root = make_atlas(tmp_path / "atlas", [("features.0", 2, 2, 2)])
    _record(root / "evolution", "evolution.json", EVOLUTION)
    _record(root / "sweeps", "invariance.json", INVARIANCE)
    _record(root / "foreign", "evolution.json", {**EVOLUTION, "format": "someone-elses-evolution"})
    _record(root / "not-an-object", "evolution.json", [EVOLUTION])
    _record(root / "nan", "evolution.json", json.dumps(EVOLUTION)[:-1] + ', "x": NaN}')
    _record(root / "broken", "invariance.json", "{not json")
    _record(root / "deeper" / "evolution", "evolution.json", EVOLUTION)  # not a direct subfolder
    _record(tmp_path / "outside", "evolution.json", EVOLUTION)
    (root / "linked").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "record-link").mkdir()
    (root / "record-link" / "evolution.json").symlink_to(tmp_path / "outside" / "evolution.json")
    (root / "evolution.json").write_text(json.dumps(EVOLUTION))  # a file, not a folder

    assert [(kind, folder) for kind, folder, _ in find_analyses(root)] == [("evolution", "evolution"), ("invariance", "sweeps")]
    write_viewer(root)
    assert _data_calls(root) == [
        ("evolution", 0, {"folder": "evolution", "record": EVOLUTION}),
        ("invariance", 1, {"folder": "sweeps", "record": INVARIANCE}),
    ]
    html = (root / "index.html").read_text()
    assert html.index('src="viewer/data/analyses.js"') < html.index('src="viewer/data/manifest.js"')  # in before the page starts


def test_an_atlas_without_analyses_gets_an_empty_script(tmp_path: Path) -> None:
    root = make_atlas(tmp_path / "atlas", [("features.0", 2, 2, 2)])
    write_viewer(root)
    assert (root / "viewer/data/analyses.js").read_text() == ""
    assert (root / "viewer/analyses.js").is_file()
    # Removing an analysis folder and refreshing removes it from the page's data.
    _record(root / "evolution", "evolution.json", EVOLUTION)
    write_viewer(root)
    assert len(_data_calls(root)) == 1
    (root / "evolution" / "evolution.json").unlink()
    (root / "evolution").rmdir()
    write_viewer(root)
    assert _data_calls(root) == []
