"""A class's most relevant units over a folder: against a plain per-image autograd loop averaged by
hand, a hand-built net with known answers, resume after a kill, the label mapping, bad input."""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from convscope.cli import main
from convscope.data import find_images, load_pixels
from convscope.errors import ConvscopeError, DataError
from convscope.explain import batch_gradients, class_gradients, explain_classes
from convscope.explain.class_relevance import ClassState
from convscope.explain.classes import class_targets, label_classes
from convscope.network.network import Network
from convscope.network.preprocess import Preprocess
from convscope.scan.job import remove_states
from helpers import hook_count, plain_relevance, small_net, zennit_lrp
from oracles import need_module
from tiny_models import write_images

RTOL = 1e-5
LAYERS = ["0", "2", "4", "7"]  # "0" is followed by an in-place ReLU; "7" is the logits
PRE = Preprocess((12, 12), resize=None, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def network(model: nn.Module, names: tuple[str, ...] | None = None) -> Network:
    return Network(model=model, source="test:small", preprocess=PRE, class_names=names)


def close(found: torch.Tensor, expected: torch.Tensor) -> None:
    scale = expected.abs().max().clamp_min(1e-12)
    assert float((found - expected).abs().max() / scale) < RTOL, (found, expected)


def by_hand(model: nn.Module, x: torch.Tensor, targets: list[int], classes: int, top: int, relevance=plain_relevance) -> dict:
    """Per layer, per class: the mean share, mean relevance and top counts from a plain autograd loop
    (or another ``relevance(model, x, layers, target)``), one image at a time."""
    sums = {name: (torch.zeros(classes, units), torch.zeros(classes, units), torch.zeros(classes, units, dtype=torch.long))
            for name, units in zip(LAYERS, (6, 6, 8, 5))}
    counts = torch.zeros(classes)
    for i, target in enumerate(targets):
        xi = x[i:i + 1]
        target = int(model(xi).argmax()) if target < 0 else target
        counts[target] += 1
        for name, r in relevance(model, xi, LAYERS, target).items():
            share, rel, tops = sums[name]
            share[target] += (r / r.abs().sum()).float()
            rel[target] += r.float()
            ranked = sorted((u for u in range(len(r)) if float(r[u]) != 0), key=lambda u: (-float(r[u]), u))[:top]
            tops[target, ranked] += 1
    return {name: (s / counts.clamp_min(1)[:, None], r / counts.clamp_min(1)[:, None], t) for name, (s, r, t) in sums.items()}, counts


@pytest.fixture()
def folder(tmp_path):
    write_images(tmp_path / "images", 11, size=12, classes=("a", "b", "c"))
    return tmp_path / "images"


def test_batch_gradients_equal_class_gradients_image_by_image():
    model, x = small_net(), torch.rand(4, 3, 12, 12)
    targets = [1, -1, 4, 0]
    found = batch_gradients(model, x, LAYERS, targets)
    for i, t in enumerate(targets):
        one = class_gradients(model, x[i:i + 1], LAYERS, None if t < 0 else t)
        assert int(found.targets[i]) == one.target
        for name in LAYERS:
            close(found.relevance[name][i], one.layers[name].relevance)
            close(found.gradients[name][i], one.layers[name].gradient)
    lean = batch_gradients(model, x, LAYERS, targets, keep_maps=False)
    assert not lean.activations and not lean.gradients
    for name in LAYERS:
        assert torch.equal(lean.relevance[name], found.relevance[name])
    assert hook_count(model) == 0


def test_predicted_classes_equal_a_plain_loop_averaged_by_hand(folder):
    model = small_net()
    result = explain_classes(network(model), folder, layers=LAYERS, top=3, class_by="predicted", batch_size=4, progress=False)
    images = find_images(folder)
    x = PRE.normalize(load_pixels(images, range(len(images)), PRE))
    expected, counts = by_hand(model, x, [-1] * len(images), 5, 3)
    assert result.class_by == "predicted" and result.image_count == 11 and result.by_label == 0
    assert torch.equal(result.counts, counts.long())
    assert int(result.correct.sum()) == 11  # every image is its predicted class
    for name in LAYERS:
        share, rel, tops = expected[name]
        for k in range(5):
            close(result.mean_share(name, k), share[k].double())
            close(result.mean_relevance(name, k), rel[k].double())
            assert torch.equal(result.layers[name].top[k], tops[k])
        close(result.mean_share(name), (share * counts[:, None]).sum(0).double() / 11)
    # top units: highest mean share first, as the means say
    k = result.classes[0]
    units = result.top_units("4", k, 4)
    mean = result.mean_share("4", k)
    assert [u.unit for u in units] == sorted(range(8), key=lambda u: (-float(mean[u]), u))[:4]
    assert units[0].mean_share == pytest.approx(float(mean.max()))
    assert hook_count(model) == 0


def test_labels_by_folder_name_equal_a_plain_loop(folder):
    model = small_net()
    names = ("c", "x", "a", "y", "b")  # folder a -> class 2, b -> 4, c -> 0
    result = explain_classes(network(model, names), folder, layers=LAYERS, top=2, batch_size=3, progress=False)
    images = find_images(folder)
    targets = [{"a": 2, "b": 4, "c": 0}[images.label_name(i)] for i in range(len(images))]
    x = PRE.normalize(load_pixels(images, range(len(images)), PRE))
    expected, counts = by_hand(model, x, targets, 5, 2)
    assert result.class_by == "label" and result.by_label == 11
    assert result.counts.tolist() == counts.long().tolist() == [3, 0, 4, 0, 4]
    for name in LAYERS:
        for k in (0, 2, 4):
            close(result.mean_share(name, k), expected[name][0][k].double())
            assert torch.equal(result.layers[name].top[k], expected[name][2][k])
    record = result.to_dict()
    assert [c["class"] for c in record["classes"]] == [0, 2, 4] and record["classes"][1]["name"] == "a"
    assert record["overall"]["images"] == 11


def test_a_class_logit_that_reads_one_unit_puts_all_of_it_there(tmp_path):
    """Class k's logit is 2 * (mean of unit k of the conv's ReLU): unit k is the class's only relevant unit, mean share 1."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 3, 3)
    head = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        conv.bias.fill_(5.0)  # every unit positive everywhere: no relevance vanishes at the ReLU
        head.weight.copy_(2 * torch.eye(3))
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()
    write_images(tmp_path / "images", 7, size=12, classes=("0", "1", "2"))
    result = explain_classes(network(model), tmp_path / "images", layers=["1"], top=1, batch_size=2, progress=False)
    assert result.class_by == "label"
    for k in range(3):
        top = result.top_units("1", k)
        assert [u.unit for u in top] == [k]
        assert top[0].mean_share == 1.0 and top[0].top_count == int(result.counts[k])
        others = [u for u in range(3) if u != k]
        assert result.mean_share("1", k)[others].abs().max() == 0


def test_a_killed_pass_resumes_to_the_same_result(folder, tmp_path, monkeypatch):
    classes_module = importlib.import_module("convscope.explain.classes")  # convscope.explain is also the function

    model, out = small_net(), tmp_path / "out"
    kwargs = dict(layers=LAYERS, top=3, batch_size=2, progress=False, checkpoint_every=4, class_by="predicted")
    whole = explain_classes(network(model), folder, **kwargs)
    real, calls = classes_module.batch_gradients, []

    def dies_after_four(*args, **kw):
        calls.append(1)
        if len(calls) > 4:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(classes_module, "batch_gradients", dies_after_four)
    with pytest.raises(KeyboardInterrupt):
        explain_classes(network(model), folder, out=out, **kwargs)
    saved = tmp_path / ".out.classes.pt"
    assert saved.is_file()
    assert torch.load(saved, weights_only=True)["state"]["seen"] == 8  # saved after 8 images, killed in the 5th batch
    monkeypatch.setattr(classes_module, "batch_gradients", real)
    with pytest.warns(UserWarning, match="resuming an interrupted class relevance pass at image 8 of 11"):
        resumed = explain_classes(network(model), folder, out=out, **kwargs)
    for name in LAYERS:
        for field in ("share", "relevance", "top"):
            assert torch.equal(getattr(resumed.layers[name], field), getattr(whole.layers[name], field))
    assert torch.equal(resumed.counts, whole.counts) and resumed.image_count == whole.image_count == 11
    assert len(calls) == 5  # the resumed run did not redo the first 4 batches (it ran under the real function)
    remove_states(out, "classes")
    assert not saved.exists()
    # another top is another job: it starts afresh
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explain_classes(network(model), folder, out=out, **{**kwargs, "top": 2})


def test_shards_merged_equal_one_pass():
    torch.manual_seed(0)
    relevance = torch.randn(10, 6, dtype=torch.float64)
    relevance[3] = 0  # an image whose relevance is all zero: share 0, no top unit
    relevance[5, 2] = relevance[5, 4]  # a tie: the lower unit counts
    classes = torch.tensor([0, 2, 2, 1, 0, 2, 1, 1, 0, 2])
    one = ClassState([("l", 6)], 3, 2)
    for start in range(0, 10, 3):
        one.add("l", relevance[start:start + 3], classes[start:start + 3])
    parts = [ClassState([("l", 6)], 3, 2) for _ in range(2)]
    parts[0].add("l", relevance[:6], classes[:6])
    parts[1].add("l", relevance[6:], classes[6:])
    parts[0].merge(parts[1])
    for field in ("share", "relevance"):
        assert torch.allclose(getattr(parts[0].layers["l"], field), getattr(one.layers["l"], field), rtol=1e-14, atol=1e-15)
    assert torch.equal(parts[0].layers["l"].top, one.layers["l"].top)
    # by hand: class 2's share sums and top counts
    rows = relevance[classes == 2]
    assert torch.allclose(one.layers["l"].share[2], (rows / rows.abs().sum(1, keepdim=True)).sum(0))
    expected_top = torch.zeros(6, dtype=torch.long)
    for r in relevance[classes == 1]:
        for u in sorted((u for u in range(6) if r[u] != 0), key=lambda u: (-float(r[u]), u))[:2]:
            expected_top[u] += 1
    assert torch.equal(one.layers["l"].top[1], expected_top)
    # a state survives state_dict / load_state_dict
    again = ClassState([("l", 6)], 3, 2)
    again.load_state_dict(one.state_dict())
    assert torch.equal(again.layers["l"].share, one.layers["l"].share)


def test_label_mapping():
    assert label_classes(["b", "a"], ["a", "b", "c"], 3) == ([1, 0], "by name")
    assert label_classes(["great_white-shark"], ["Great White Shark"], 1)[0] == [0]
    assert label_classes(["2", "0"], None, 3) == ([2, 0], "by index")
    assert label_classes(["n1", "n2", "n3"], ["x", "y", "z"], 3)[0] == [0, 1, 2]  # ImageNet's wnids: as many as the classes
    mapped, why = label_classes(["crane", "cat"], ["crane", "cat", "crane"], 3)  # a name the model has twice does not count
    assert mapped is None and "'crane'" in why
    assert label_classes(["7"], None, 3)[0] is None
    # Names, most of them the model's: never the alphabet (it would map every label to another class).
    names = ["tench", "goldfish", "cardigan", "cardigan"]
    labels = sorted(["tench", "goldfish", "cardigan", "Cardigan_x"])
    mapped, why = label_classes(labels, names, 4)
    assert mapped is None and "not (uniquely) among the model's class names" in why


def test_class_by(folder, tmp_path):
    images = find_images(folder)
    targets, how = class_targets(images, ("a", "b", "c"), 3)
    assert how == "label" and targets == list(images.labels)
    assert class_targets(images, ("a", "b", "c"), 3, "predicted") == ([-1] * 11, "predicted")
    with pytest.warns(UserWarning, match="explaining the predicted classes"):
        assert class_targets(images, ("x", "y", "z", "w"), 4)[1] == "predicted"
    with pytest.raises(ConvscopeError, match="do not map onto the model's 4 classes"):
        class_targets(images, ("x", "y", "z", "w"), 4, "label")
    write_images(tmp_path / "flat", 3, size=12)
    with pytest.raises(ConvscopeError, match="have no labels"):
        class_targets(find_images(tmp_path / "flat"), None, 3, "label")
    with pytest.raises(ConvscopeError, match="unknown --class-by"):
        class_targets(images, None, 3, "truth")


def test_bad_input(tmp_path):
    model = small_net()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is empty"):
        explain_classes(network(model), tmp_path / "empty", layers=LAYERS, progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(3):
        (broken / f"bad{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="no image in .* could be read"):
        explain_classes(network(model), broken, layers=LAYERS, progress=False)
    Image.fromarray(np.full((12, 12, 3), 100, np.uint8)).save(broken / "good.png")
    result = explain_classes(network(model), broken, layers=LAYERS, progress=False)
    assert result.image_count == 1 and len(result.failed) == 3  # unreadable images are skipped and counted
    with pytest.raises(ConvscopeError, match="top must be at least 1"):
        explain_classes(network(model), broken, layers=LAYERS, top=0, progress=False)
    with pytest.raises(ConvscopeError, match="class 9 is not in 0..4"):
        batch_gradients(model, torch.rand(2, 3, 12, 12), LAYERS, [1, 9])
    assert hook_count(model) == 0


def test_lrp_over_a_folder_equals_zennit_crp_image_by_image(folder, tmp_path, capsys):
    """method="lrp": every image's channel relevances from zennit-crp's CondAttribution with
    EpsilonPlusFlat, averaged by hand; the CLI records the method."""
    need_module("zennit")
    need_module("crp")
    model = small_net()
    result = explain_classes(network(model), folder, layers=LAYERS, top=3, class_by="predicted", batch_size=4, progress=False, method="lrp")
    assert result.method == "LRP epsilon-plus-flat"
    images = find_images(folder)
    x = PRE.normalize(load_pixels(images, range(len(images)), PRE))
    expected, counts = by_hand(model, x, [-1] * len(images), 5, 3, relevance=lambda m, xi, layers, t: zennit_lrp(m, xi, layers, t)[0])
    assert torch.equal(result.counts, counts.long())
    for name in LAYERS:
        share, rel, tops = expected[name]
        for k in result.classes:
            close(result.mean_share(name, k), share[k].double())
            close(result.mean_relevance(name, k), rel[k].double())
            assert torch.equal(result.layers[name].top[k], tops[k])
    tiny = str(Path(__file__).resolve().parents[1] / "tiny_models.py") + ":tiny_alexnet"
    out = tmp_path / "classes"
    assert main(["explain", tiny, str(folder), "--method", "lrp", "--out", str(out), "-q"]) == 0
    assert json.loads((out / "classes.json").read_text())["method"] == "LRP epsilon-plus-flat"
