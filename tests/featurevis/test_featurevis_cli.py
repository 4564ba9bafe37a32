"""`convscope featurevis` end to end on a tiny net: the sheet, its record, and clear errors."""

import json

import numpy as np
from PIL import Image

from convscope.cli import main

NET = ["tiny_models:ColourNet", "--input-size", "16", "--mean", "0", "0", "0", "--std", "1", "1", "1"]


def test_featurevis_writes_a_sheet_and_its_record(tmp_path, capsys):
    out = tmp_path / "vis.png"
    assert main(["featurevis", *NET, "--unit", "conv:0-1", "conv:2", "--steps", "16", "-q", "--out", str(out)]) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    (layer,) = record["layers"]
    assert layer["layer"] == "conv" and layer["units"] == [0, 1, 2] and len(layer["reached"]) == 3
    assert all(r > 0.9 for r in layer["reached"])  # each unit is one colour channel in [0, 1]
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[1] >= 3 * 128
    assert main(["featurevis", *NET, "--unit", "conv:all", "--steps", "2", "-q", "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err


def test_featurevis_bad_units_give_one_clear_error(tmp_path, capsys):
    out = tmp_path / "vis.png"
    for units, message in [("conv:7", "no unit 7"), ("nope:0", "no layer named 'nope'"), ("conv", "is not LAYER:UNITS"), ("conv:a-b", "is not a unit")]:
        assert main(["featurevis", *NET, "--unit", units, "--steps", "2", "-q", "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.count("convscope: error:") == 1 and message in err, err
    assert not out.exists()
