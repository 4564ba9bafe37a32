"""Analyses inside an atlas: the evolution's stored images, and `--atlas` for evolve and invariance."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.analysis.evolve import evolve
from convscope.analysis.evolve_folder import VERSION, write_evolution
from convscope.cli import build_parser, main
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess
from convscope.pipeline import make_atlas
from tiny_models import ColourNet, tiny_alexnet, write_images

#: Largest mean and largest single difference between a JPEG-stored smooth image and its pixels
#: (quality 90, chroma subsampled); a wrong frame (uncropped, unresized, another image) is far off.
JPEG_MEAN, JPEG_MAX = 2.0, 24


def _analyses(atlas: Path) -> list[tuple[str, dict]]:
    """(kind, payload) of each call in the viewer's analyses data script, read with Python's string rules."""
    calls = []
    for line in (atlas / "viewer/data/analyses.js").read_text().splitlines():
        kind, literal = re.fullmatch(r'window\.convscopeRegister\("(\w+)", \d+, JSON\.parse\(\'(.*)\'\)\);', line).groups()
        calls.append((kind, json.loads(ast.literal_eval("'" + literal + "'"))))
    return calls


def _smooth_images(folder: Path, count: int = 6) -> Path:
    """Smooth 30x26 (cols x rows) gradients, each with a bright spot somewhere else."""
    folder.mkdir()
    rows, cols = np.mgrid[0:26, 0:30].astype(np.float32)
    for i in range(count):
        spot = np.exp(-(((rows - 3 - 4 * i) / 9) ** 2 + ((cols - 27 + 5 * i) / 9) ** 2))
        rgb = 60 + np.stack([cols / 29, rows / 25, spot], axis=-1) * [90, 60, 150]
        Image.fromarray(rgb.astype(np.uint8)).save(folder / f"spot{i}.png")
    return folder


def test_the_evolution_stores_each_winning_image_once_in_the_model_input_frame(tmp_path: Path) -> None:
    images = _smooth_images(tmp_path / "images")
    preprocess = Preprocess(input_size=(16, 16), resize=18, mean=(0.5, 0.25, 0.0), std=(1.0, 1.0, 1.0))
    first, last = tiny_alexnet(), tiny_alexnet()
    seeded = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in last.parameters():
            p.copy_(torch.randn(p.shape, generator=seeded))
    checkpoints = [tmp_path / "a.pt", tmp_path / "b.pt"]
    torch.save(first.state_dict(), checkpoints[0])
    torch.save(last.state_dict(), checkpoints[1])
    result = evolve(Network(tiny_alexnet().eval(), "tiny", preprocess), images, checkpoints, layers=["features.0", "features.3"], n_units=3, k=3, progress=False)
    out = write_evolution(tmp_path / "ev", result)
    record = json.loads((out / "evolution.json").read_text())
    assert record["version"] == VERSION == 3 and record["input_size"] == [16, 16] and record["fill"] == [128, 64, 0]
    cells = [(u, c) for layer in record["layers"] for u in layer["units"] for c in u["checkpoints"]]
    assert cells and all(c is not None for _, c in cells) and all(u["padding"] == "zeros" for u, _ in cells)
    # images/ holds exactly the cells' images, each once, one file per source image.
    named = {c["image_file"] for _, c in cells}
    assert sorted(f"images/{p.name}" for p in (out / "images").iterdir()) == sorted(named)
    assert len({c["image"] for _, c in cells}) == len(named)
    assert len({c["image_file"] for _, c in cells if c["image"] == cells[0][1]["image"]}) == 1
    frames = {p.name: np.asarray(preprocess.to_model_frame(Image.open(p).convert("RGB"))).astype(int) for p in images.iterdir()}
    for _, cell in cells:
        stored = np.asarray(Image.open(out / cell["image_file"]).convert("RGB")).astype(int)
        frame = frames[cell["image"]]
        assert stored.shape == frame.shape == (16, 16, 3)
        error = np.abs(stored - frame)
        assert error.mean() <= JPEG_MEAN and error.max() <= JPEG_MAX, (cell, error.mean(), error.max())
        assert all(np.abs(stored - other).mean() > 4 * JPEG_MEAN for name, other in frames.items() if name != cell["image"])


def _colour_atlas(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A real atlas of ColourNet on three flat images, and the evolve arguments that fit it."""
    images = tmp_path / "images"
    images.mkdir()
    for name, colour in (("red", (255, 0, 0)), ("green", (0, 255, 0)), ("blue", (0, 0, 255))):
        Image.fromarray(np.full((8, 8, 3), colour, dtype=np.uint8)).save(images / f"{name}.png")
    flat = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    atlas = make_atlas(Network(ColourNet().eval(), "colour", Preprocess(input_size=(8, 8), resize=None, **flat)), images, tmp_path / "atlas", k=2, progress=False)
    swapped = ColourNet()
    with torch.no_grad():
        swapped.conv.weight.copy_(torch.eye(3)[[1, 0, 2]].view(3, 3, 1, 1))
    torch.save(ColourNet().state_dict(), tmp_path / "e1.pt")
    torch.save(swapped.state_dict(), tmp_path / "e2.pt")
    common = ["tiny_models:ColourNet", str(images), "--input-size", "8", "--mean", "0", "0", "0", "--std", "1", "1", "1", "-k", "2", "-q"]
    return atlas, images, [*common, "--checkpoints", str(tmp_path / "e1.pt"), str(tmp_path / "e2.pt")]


def test_evolve_into_an_atlas_writes_its_folder_and_refreshes_the_viewer(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    atlas, _, argv = _colour_atlas(tmp_path)
    assert _analyses(atlas) == []
    assert main(["evolve", *argv, "--atlas", str(atlas)]) == 0
    record = json.loads((atlas / "evolution" / "evolution.json").read_text())
    assert _analyses(atlas) == [("evolution", {"folder": "evolution", "record": record})]
    assert "#/evolution" in capsys.readouterr().out
    assert not Path("evolve").exists()  # nothing went to the default --out
    # Again: the evolution folder is replaced, the atlas's own files stay.
    assert main(["evolve", *argv, "--atlas", str(atlas)]) == 0
    assert (atlas / "manifest.json").is_file() and len(_analyses(atlas)) == 1


def test_evolve_refuses_a_folder_that_is_not_an_atlas_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, images, argv = _colour_atlas(tmp_path)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("keep")
    web = tmp_path / "webapp"
    web.mkdir()
    (web / "manifest.json").write_text(json.dumps({"name": "a web app"}))
    for folder, words in ((plain, "no manifest.json"), (web, "not a convscope atlas"), (tmp_path / "missing", "no atlas folder")):
        assert main(["evolve", *argv, "--atlas", str(folder)]) == 1
        err = capsys.readouterr().err
        assert err.count("convscope: error:") == 1 and f"--atlas {folder}" in err and words in err, err
    assert sorted(p.name for p in plain.iterdir()) == ["notes.txt"] and sorted(p.name for p in web.iterdir()) == ["manifest.json"]
    assert not (tmp_path / "missing").exists()
    with pytest.raises(SystemExit):  # --out and --atlas are exclusive
        build_parser().parse_args(["evolve", *argv, "--atlas", str(plain), "--out", str(tmp_path / "ev")])


def test_invariance_into_an_atlas_and_not_into_a_plain_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    atlas, _, _ = _colour_atlas(tmp_path)
    write_images(tmp_path / "photos", 4, size=20, classes=("0", "1"))
    argv = ["invariance", "tiny_models:tiny_alexnet", str(tmp_path / "photos"), "--input-size", "16", "--count", "2", "--pairs", "3", "-q"]
    plain = tmp_path / "plain"
    plain.mkdir()
    assert main([*argv, "--atlas", str(plain)]) == 1
    assert "--atlas" in capsys.readouterr().err and list(plain.iterdir()) == []
    assert main([*argv, "--atlas", str(atlas)]) == 0
    record = json.loads((atlas / "invariance" / "invariance.json").read_text())
    assert (atlas / "invariance" / "invariance.png").is_file()
    assert _analyses(atlas) == [("invariance", {"folder": "invariance", "record": record})]
    # A second run without --force is refused before the sweeps, and the viewer keeps the first.
    assert main([*argv, "--atlas", str(atlas)]) == 1
    assert "exists" in capsys.readouterr().err and _analyses(atlas)[0][1]["record"] == record
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--atlas", str(atlas), "--out", str(tmp_path / "inv")])
