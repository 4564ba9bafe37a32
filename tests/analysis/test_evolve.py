"""evolve: Zeiler & Fergus's Figure 4 over checkpoints, the settle measure, the folder, the command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.analysis.evolve import check_checkpoints, evolve
from convscope.analysis.evolve_command import parse_units, run
from convscope.cli import build_parser
from convscope.analysis.evolve_folder import PROJECTION_CELL, write_evolution
from convscope.render.grid import fit_cell
from convscope.analysis.settle import settle_layer
from convscope.errors import AtlasError, ConvscopeError, WeightsError
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess
from convscope.scan.topk import TopK
from tiny_models import ColourNet, tiny_alexnet, write_images

PLAIN = Preprocess(input_size=(8, 8), resize=None, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _network(model: torch.nn.Module, preprocess: Preprocess = PLAIN) -> Network:
    return Network(model=model.eval(), source="tiny", preprocess=preprocess)


def _save(model: torch.nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


def _colour_images(folder: Path) -> Path:
    """Three flat images: red, green, blue (ColourNet's unit c is channel c)."""
    folder.mkdir()
    for name, colour in (("0-red", (255, 0, 0)), ("1-green", (0, 255, 0)), ("2-blue", (0, 0, 255))):
        Image.fromarray(np.full((8, 8, 3), colour, dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def _swapped_colours() -> ColourNet:
    """ColourNet whose unit 0 reads green and unit 1 red (unit 2 still blue)."""
    model = ColourNet()
    with torch.no_grad():
        model.conv.weight.copy_(torch.eye(3)[[1, 0, 2]].view(3, 3, 1, 1))
    return model


def test_two_identical_checkpoints_give_identical_columns_and_settle_one(tmp_path: Path) -> None:
    write_images(tmp_path / "images", 12, size=16)
    model = tiny_alexnet()
    a, b = _save(model, tmp_path / "a.pt"), _save(model, tmp_path / "b.pt")
    net = _network(tiny_alexnet(), Preprocess(input_size=(16, 16), resize=16))
    result = evolve(net, tmp_path / "images", [a, b], layers=["features.0", "features.3"], n_units=3, k=4, projection="deconvnet", progress=False)
    assert [layer.layer for layer in result.layers] == ["features.0", "features.3"]
    for layer in result.layers:
        assert len(layer.units) == 3
        for cells in layer.cells:
            first, second = cells
            assert first.hit == second.hit and not first.changed and not second.changed
            assert np.array_equal(first.patch.pixels, second.patch.pixels)
            assert np.array_equal(first.projection.pixels, second.projection.pixels)
        (settle,) = layer.settle
        assert settle.topk_overlap == 1.0 and settle.top1_same == 1.0 and settle.units > 0
        assert [s.topk_overlap for s in layer.to_final] == [1.0, 1.0]


def test_a_top_image_that_changes_is_marked_changed(tmp_path: Path) -> None:
    images = _colour_images(tmp_path / "images")
    before, after = _save(ColourNet(), tmp_path / "before.pt"), _save(_swapped_colours(), tmp_path / "after.pt")
    result = evolve(_network(ColourNet()), images, [before, after, after], units={"conv": [0, 1, 2]}, k=2, progress=False)
    (layer,) = result.layers
    paths = [[result.frames.path(c.hit.image) for c in cells] for cells in layer.cells]
    assert paths == [["0-red.png", "1-green.png", "1-green.png"], ["1-green.png", "0-red.png", "0-red.png"], ["2-blue.png"] * 3]
    assert [[c.changed for c in cells] for cells in layer.cells] == [[False, True, False], [False, True, False], [False, False, False]]
    # units 0 and 1 lose their top image (top-2 sets {red, x} -> {green, x'}), unit 2 keeps all.
    first, second = layer.settle
    assert first.top1_same == pytest.approx(1 / 3) and second.top1_same == 1.0 and second.topk_overlap == 1.0
    assert [s.top1_same for s in layer.to_final] == [pytest.approx(1 / 3), 1.0, 1.0]
    assert layer.cells[0][1].patch.pixels[0, 0].tolist() == [0, 255, 0]


def test_settle_layer_counts_jaccard_and_top1_and_skips_constant_units() -> None:
    values = torch.tensor([[3.0, 2.0], [1.0, 1.0]])  # unit 1: ties only (dead): left out
    a = TopK(values, torch.tensor([[0, 1], [0, 1]]), torch.zeros(2, 2, dtype=torch.long))
    b = TopK(values, torch.tensor([[2, 1], [0, 1]]), torch.zeros(2, 2, dtype=torch.long))
    s = settle_layer(a, b)
    assert (s.topk_overlap, s.top1_same, s.units) == (pytest.approx(1 / 3), 0.0, 1)


def test_a_checkpoint_that_does_not_fit_names_the_file(tmp_path: Path) -> None:
    write_images(tmp_path / "images", 4, size=8)
    good = _save(ColourNet(), tmp_path / "good.pt")
    bad = _save(tiny_alexnet(), tmp_path / "from-another-model.pt")
    with pytest.raises(WeightsError) as caught:
        evolve(_network(ColourNet()), tmp_path / "images", [good, bad], progress=False)
    message = str(caught.value)
    assert "from-another-model.pt" in message and "do not fit the model" in message and "conv.weight" in message


@pytest.mark.parametrize("given", [[], ["only.pt"]])
def test_fewer_than_two_checkpoints_is_one_clear_error(tmp_path: Path, given: list[str]) -> None:
    with pytest.raises(ConvscopeError, match="at least two checkpoints") as caught:
        check_checkpoints([tmp_path / g for g in given])
    if given:
        assert "only.pt" in str(caught.value)
    with pytest.raises(WeightsError, match="missing.pt"):
        check_checkpoints([tmp_path / "missing.pt", tmp_path / "missing2.pt"])


def test_the_folder_is_written_atomically_and_refuses_foreign_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = _colour_images(tmp_path / "images")
    before, after = _save(ColourNet(), tmp_path / "before.pt"), _save(_swapped_colours(), tmp_path / "after.pt")
    result = evolve(_network(ColourNet()), images, [before, after], k=2, projection="guided", progress=False)
    out = write_evolution(tmp_path / "evolve", result)
    assert sorted(p.name for p in out.iterdir()) == ["evolution-conv.png", "evolution.json", "evolution.png", "images", "projections", "settle.png"]
    record = json.loads((out / "evolution.json").read_text())
    assert record["format"] == "convscope-evolution" and [c["name"] for c in record["checkpoints"]] == ["before", "after"]
    (layer,) = record["layers"]
    # Each cell's projection, fitted to its cell as an atlas draws it.
    for unit, cells in zip(layer["units"], result.layers[0].cells):
        for c, (cell, made) in enumerate(zip(unit["checkpoints"], cells)):
            assert cell["projection_file"] == f"projections/conv/{unit['unit']:04d}-{c}.png"
            stored = np.asarray(Image.open(out / cell["projection_file"]))
            assert stored.shape == (PROJECTION_CELL, PROJECTION_CELL, 3)
            assert np.array_equal(stored, fit_cell(made.projection.pixels, PROJECTION_CELL, made.projection.inside))
    assert layer["settle"][0]["from"] == "before" and layer["settle"][0]["to"] == "after"
    assert {u["unit"]: [c["changed"] for c in u["checkpoints"]] for u in layer["units"]} == {0: [False, True], 1: [False, True], 2: [False, False]}
    # A failure while writing leaves the previous folder as it was, and no temporary folder.
    stamp = (out / "evolution.json").read_bytes()
    import convscope.analysis.evolve_folder as folder

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(folder, "write_json", broken)
    with pytest.raises(OSError, match="disk full"):
        write_evolution(out, result)
    assert (out / "evolution.json").read_bytes() == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.pt", "before.pt", "evolve", "images"]
    monkeypatch.undo()
    # A folder that is not ours is refused and left alone; our own is replaced.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(AtlasError, match="not an evolution folder"):
        write_evolution(tmp_path / "mine", result)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert write_evolution(out, result) == out


def test_the_command_runs_through_the_cli_parser(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    images = _colour_images(tmp_path / "images")
    before, after = _save(ColourNet(), tmp_path / "e1.pt"), _save(_swapped_colours(), tmp_path / "e2.pt")
    parser = build_parser()
    loaded = []

    def network_from_args(args: argparse.Namespace) -> Network:
        assert args.weights is None and args.input_size == (8, 8)
        loaded.append(args.model)
        return _network(ColourNet())

    argv = ["evolve", "colour", str(images), "--checkpoints", str(before), str(after), "--input-size", "8", "--units", "conv:0-1", "-k", "2", "--out", str(tmp_path / "ev"), "-q"]
    out = run(parser.parse_args(argv), network_from_args)
    assert loaded == ["colour"] and (out / "settle.png").is_file()
    assert "conv: top-2 overlap between checkpoints" in capsys.readouterr().out
    record = json.loads((out / "evolution.json").read_text())
    assert [u["unit"] for u in record["layers"][0]["units"]] == [0, 1]
    # One checkpoint: a clear error before the model is loaded.
    with pytest.raises(ConvscopeError, match="at least two checkpoints, got one: .*e1.pt"):
        run(parser.parse_args(argv[:3] + ["--checkpoints", str(before), "-q"]), network_from_args)
    assert loaded == ["colour"]
    assert parse_units(["a:1-2", "a:5"]) == {"a": [1, 2, 5]}
    with pytest.raises(ConvscopeError, match="LAYER:UNIT"):
        parse_units(["a"])


def test_convscope_evolve_through_the_main_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from convscope.cli import main

    images = _colour_images(tmp_path / "images")
    before, after = _save(ColourNet(), tmp_path / "e1.pt"), _save(_swapped_colours(), tmp_path / "e2.pt")
    common = ["tiny_models:ColourNet", str(images), "--input-size", "8", "--mean", "0", "0", "0", "--std", "1", "1", "1", "-k", "2", "-q"]
    assert main(["evolve", *common, "--checkpoints", str(before), str(after), "--out", str(tmp_path / "ev")]) == 0
    record = json.loads((tmp_path / "ev" / "evolution.json").read_text())
    assert len(record["layers"]) == 1 and (tmp_path / "ev" / "evolution.png").is_file()
    assert main(["evolve", *common, "--checkpoints", str(before), "--out", str(tmp_path / "one")]) == 1
    err = capsys.readouterr().err
    assert err.count("convscope: error:") == 1 and "e1.pt" in err and not (tmp_path / "one").exists()
