"""write_viewer: the files it writes, JSON-in-JS escaping, and errors for bad atlases."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from convscope.atlas.viewer import js_register_call, write_viewer
from convscope.errors import AtlasError
from make_atlas import make_atlas

TRICKY = {
    "name": "</script><script>alert(1)</script>",
    "comment": "<!-- -->",
    "quotes": "it's \"quoted\" \\ back\\slash",
    "separators": "a\u2028b\u2029c",
    "amp": "&amp; &",
    "unicode": "Ä 猫 🐱",
    "control": "tab\tnew\nline\x00nul",
    "__proto__": {"polluted": True},
    "numbers": [0, -1.5, 1e-7, 3],
    "nothing": None,
}


def decode_register_call(js: str) -> tuple[str, int | None, object]:
    """Read back kind, index and payload with Python's own string-literal rules (independent of the encoder)."""
    match = re.fullmatch(r"window\.convscopeRegister\(\"(\w+)\", (null|\d+), JSON\.parse\('(.*)'\)\);\n", js, re.S)
    assert match is not None, js
    kind, index, literal = match.groups()
    text = ast.literal_eval("'" + literal + "'")
    return kind, None if index == "null" else int(index), json.loads(text)


def test_register_call_round_trips_and_is_inert_in_a_page() -> None:
    js = js_register_call("layer", 3, TRICKY)
    assert decode_register_call(js) == ("layer", 3, TRICKY)
    assert js.isascii()
    assert js.count("\n") == 1
    for forbidden in ("<", ">", "&", "\u2028", "\u2029"):
        assert forbidden not in js


def test_write_viewer_writes_page_assets_and_lazy_data(tmp_path: Path) -> None:
    root = make_atlas(tmp_path / "atlas", [("features.0", 3, 4, 4), ("features.3", 2, 2, 2)], hostile=True)
    (root / "viewer" / "data").mkdir(parents=True)
    (root / "viewer" / "data" / "layer-7.js").write_text("stale")
    write_viewer(root)

    manifest = json.loads((root / "manifest.json").read_text())
    assert decode_register_call((root / "viewer/data/manifest.js").read_text()) == ("manifest", None, manifest)
    data = sorted(p.name for p in (root / "viewer/data").iterdir())
    assert data == ["analyses.js", "layer-0.js", "layer-1.js", "layer-2.js", "manifest.js"]
    for index, layer in enumerate(manifest["layers"]):
        hits = json.loads((root / layer["hits"]).read_text())
        assert decode_register_call((root / f"viewer/data/layer-{index}.js").read_text()) == ("layer", index, hits)
    html = (root / "index.html").read_text()
    assert 'src="viewer/viewer.js"' in html and 'src="viewer/data/manifest.js"' in html
    assert "layer-0.js" not in html  # layers load lazily, from viewer.js
    assert (root / "viewer/viewer.css").is_file()


def test_assets_reference_nothing_outside_the_atlas(tmp_path: Path) -> None:
    root = make_atlas(tmp_path / "atlas", [("features.0", 1, 2, 2)])
    write_viewer(root)
    for path in [root / "index.html", root / "viewer/viewer.js", root / "viewer/analyses.js", root / "viewer/viewer.css"]:
        text = path.read_text()
        assert not re.search(r"https?:|//[a-z]|@import|fonts\.", text, re.I), path


def test_missing_atlas_or_manifest_raises_atlas_error(tmp_path: Path) -> None:
    with pytest.raises(AtlasError, match="no atlas folder") as error:
        write_viewer(tmp_path / "nowhere")
    assert error.value.hint
    (tmp_path / "empty").mkdir()
    with pytest.raises(AtlasError, match="no manifest.json"):
        write_viewer(tmp_path / "empty")


def test_wrong_version_and_escaping_hits_path_raise(tmp_path: Path) -> None:
    root = make_atlas(tmp_path / "atlas", [("features.0", 1, 2, 2)])
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**manifest, "version": 6}))
    with pytest.raises(AtlasError, match="version 6; this convscope reads versions 1, 2, 3, 4 and 5"):
        write_viewer(root)
    manifest["layers"][0]["hits"] = "../outside.json"
    (tmp_path / "outside.json").write_text(json.dumps({"units": []}))
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AtlasError, match="outside the atlas"):
        write_viewer(root)
