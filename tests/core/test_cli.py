"""The command line end to end on generated images, and every bad input it must refuse."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from convscope import read_hits
from convscope.cli import main
from convscope.errors import AtlasError
from tiny_models import write_images

COLOUR_NET = ["tiny_models:ColourNet", "--input-size", "16", "--mean", "0", "0", "0", "--std", "1", "1", "1"]


@pytest.fixture
def colour_images(tmp_path):
    """12 dark images in two classes; image 5 has the one pure red pixel, image 2 the one green."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for i in range(12):
        folder = root / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 100, (16, 16, 3), dtype=np.uint8)
        if i == 5:
            pixels[3, 7] = (255, 0, 0)
        if i == 2:
            pixels[10, 1] = (0, 255, 0)
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    return root


def run(args, capsys):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_atlas_end_to_end_finds_the_hand_placed_pixels(tmp_path, colour_images, capsys):
    out = tmp_path / "atlas"
    code, stdout, err = run(["atlas", *COLOUR_NET, colour_images, "--out", out, "-k", "4", "-q", "--occlusion", "--grids"], capsys)
    assert code == 0, err
    assert "overview.png" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "convscope-atlas" and manifest["version"] == 5
    assert manifest["dataset"]["image_count"] == 12 and manifest["dataset"]["labels"] == ["cats", "dogs"]
    assert manifest["preprocess"]["input_size"] == [16, 16]
    (layer,) = manifest["layers"]
    assert layer["name"] == "conv" and layer["shape"] == [3, 16, 16]
    assert layer["receptive_field"] == {"size": [1, 1], "stride": [1, 1], "offset": [0, 0]}
    text = (out / layer["hits"]).read_text()  # the one copy, a data script the viewer loads; JSON on its second line
    assert layer["hits"] == "layers/conv/hits.js" and text.startswith('window.convscopeRegister("layer", 0,\n')
    stored = json.loads(text.split("\n")[1])
    assert stored["hit_fields"] == ["activation", "image", "row", "col", "top", "left", "bottom", "right"]
    assert all(len(row) == 8 for unit in stored["units"] for row in unit["hits"] + unit["bottom"])
    assert not (out / "layers/conv/hits.json").exists() and not list((out / "viewer").rglob("layer-*.js"))
    hits = read_hits(out, "conv")
    with pytest.raises(AtlasError, match="no layer 'conv9'"):
        read_hits(out, "conv9")
    red = hits["units"][0]["hits"][0]
    assert (red["image"], red["label"], red["row"], red["col"], red["box"]) == ("cats/05.png", "cats", 3, 7, [3, 7, 4, 8])
    assert red["activation"] == pytest.approx(1.0)
    green = hits["units"][1]["hits"][0]
    assert (green["image"], green["row"], green["col"]) == ("dogs/02.png", 10, 1)
    assert len(hits["units"][2]["hits"]) == 4
    for rel in ["overview.png", "index.html", "layers/conv/mosaic.png", "layers/conv/units/0000.png", red["image_file"]]:
        assert (out / rel).is_file(), rel
    grid = Image.open(out / "layers/conv/units/0000.png")
    cell, gap = manifest["render"]["cell"], manifest["render"]["gap"]
    assert grid.size == (2 * cell + gap, 2 * cell + gap)  # k=4: 2x2
    # The top-left cell is the red pixel, enlarged.
    assert grid.getpixel((cell // 2, cell // 2)) == (255, 0, 0)
    assert not list(tmp_path.glob(".atlas.*"))  # no temporary folder left
    # A 1x1 receptive field: the one square covering the red pixel drops it to 0: drawn red and,
    # as the square of the largest drop, outlined in yellow (which covers a 1-pixel patch).
    occlusion = Image.open(out / "layers/conv/units/0000-occlusion.png")
    assert occlusion.size == (2 * cell, 2 * cell) and manifest["occlusion"] is True
    r, g, b = occlusion.getpixel((cell, cell))
    assert r > 150 and b < 100


def test_atlas_without_grids_writes_no_unit_pngs_but_what_the_viewer_needs(tmp_path, colour_images, capsys):
    out = tmp_path / "atlas"
    code, _, err = run(["atlas", *COLOUR_NET, colour_images, "--out", out, "-k", "4", "-q"], capsys)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["render"]["grids"] is False
    assert not (out / "layers/conv/units").exists() and not (out / "layers/conv/mosaic.png").exists()
    hits = read_hits(out, "conv")
    stored = {hit["image_file"] for unit in hits["units"] for hit in unit["hits"] + unit["bottom"]}  # top and bottom hits
    assert stored and {f"images/{p.name}" for p in (out / "images").iterdir()} == stored
    assert (out / "overview.png").is_file() and (out / "index.html").is_file()


def test_same_inputs_give_the_same_hits(tmp_path, colour_images, capsys):
    for name in ("a", "b"):
        assert run(["atlas", *COLOUR_NET, colour_images, "--out", tmp_path / name, "-q"], capsys)[0] == 0
    a = (tmp_path / "a/layers/conv/hits.js").read_text()
    assert a == (tmp_path / "b/layers/conv/hits.js").read_text()


def test_bad_images_are_skipped_and_listed(tmp_path, colour_images, capsys):
    good = colour_images / "cats" / "01.png"
    (colour_images / "cats" / "truncated.png").write_bytes(good.read_bytes()[:60])
    (colour_images / "dogs" / "notes.txt").write_text("hello")
    code, _, err = run(["atlas", *COLOUR_NET, colour_images, "--out", tmp_path / "atlas", "-q"], capsys)
    assert code == 0, err
    assert "2 files were skipped" in err
    skipped = json.loads((tmp_path / "atlas/manifest.json").read_text())["dataset"]["skipped"]
    assert sorted(s["path"] for s in skipped) == ["cats/truncated.png", "dogs/notes.txt"]


def test_fewer_images_than_k_warns_and_gives_fewer_hits(tmp_path, capsys):
    write_images(tmp_path / "few", 3)
    code, _, err = run(["atlas", *COLOUR_NET, tmp_path / "few", "--out", tmp_path / "atlas", "-q"], capsys)
    assert code == 0 and "fewer than k=9" in err
    hits = read_hits(tmp_path / "atlas", "conv")
    assert all(len(u["hits"]) == 3 for u in hits["units"])


def test_rerun_replaces_the_atlas_but_never_a_foreign_folder(tmp_path, colour_images, capsys):
    out = tmp_path / "atlas"
    assert run(["atlas", *COLOUR_NET, colour_images, "--out", out, "-q"], capsys)[0] == 0
    assert run(["atlas", *COLOUR_NET, colour_images, "--out", out, "-q", "-k", "2"], capsys)[0] == 0
    assert json.loads((out / "manifest.json").read_text())["k"] == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    code, _, err = run(["atlas", *COLOUR_NET, colour_images, "--out", foreign, "-q"], capsys)
    assert code == 1 and "not a convscope atlas" in err
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_interrupt_while_writing_leaves_the_previous_atlas(tmp_path, colour_images, capsys, monkeypatch):
    out = tmp_path / "atlas"
    assert run(["atlas", *COLOUR_NET, colour_images, "--out", out, "-q"], capsys)[0] == 0
    before = (out / "manifest.json").read_text()

    def interrupted(folder, layer_texts=None):
        raise KeyboardInterrupt

    monkeypatch.setattr("convscope.atlas.files.write_viewer", interrupted)
    code, _, err = run(["atlas", *COLOUR_NET, colour_images, "--out", out, "-q", "-k", "2"], capsys)
    assert code == 130 and "interrupted" in err
    assert (out / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atlas", "images"]


def test_layers_command_lists_shapes_and_receptive_fields(capsys):
    code, out, _ = run(["layers", "tiny_models:tiny_alexnet", "--input-size", "16"], capsys)
    assert code == 0
    rows = {line[2:].split()[0]: line for line in out.splitlines()[2:]}
    assert rows["features.0"].startswith("*") and "4x16x16" in rows["features.0"]
    # conv3 pad1 -> pool2 -> conv3 pad1: position 0 sees pool -1..1 = conv1 -2..3 = input -3..4 (by hand)
    assert rows["features.3"].split()[-3:] == ["8", "2", "-3"]
    assert not rows["features.2"].startswith("*") and rows["pool"].split()[-3:] == ["global", "-", "-"]


def test_layers_command_lists_per_unit_fields_and_marks_the_blocks(capsys):
    code, out, err = run(["layers", "tiny_models:fire_net", "--input-size", "12"], capsys)
    assert code == 0
    lines = out.splitlines()
    fire = next(i for i, line in enumerate(lines) if line[2:].startswith("fire "))
    assert "per unit" in lines[fire]
    # expand1x1 after a 1x1 squeeze sees one pixel, expand3x3 its 3x3 neighbourhood (by hand)
    assert lines[fire + 1].split() == ["units", "0-2:", "1", "s1", "o0;", "3-5:", "3", "s1", "o-1"]
    rows = {line[2:].split()[0]: line for line in lines[2:] if line.startswith(("*", " ")) and not line.startswith("      ")}
    # the default is the stem and every block: the Fire module, not its branches; "unused" never runs: no output to list
    assert rows["fire"].startswith("*") and not rows["fire.expand3x3"].startswith("*") and "unused" not in rows


@pytest.mark.parametrize(
    "args, message",
    [
        (["atlas", *COLOUR_NET, "{tmp}/missing", "--out", "{tmp}/a"], "does not exist"),
        (["atlas", *COLOUR_NET, "{tmp}/empty", "--out", "{tmp}/a"], "empty"),
        (["atlas", *COLOUR_NET, "{tmp}/texts", "--out", "{tmp}/a"], "folder of non-images"),
        (["atlas", *COLOUR_NET, "{tmp}/ok", "--out", "{tmp}/a", "--layers", "conv9"], "convscope layers"),
        (["atlas", "torchvision:alexnet", "{tmp}/ok", "--out", "{tmp}/a", "--input-size", "16"], "too small"),
        (["atlas", "torchvision:alexnt", "{tmp}/ok", "--out", "{tmp}/a"], "did you mean alexnet"),
        (["atlas", "{tmp}/model.py:make", "{tmp}/ok", "--out", "{tmp}/a"], "does not exist"),
        (["atlas", *COLOUR_NET, "{tmp}/ok", "--out", "{tmp}/a", "--weights", "{tmp}/w.pt"], "does not exist"),
    ],
)
def test_bad_input_gives_one_clear_error(tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("x")
    write_images(tmp_path / "ok", 2)
    code, _, err = run([a.replace("{tmp}", str(tmp_path)) for a in args], capsys)
    assert code == 1
    assert err.startswith("convscope: error:") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "a").exists()


def test_k_below_one_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["atlas", *COLOUR_NET, str(tmp_path), "--out", str(tmp_path / "a"), "-k", "0"])
    assert info.value.code == 2 and "at least 1" in capsys.readouterr().err


def test_python_dash_m_and_help():
    out = subprocess.run([sys.executable, "-m", "convscope", "atlas", "--help"], capture_output=True, text=True, check=True)
    for flag in ("--weights", "--layers", "-k", "--batch-size", "--workers", "--device", "--projection"):
        assert flag in out.stdout


def test_occlude_finds_the_square_that_hides_the_red_pixel(tmp_path, colour_images, capsys):
    out = tmp_path / "occ.png"
    image = colour_images / "cats" / "05.png"  # its one red pixel is at row 3, col 7
    code, stdout, err = run(["occlude", *COLOUR_NET, image, "--unit", "conv:0", "--size", "4", "--stride", "2", "-o", out], capsys)
    assert code == 0, err
    assert "1 on the intact image" in stdout
    # Squares at rows 0-3 / 2-5 and cols 4-7 / 6-9 cover (3, 7); the first found in row-major order wins.
    assert "[0, 4, 4, 8]" in stdout
    picture = Image.open(out)
    assert picture.size == (16, 16) and picture.getpixel((4, 0)) == (255, 255, 0)  # the yellow outline


def test_occlude_rejects_a_bad_unit_and_a_bad_class(tmp_path, colour_images, capsys):
    image = colour_images / "cats" / "05.png"
    code, _, err = run(["occlude", *COLOUR_NET, image, "--unit", "conv"], capsys)
    assert code == 1 and "LAYER:UNIT" in err
    code, _, err = run(["occlude", *COLOUR_NET, image, "--class", "zebra"], capsys)
    assert code == 1 and "no class named 'zebra'" in err


def test_deconvnet_without_max_pooling_warns_that_pictures_ignore_the_image(tmp_path, colour_images, capsys):
    code, _, err = run(["atlas", *COLOUR_NET, colour_images, "--out", tmp_path / "a", "-q", "--projection", "deconvnet"], capsys)
    assert code == 0 and "no nn.MaxPool2d" in err
    assert (tmp_path / "a/layers/conv/units/0000-projection.png").is_file()
