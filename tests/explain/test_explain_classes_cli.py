"""``convscope explain ATLAS|MODEL FOLDER``: the folder written (into the atlas by default), nothing
written on bad input, the same result on 1 and 2 torchrun processes, and on the real SqueezeNet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from convscope import explain_classes, load_network, make_atlas
from convscope.cli import main
from convscope.data import find_images, labels_from_name, load_pixels, take
from convscope.explain.classes_folder import FORMAT
from helpers import plain_relevance
from oracles import need_shared
from tiny_models import tiny_alexnet, write_images

TINY = str(Path(__file__).resolve().parents[1] / "tiny_models.py") + ":tiny_alexnet"


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("classes")
    write_images(root / "photos", 9, size=20, classes=("x", "y", "z"))
    weights = root / "tiny.pth"
    torch.save(tiny_alexnet().state_dict(), weights)
    out = root / "atlas"
    make_atlas(TINY, root / "photos", out, weights=weights, layers=["features.0", "features.3"], k=2, progress=False, workers=0)
    return {"root": root, "atlas": out, "weights": weights, "photos": root / "photos"}


def test_atlas_and_folder_write_into_the_atlas(atlas, capsys):
    assert main(["explain", str(atlas["atlas"]), str(atlas["photos"]), "--top", "3", "--class-by", "predicted", "-q"]) == 0
    out = atlas["atlas"] / "explain" / "classes"
    record = json.loads((out / "classes.json").read_text())
    assert record["format"] == FORMAT and record["version"] == 1 and record["class_by"] == "predicted"
    assert record["layers"] == ["features.0", "features.3"] and record["image_count"] == 9
    assert record["model"]["atlas"] == str(atlas["atlas"].absolute())
    assert sum(c["images"] for c in record["classes"]) == record["overall"]["images"] == 9
    for entry in [record["overall"], *record["classes"]]:
        for layer in entry["layers"]:
            shares = [u["mean_share"] for u in layer["units"]]
            assert len(shares) == 3 and shares == sorted(shares, reverse=True)
            assert all(0 <= u["top_count"] <= entry["images"] for u in layer["units"])
    assert (out / "classes.png").stat().st_size > 1000
    assert not list((atlas["atlas"] / "explain").glob(".classes*"))  # no state file or partial folder left
    # the record's numbers are the API's
    api = explain_classes(atlas["atlas"], atlas["photos"], top=3, class_by="predicted", progress=False)
    k = record["classes"][0]["class"]
    first = record["classes"][0]["layers"][1]["units"][0]
    assert first == api.top_units("features.3", k)[0].to_dict()
    assert "classes: " in capsys.readouterr().out


def test_bad_input_writes_nothing(atlas, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["explain", str(atlas["atlas"]), "--out", str(out), "-q"]
    (tmp_path / "empty").mkdir()
    assert main([*base, str(tmp_path / "empty")]) == 1
    assert "is empty" in capsys.readouterr().err
    assert main([*base, str(atlas["photos"]), "--class", "3"]) == 1
    assert "--class go with image files" in capsys.readouterr().err
    assert main([*base, str(atlas["photos"]), "--class-by", "label"]) == 1  # 3 folders, a model of 4 classes without names
    assert "do not map onto the model's 4 classes" in capsys.readouterr().err
    assert main([*base, str(atlas["photos"]), "--layers", "features.9"]) == 1
    assert "has no layer 'features.9'" in capsys.readouterr().err
    assert main([*base, str(atlas["photos"]), "--labels-from-name", "(77)"]) == 1
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert main(["explain", str(atlas["atlas"]), str(atlas["photos"]), "--out", str(tmp_path / "mine"), "-q"]) == 1
    assert "is not empty and is not a class-relevance folder" in capsys.readouterr().err


def _torchrun(processes: int, args: list[str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "convscope", *args]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)


@pytest.mark.slow
def test_two_processes_write_what_one_writes(atlas):
    args = ["explain", TINY, str(atlas["photos"]), "--weights", str(atlas["weights"]), "--input-size", "20", "--batch-size", "2",
            "--class-by", "predicted", "--top", "4", "-q"]
    records = {}
    for processes in (1, 2):  # 9 images in 5 batches of 2: dealt 2 + 3
        out = atlas["root"] / f"p{processes}"
        run = _torchrun(processes, [*args, "--out", str(out)])
        assert run.returncode == 0, run.stderr[-3000:]
        records[processes] = json.loads((out / "classes.json").read_text())
    one, two = records[1], records[2]
    assert one["image_count"] == two["image_count"] == 9
    for a, b in zip([one["overall"], *one["classes"]], [two["overall"], *two["classes"]]):
        assert (a["images"], a.get("class")) == (b["images"], b.get("class"))
        for la, lb in zip(a["layers"], b["layers"]):
            assert [u["unit"] for u in la["units"]] == [u["unit"] for u in lb["units"]]
            assert [u["top_count"] for u in la["units"]] == [u["top_count"] for u in lb["units"]]
            for ua, ub in zip(la["units"], lb["units"]):
                assert ub["mean_share"] == pytest.approx(ua["mean_share"], rel=1e-12, abs=1e-15)
                assert ub["mean_relevance"] == pytest.approx(ua["mean_relevance"], rel=1e-12, abs=1e-15)


@pytest.mark.slow
def test_real_squeezenet_per_class_means_equal_a_plain_loop():
    shared = need_shared("models/squeezenet1_0-imagenet.pth", "data/imagenet-sample")
    net = load_network("torchvision:squeezenet1_0", shared / "models/squeezenet1_0-imagenet.pth")
    from dataclasses import replace

    net = replace(net, preprocess=replace(net.preprocess, input_size=(96, 96), resize=110))
    found = find_images(shared / "data/imagenet-sample")
    picked = [p for p in found.paths if "retriever" in p or "terrier" in p][:8]  # dogs: predicted classes shared among them
    images = take(replace(found, paths=tuple(picked)), 8)
    names = labels_from_name(r"^n\d+_(.+)\.", images.paths)
    images = replace(images, labels=names.labels, class_names=names.class_names)
    layers = ["features.0", "features.7", "features.12", "classifier"]
    result = explain_classes(net, images, layers=layers, top=5, batch_size=3, progress=False)
    assert result.class_by == "label" and result.by_label == 8
    oracle = torchvision.models.squeezenet1_0()
    oracle.load_state_dict(torch.load(shared / "models/squeezenet1_0-imagenet.pth", map_location="cpu", weights_only=True))
    x = net.preprocess.normalize(load_pixels(images, range(8), net.preprocess))
    sums = {name: {} for name in layers}
    counts: dict[int, int] = {}
    keys = [n.lower().replace("_", " ") for n in net.class_names]
    for i in range(8):
        target = keys.index(images.label_name(i).lower().replace("_", " "))
        counts[target] = counts.get(target, 0) + 1
        for name, r in plain_relevance(oracle, x[i:i + 1], layers, target).items():
            sums[name][target] = sums[name].get(target, 0) + r / r.abs().sum()
    assert {k: int(result.counts[k]) for k in result.classes} == counts
    for name in layers:
        for k, total in sums[name].items():
            expected = total / counts[k]
            found_share = result.mean_share(name, k)
            assert float((found_share - expected).abs().max() / expected.abs().max()) < 1e-5
    # the logits layer: the class's own unit carries all of its relevance
    for k in counts:
        assert result.top_units("classifier", k, 1)[0].unit == k and result.top_units("classifier", k, 1)[0].mean_share == pytest.approx(1.0)
