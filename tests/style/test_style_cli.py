"""`convscope style` end to end on a tiny net: the picture and its JSON, no silent overwrite, clear errors."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convscope.cli import main
from style_nets import photo

NET = [str(Path(__file__).with_name("style_nets.py")) + ":tiny_vgg"]
LAYERS = ["--content-layers", "features.5", "--style-layers", "features.0", "features.2"]


def images(tmp_path):
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray(photo(32, 40)).save(content)
    Image.fromarray(photo(32, 32, seed=5)).save(style)
    return str(content), str(style)


def test_style_writes_the_picture_and_the_losses(tmp_path, capsys):
    content, style = images(tmp_path)
    out = tmp_path / "result.png"
    argv = ["style", content, style, "--model", *NET, *LAYERS, "--size", "24", "--steps", "3", "-q", "--out", str(out)]
    assert main(argv) == 0
    picture = np.asarray(Image.open(out))
    assert picture.shape == (19, 24, 3) and picture.dtype == np.uint8
    record = json.loads(out.with_suffix(".json").read_text())
    assert set(record["style_ratio_end_over_start"]) == {"features.0", "features.2"}
    assert record["settings"]["steps"] == 3 and len(record["history"]) == 3
    assert "end/start" in capsys.readouterr().out

    before = out.read_bytes()
    assert main(argv) == 1  # exists: refused, untouched
    assert "exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*argv, "--force", "--preserve-colour", "--seed", "1"]) == 0


def test_texture_from_style_images_alone(tmp_path):
    content, style = images(tmp_path)
    out = tmp_path / "texture.png"
    argv = ["style", style, content, "--texture", "--model", *NET, "--style-layers", "features.0", "--size", "16", "--steps", "2", "-q", "--out", str(out)]
    assert main(argv) == 0
    assert np.asarray(Image.open(out)).shape == (16, 16, 3)


def test_bad_input_gives_one_clear_error(tmp_path, capsys):
    content, style = images(tmp_path)
    base = ["style", "--model", *NET, "--size", "24", "--steps", "1", "-q", "--out", str(tmp_path / "x.png")]
    assert main([*base, str(tmp_path / "nope.jpg"), style, *LAYERS]) == 1
    err = capsys.readouterr().err
    assert err.count("convscope: error:") == 1 and "does not exist" in err and "Traceback" not in err
    assert main([*base, content, style, "--content-layers", "features.99", "--style-layers", "features.0"]) == 1
    assert "no layer named 'features.99'" in capsys.readouterr().err
    assert main([*base, content, style, "--content-layers", "features.0", "--style-layers", "fc"]) == 1
    assert "rows and cols" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_the_cli_defaults_are_the_python_apis(tmp_path, monkeypatch):
    """--size and --steps left out: the transfer gets stylise()'s defaults, --explain gets explain()'s."""
    import importlib
    import inspect

    import convscope.style as style_api

    real = {"stylise": importlib.import_module("convscope.style.transfer").stylise,
            "explain": importlib.import_module("convscope.style.explain").explain}
    content, style = images(tmp_path)
    seen = {}

    class Stop(Exception):
        pass

    def spy(name):
        def call(*args, **kwargs):
            seen[name] = (kwargs.get("size"), kwargs.get("steps"))
            raise Stop

        return call

    for name in real:
        monkeypatch.setattr(style_api, name, spy(name))
    for extra in ([], ["--explain"]):
        with pytest.raises(Stop):
            main(["style", content, style, "--model", *NET, *LAYERS, "-q", "--out", str(tmp_path / "r.png"), *extra])
    for name, function in real.items():
        params = inspect.signature(function).parameters
        assert seen[name] == (params["size"].default, params["steps"].default), name
