"""write_circuits / read_circuits: what is read back is what was written, the files are the
documented ones, a folder that is not ours is refused, and the viewer lists the folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from circuits_fixtures import build_tiny_atlas, decode_register_call, fake_ablation, sample_circuits
from convscope.atlas.circuits_data import read_circuits, shares_of
from convscope.atlas.viewer import find_analyses
from convscope.circuits.folder import write_circuits
from convscope.circuits.result import Circuits
from convscope.errors import AtlasError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return build_tiny_atlas(tmp_path_factory.mktemp("circuits-folder"))


@pytest.fixture()
def atlas(tiny, tmp_path) -> Path:
    """A fresh copy of the tiny atlas for each test."""
    return Path(shutil.copytree(tiny["atlas"], tmp_path / "atlas"))


def test_round_trip_gives_back_what_was_written(atlas):
    written = sample_circuits()
    out = write_circuits(atlas, written)
    assert out == (atlas / "circuits").absolute()
    found = read_circuits(atlas)
    assert found is not None and found.pairs == [("features.3", "features.0"), ("classifier", "features.3")]
    for original in written.inputs:
        stored = found.inputs(original.layer)
        np.testing.assert_array_equal(stored.contributions, original.contributions.astype(np.float32))
        np.testing.assert_array_equal(stored.activations, original.activations.astype(np.float32))
        np.testing.assert_array_equal(stored.hits, original.hits)
        assert stored.contributions.dtype == np.float32 and stored.hits.dtype == np.int64 and stored.method == original.method
        np.testing.assert_allclose(stored.shares, original.shares, atol=1e-6)
        np.testing.assert_array_equal(stored.shares, shares_of(original.contributions.astype(np.float32)))
        for unit in range(len(original.hits)):
            for sign in (1, -1):
                expected = original.top(unit, 3, sign)
                assert [c for c, _, _ in stored.top(unit, 3, sign)] == [c for c, _, _ in expected]
                np.testing.assert_allclose([s for _, s, _ in stored.top(unit, 3, sign)], [s for _, s, _ in expected], atol=1e-6)
    assert found.inputs("features.3").direct and not found.inputs("classifier").direct
    ablation, stored = written.ablations[0], found.ablation("features.3")
    for name in ("drops", "ablated_accuracy", "accuracy", "counts", "images", "classes_of_images", "base_logits", "bau_top", "bau_random"):
        np.testing.assert_array_equal(getattr(stored, name), getattr(ablation, name), err_msg=name)  # NaN where a class has no image
    assert np.isnan(stored.bau_top[-1]) and stored.counts[-1] == 0
    for unit in range(6):
        assert [k for k, _, _ in stored.matters_for(unit)] == [k for k, _, _ in ablation.matters_for(unit)]
    for k in range(3):
        assert stored.units_for(k) == ablation.units_for(k)
    assert stored.units_for(3) == [] and stored.top_beats_random == pytest.approx(ablation.top_beats_random)
    assert found.class_names == ("a", "b<script>", "c", "d") and found.ablation_layers == ["features.3"]
    with pytest.raises(AtlasError, match="no pair for layer 'features.0'"):
        found.inputs("features.0")
    with pytest.raises(AtlasError, match="no ablation of layer 'classifier'"):
        found.ablation("classifier")


def test_the_files_are_the_documented_ones(atlas):
    written = sample_circuits()
    out = write_circuits(atlas, written)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "ablation-0.npz", "circuits.json", "inputs-0.npz", "inputs-1.npz", "viewer/ablation-0.js", "viewer/inputs-0.js", "viewer/inputs-1.js",
    ]
    record = json.loads((out / "circuits.json").read_text())
    assert set(record) == {"format", "version", "model", "top", "hits", "pairs", "ablation"}
    assert (record["format"], record["version"], record["model"], record["top"], record["hits"]) == ("convscope-circuits", 1, {"source": "tiny"}, 3, 2)
    assert record["pairs"][0] == {"layer": "features.3", "below": "features.0", "method": "crop", "direct": True, "units": 6, "below_units": 4,
                                  "file": "inputs-0.npz", "script": "viewer/inputs-0.js"}
    assert record["pairs"][1]["direct"] is False and record["pairs"][1]["units"] == 4 and record["pairs"][1]["below_units"] == 6
    ablation = record["ablation"]
    assert {k: ablation[k] for k in ("images", "seed", "class_by", "class_names")} == {"images": 9, "seed": 7, "class_by": "label", "class_names": ["a", "b<script>", "c", "d"]}
    (layer,) = ablation["layers"]
    assert {k: layer[k] for k in ("layer", "units", "file", "script")} == {"layer": "features.3", "units": 6, "file": "ablation-0.npz", "script": "viewer/ablation-0.js"}
    fake = written.ablations[0]
    valid = fake.counts > 0
    assert layer["bau"] == {"n": 5, "classes": 3, "top_beats_random": pytest.approx(fake.top_beats_random, abs=1e-6),
                            "mean_drop_top": pytest.approx(float(np.mean(fake.bau_top[valid])), rel=1e-5),
                            "mean_drop_random": pytest.approx(float(np.mean(fake.bau_random[valid])), rel=1e-5)}
    with np.load(out / "inputs-0.npz") as data:
        assert sorted(data.files) == ["activations", "contributions", "hits"]
    with np.load(out / "ablation-0.npz") as data:
        assert sorted(data.files) == sorted(["drops", "ablated_accuracy", "accuracy", "counts", "images", "classes_of_images", "base_logits", "bau_top", "bau_random"])


def test_data_scripts_hold_the_top_inputs_kernels_and_ablation(atlas):
    written = sample_circuits()
    out = write_circuits(atlas, written)
    stored = read_circuits(atlas)
    kind, index, payload = decode_register_call((out / "viewer" / "inputs-0.js").read_text(encoding="ascii"))
    assert (kind, index, payload["layer"], payload["below"], payload["direct"]) == ("circuits-inputs", 0, "features.3", "features.0", True)
    assert payload["fields"] == ["unit", "share", "contribution"] and sorted(payload["units"], key=int) == [str(u) for u in range(6)]
    for unit, entry in payload["units"].items():
        for name, sign in (("pos", 1), ("neg", -1)):
            expected = stored.inputs("features.3").top(int(unit), 3, sign)
            assert [row[0] for row in entry[name]] == [c for c, _, _ in expected]
            np.testing.assert_allclose(np.reshape([row[1:] for row in entry[name]], (-1, 2)), np.reshape([[s, v] for _, s, v in expected], (-1, 2)), rtol=1e-5)
        listed = {row[0] for row in entry["pos"] + entry["neg"]}
        assert set(entry["kernels"]) == {str(c) for c in listed}  # the kernel of every listed input, no more
        for c, kernel in entry["kernels"].items():
            np.testing.assert_allclose(kernel, written.kernels[0][int(unit)][int(c)], rtol=1e-5, atol=1e-7)
    _, _, second = decode_register_call((out / "viewer" / "inputs-1.js").read_text(encoding="ascii"))
    assert second["direct"] is False and all("kernels" not in e for e in second["units"].values())
    assert second["units"]["1"] == {"pos": [], "neg": []}  # no inputs at all
    assert second["units"]["2"] == {"pos": [[0, 0.181818, 1.0], [1, 0.181818, 1.0], [3, 0.0909091, 0.5]],  # ties: lower unit first
                                    "neg": [[5, -0.363636, -2.0], [2, -0.181818, -1.0]]}  # zero left out
    kind, index, ablation = decode_register_call((out / "viewer" / "ablation-0.js").read_text(encoding="ascii"))
    fake = written.ablations[0]
    assert (kind, index, ablation["layer"], ablation["fields"]) == ("circuits-ablation", 0, "features.3", ["class", "drop", "accuracy_change"])
    assert ablation["class_names"] == ["a", "b<script>", "c", "d"] and sorted(ablation["classes"]) == ["0", "1", "2"]  # class 3 has no image
    for unit in range(6):
        expected = fake.matters_for(unit)
        assert [row[0] for row in ablation["units"][str(unit)]] == [k for k, _, _ in expected]
        np.testing.assert_allclose([row[1:] for row in ablation["units"][str(unit)]], [[d, a] for _, d, a in expected], rtol=1e-5, atol=1e-6)
    for k in range(3):
        assert [row[0] for row in ablation["classes"][str(k)]] == [u for u, _ in fake.units_for(k)]


def test_matters_for_equals_a_plain_loop():
    from convscope.atlas.circuits_data import StoredAblation

    fake = fake_ablation("l", 7, 5, 12, seed=3)
    stored = StoredAblation(**{name: getattr(fake, name) for name in ("layer", "drops", "ablated_accuracy", "accuracy", "counts", "images", "classes_of_images", "base_logits", "bau_top", "bau_random")})
    for unit in range(7):
        loop = []
        for k in range(5):
            if fake.counts[k] > 0:
                loop.append((float(fake.drops[unit, k]), -k))
        loop.sort(reverse=True)
        assert [k for k, _, _ in stored.matters_for(unit, 3)] == [-k for _, k in loop[:3]]


def test_the_viewer_lists_the_folder(atlas):
    write_circuits(atlas, sample_circuits())
    kinds = [(kind, folder) for kind, folder, _ in find_analyses(atlas)]
    assert ("circuits", "circuits") in kinds
    calls = [decode_register_call(line + "\n") for line in (atlas / "viewer" / "data" / "analyses.js").read_text(encoding="ascii").splitlines()]
    (entry,) = [payload for kind, _, payload in calls if kind == "circuits"]
    assert entry["folder"] == "circuits" and entry["record"]["format"] == "convscope-circuits"


def test_a_second_write_replaces_the_first_whole(atlas):
    write_circuits(atlas, sample_circuits(0))
    without = Circuits(inputs=sample_circuits(1).inputs[:1], kernels={}, direct=(False,), ablations=(), top=2, hits=1, model={})
    out = write_circuits(atlas, without)
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["circuits.json", "inputs-0.js", "inputs-0.npz"]
    record = json.loads((out / "circuits.json").read_text())
    assert record["ablation"] is None and record["top"] == 2 and len(record["pairs"]) == 1
    np.testing.assert_array_equal(read_circuits(atlas).inputs("features.3").contributions, sample_circuits(1).inputs[0].contributions.astype(np.float32))
    assert not [p.name for p in atlas.iterdir() if p.name.startswith(".circuits")  and not p.name.endswith(".lock")]


@pytest.mark.parametrize("kind", ["folder", "file", "link", "other record"])
def test_a_circuits_folder_that_is_not_ours_is_refused(atlas, tmp_path, kind):
    target = atlas / "circuits"
    if kind == "folder":
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    elif kind == "file":
        target.write_text("mine")
    elif kind == "link":
        (tmp_path / "elsewhere").mkdir()
        target.symlink_to(tmp_path / "elsewhere")
    else:
        target.mkdir()
        (target / "circuits.json").write_text(json.dumps({"format": "someone-else"}))
    before = sorted(p.name for p in atlas.iterdir())
    with pytest.raises(AtlasError, match="circuits folder|symbolic link"):
        write_circuits(atlas, sample_circuits())
    assert sorted(p.name for p in atlas.iterdir()) == before  # nothing half-written beside it
    assert read_circuits(atlas) is None
    if kind == "folder":
        assert (target / "notes.txt").read_text() == "mine"


def test_not_an_atlas_is_refused(tmp_path):
    with pytest.raises(AtlasError, match="no atlas folder"):
        write_circuits(tmp_path / "nothing", sample_circuits())
    assert not (tmp_path / "nothing").exists()
