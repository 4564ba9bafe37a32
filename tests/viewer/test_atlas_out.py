"""`--out` replaces only a convscope atlas: any other folder is refused and left byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from convscope.atlas.format import FORMAT
from convscope.atlas.writer import atomic_folder, check_out
from convscope.cli import main
from convscope.errors import AtlasError
from tiny_models import write_images

ATLAS_ARGS = ["atlas", "tiny_models:ColourNet", "--input-size", "16", "-q"]


def tree_digest(root: Path) -> str:
    """A hash of every name, kind, link target and file content under ``root`` (links not followed)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            if path.is_symlink():
                digest.update(b"link:" + os.readlink(path).encode())
            elif path.is_file():
                digest.update(b"file:" + path.read_bytes())
            else:
                digest.update(b"dir")
    return digest.hexdigest()


def _web_app(out: Path) -> None:
    (out / "manifest.json").write_text(json.dumps({"name": "My App", "start_url": "/", "icons": []}))
    (out / "index.html").write_text("<h1>my app</h1>")


def _extension(out: Path) -> None:
    (out / "manifest.json").write_text(json.dumps({"manifest_version": 3, "name": "ext", "version": "1.0"}))
    (out / "background.js").write_text("chrome.runtime.onInstalled.addListener(() => {});")


def _broken_json(out: Path) -> None:
    (out / "manifest.json").write_text('{"format": "convscope-atlas", ')


def _json_list(out: Path) -> None:
    (out / "manifest.json").write_text(json.dumps([{"format": FORMAT}]))


def _manifest_folder(out: Path) -> None:
    (out / "manifest.json").mkdir()
    (out / "manifest.json" / "keep.txt").write_text("mine")


def _manifest_symlink(out: Path) -> None:
    real = out / "real.json"
    real.write_text(json.dumps({"format": FORMAT, "version": 1, "layers": []}))
    (out / "manifest.json").symlink_to(real)


def _other_format(out: Path) -> None:
    (out / "manifest.json").write_text(json.dumps({"format": "not-convscope", "version": 1}))


FOREIGN: dict[str, Callable[[Path], None]] = {
    "web app": _web_app,
    "browser extension": _extension,
    "unreadable json": _broken_json,
    "json that is not an object": _json_list,
    "manifest.json is a folder": _manifest_folder,
    "manifest.json is a symlink": _manifest_symlink,
    "another format": _other_format,
}


@pytest.fixture(params=list(FOREIGN))
def foreign(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    out = tmp_path / "site"
    out.mkdir()
    FOREIGN[request.param](out)
    (out / "data.bin").write_bytes(bytes(range(256)))
    return out


def test_atomic_folder_refuses_a_foreign_manifest_and_touches_nothing(foreign: Path) -> None:
    before = tree_digest(foreign)
    with pytest.raises(AtlasError, match="not a convscope atlas") as error:
        with atomic_folder(foreign) as tmp:
            (tmp / "manifest.json").write_text(json.dumps({"format": FORMAT}))
    assert "choose another --out" in error.value.hint and "remove" in error.value.hint
    assert tree_digest(foreign) == before
    assert sorted(p.name for p in foreign.parent.iterdir()) == ["site"]  # no temporary folder left


def test_cli_atlas_refuses_a_foreign_out_folder(foreign: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = foreign.parent / "images"
    write_images(images, 3)
    before = tree_digest(foreign)
    assert main([*ATLAS_ARGS, str(images), "--out", str(foreign)]) == 1
    err = capsys.readouterr().err
    assert err.count("convscope: error:") == 1 and "not a convscope atlas" in err and "choose another --out" in err
    assert "Traceback" not in err
    assert tree_digest(foreign) == before


def test_a_previous_atlas_an_empty_folder_and_a_missing_one_are_accepted(tmp_path: Path) -> None:
    images = tmp_path / "images"
    write_images(images, 3)
    out = tmp_path / "atlas"
    assert main([*ATLAS_ARGS, str(images), "--out", str(out)]) == 0
    (out / "stale.txt").write_text("from the previous atlas")
    check_out(out)  # a convscope atlas: may be replaced
    assert main([*ATLAS_ARGS, str(images), "--out", str(out)]) == 0
    assert not (out / "stale.txt").exists() and json.loads((out / "manifest.json").read_text())["format"] == FORMAT
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty")
    check_out(tmp_path / "missing" / "deeper")


def test_files_links_and_unknown_folders_are_refused(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.md").write_text("x")
    (tmp_path / "atlas").mkdir()
    (tmp_path / "atlas" / "manifest.json").write_text(json.dumps({"format": FORMAT, "version": 1, "layers": []}))
    (tmp_path / "link").symlink_to(tmp_path / "atlas")
    for name in ("file.txt", "notes", "link"):
        before = tree_digest(tmp_path)
        with pytest.raises(AtlasError):
            with atomic_folder(tmp_path / name):
                pass
        assert tree_digest(tmp_path) == before


def test_a_folder_that_becomes_foreign_while_building_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "atlas"
    with pytest.raises(AtlasError, match="not a convscope atlas"):
        with atomic_folder(out) as tmp:
            (tmp / "manifest.json").write_text(json.dumps({"format": FORMAT}))
            out.mkdir()
            _web_app(out)  # someone else wrote there meanwhile
    assert json.loads((out / "manifest.json").read_text())["name"] == "My App"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atlas"]


def test_demo_checks_its_out_folder_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import convscope.demo.run as demo_run

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the demo trained before checking --out")

    monkeypatch.setattr(demo_run, "train_demo", no_training)
    out = tmp_path / "site"
    out.mkdir()
    _extension(out)
    before = tree_digest(out)
    assert main(["demo", "--out", str(out), "--cache", str(tmp_path / "cache"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "not a convscope atlas" in err and "AssertionError" not in err
    assert tree_digest(out) == before and not (tmp_path / "cache").exists()


def test_make_atlas_refuses_a_foreign_out_before_loading_or_scanning(tmp_path, monkeypatch):
    import convscope.pipeline as pipeline

    out = tmp_path / "app"
    out.mkdir()
    _web_app(out)
    before = tree_digest(out)
    monkeypatch.setattr(pipeline, "load_network", lambda *a, **k: pytest.fail("the model was loaded before --out was checked"))
    with pytest.raises(AtlasError, match="not a convscope atlas"):
        pipeline.make_atlas("torchvision:alexnet", tmp_path / "images", out)
    assert tree_digest(out) == before


def test_a_rebuilt_atlas_keeps_the_analyses_of_its_model_and_drops_another_models(tmp_path: Path, capsys) -> None:
    images, out = tmp_path / "images", tmp_path / "atlas"
    write_images(images, 5)
    assert main([*ATLAS_ARGS, str(images), "--out", str(out)]) == 0
    record = {"format": "convscope-evolution", "version": 2, "checkpoints": [], "layers": []}
    (out / "evolution").mkdir()
    (out / "evolution" / "evolution.json").write_text(json.dumps(record))
    (out / "evolution" / "sheet.png").write_bytes(b"the analysis's own bytes")
    kept = tree_digest(out / "evolution")
    assert main([*ATLAS_ARGS, str(images), "--out", str(out), "-k", "4"]) == 0  # the same model, another k
    assert tree_digest(out / "evolution") == kept
    assert '"evolution"' in (out / "viewer/data/analyses.js").read_text()  # the new viewer shows it
    assert not list(tmp_path.glob(".atlas*"))  # the old atlas is gone, its analysis with the new one
    capsys.readouterr()
    assert main(["atlas", "tiny_models:tiny_alexnet", "--input-size", "16", "-q", str(images), "--out", str(out)]) == 0
    assert "held analyses of another model (evolution); the new atlas does not keep them" in capsys.readouterr().err
    assert not (out / "evolution").exists()
