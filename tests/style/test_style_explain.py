"""Gatys's Figure 1 (--explain) and the quality record, on tiny hand-built nets and torchvision's VGG-19 layout."""

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torchvision
from PIL import Image

from convscope.cli import main
from convscope.errors import LayerError
from convscope.style import Losses, StyleResult, explain, explain_figure, quality
from convscope.style.explain import explain_content_layers
from convscope.style.quality import CONTENT_RATIO_MAX, STYLE_RATIO_MAX
from style_nets import network, photo

explain_module = importlib.import_module("convscope.style.explain")  # the module (convscope.style.explain is also the function)

STYLE = photo(32, 32, seed=5)
STYLE_LAYERS = ["features.0", "features.2", "features.5"]


def test_vgg19_content_row_is_gatys_conv_k_2():
    model = torchvision.models.vgg19()
    names = explain_content_layers(model, ["unused"])
    # conv1_2 ... conv5_2: the second conv after each max-pool, counted in torchvision's features list.
    convs_by_block, block = {}, 1
    for index, module in enumerate(model.features):
        if isinstance(module, torchvision.models.vgg.nn.MaxPool2d):
            block += 1
        elif isinstance(module, torchvision.models.vgg.nn.Conv2d):
            convs_by_block.setdefault(block, []).append(f"features.{index}")
    assert names == [convs_by_block[b][1] for b in range(1, 6)] == ["features.2", "features.7", "features.12", "features.21", "features.30"]


def test_explain_rows_losses_and_a_shallow_layer_gives_the_photo_back():
    content = photo(32, 32)
    figure = explain(network(), content, STYLE, style_layers=STYLE_LAYERS, size=32, steps=60)
    assert [r.layers for r in figure.style] == [tuple(STYLE_LAYERS[:d]) for d in (1, 2, 3)]
    assert [r.layers for r in figure.content] == [(name,) for name in STYLE_LAYERS]  # not a VGG: the style layers
    assert all(r.ratio() < 0.05 for r in figure.content + figure.style), [r.ratio() for r in figure.content + figure.style]
    # Independent of the losses: the first conv (3 -> 8 channels, 3x3, padded) nearly determines its input,
    # so its content reconstruction from noise is close to the photo in pixels, and far closer than the noise was.
    shallow = figure.content[0].result.image.astype(float)
    noise = np.random.default_rng(0).integers(0, 256, content.shape).astype(float)
    assert np.abs(shallow - content).mean() < 0.25 * np.abs(noise - content).mean()
    record = figure.to_dict()
    assert [r["layers"] for r in record["style_reconstructions"]] == [list(STYLE_LAYERS[:d]) for d in (1, 2, 3)]


def test_explain_checks_layers_before_any_long_work():
    with pytest.raises(LayerError, match="features.99"):
        explain(network(), photo(32, 32), STYLE, style_layers=["features.99"], size=32, steps=10_000)


def test_figure_puts_the_inputs_first_in_two_rows():
    content, style = photo(32, 32), photo(16, 24, seed=5)
    figure = explain(network(), content, style, style_layers=STYLE_LAYERS[:2], size=32, steps=2)
    picture = explain_figure(figure, content, style)
    caption = 14 + 8  # render.grid.caption's line above each cell
    assert np.array_equal(picture[caption : caption + 32, :32], content)  # content image, top left, at its size
    second_row = caption + 32 + 16 + caption  # one row, the gap between rows, the caption
    style_at_height = np.asarray(Image.fromarray(style).resize((48, 32), Image.Resampling.BICUBIC))
    assert np.array_equal(picture[second_row : second_row + 32, :48], style_at_height)
    assert picture.shape[0] == second_row + 32


def result(style_end: dict, content_end: dict) -> StyleResult:
    start = Losses({"c": 0.0}, {"a": 1.0, "b": 2.0}, 0.0, 1.0)
    end = Losses(content_end, style_end, 0.0, 0.1)
    reference = Losses({"c": 10.0}, {"a": 0.0, "b": 0.0}, 0.0, 1.0)
    return StyleResult(np.zeros((2, 2, 3), np.uint8), start, end, reference, [], ["c"], ["a", "b"])


def test_quality_compares_each_layer_with_its_level():
    good = quality(result({"a": 0.005, "b": 0.01}, {"c": 5.0}))
    assert good.style == {"a": 0.005, "b": 0.005} and good.content == {"c": 0.5}
    assert good.style_met and good.content_met
    bad = quality(result({"a": 0.005, "b": 0.1}, {"c": 9.0}))
    assert not bad.style_met and not bad.content_met
    assert bad.to_dict()["style_ratio_max"] == STYLE_RATIO_MAX and bad.to_dict()["content_ratio_max"] == CONTENT_RATIO_MAX
    assert any("not met" in line for line in bad.lines())


def test_quality_allows_each_style_layer_one_and_a_half_times_its_floor():
    import dataclasses

    from convscope.style.quality import FLOOR_FACTOR

    ended = result({"a": 0.005, "b": 0.1}, {"c": 5.0})  # b ends at 0.05 of its start (2.0)
    assert not quality(ended).style_met  # no floor: 1% for every layer
    high = quality(dataclasses.replace(ended, floor={"a": 0.0, "b": 0.08}))  # b's floor 0.04 of its start
    assert high.floor == {"a": 0.0, "b": 0.04}
    assert high.style_limit() == {"a": STYLE_RATIO_MAX, "b": pytest.approx(FLOOR_FACTOR * 0.04)}
    assert high.style_met and high.to_dict()["style_limit"]["b"] == pytest.approx(0.06)
    assert "floor 0.04" in high.lines()[0]
    low = quality(dataclasses.replace(ended, floor={"a": 0.0, "b": 0.05}))  # limit 1.5 x 0.025 = 0.0375 < 0.05
    assert not low.style_met


NET = [str(Path(__file__).with_name("style_nets.py")) + ":tiny_vgg"]


def test_cli_explain_writes_the_figure_and_its_record(tmp_path, capsys, monkeypatch):
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray(photo(32, 40)).save(content)
    Image.fromarray(STYLE).save(style)
    out = tmp_path / "explain.png"
    argv = ["style", str(content), str(style), "--model", *NET, "--style-layers", "features.0", "features.2", "--explain", "--size", "24", "--steps", "2", "-q", "--out", str(out)]
    runs = []
    real = explain_module.stylise
    monkeypatch.setattr(explain_module, "stylise", lambda *a, **kw: runs.append(kw["steps"]) or real(*a, **kw))
    assert main(argv) == 0
    assert runs == [0, 2, 2, 2, 2]  # one probe of the layers (to count the steps), then 2 content and 2 style reconstructions
    record = json.loads(out.with_suffix(".json").read_text())
    assert len(record["content_reconstructions"]) == 2 and len(record["style_reconstructions"]) == 2
    assert record["content"] == str(content)
    assert np.asarray(Image.open(out)).shape[0] > 2 * 24
    assert main([*argv, "--force", "--texture"]) == 1
    assert "--explain needs a content image" in capsys.readouterr().err


def test_cli_transfer_records_its_quality_and_says_when_weights_are_random(tmp_path, capsys):
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray(photo(32, 40)).save(content)
    Image.fromarray(STYLE).save(style)
    out = tmp_path / "result.png"
    assert main(["style", str(content), str(style), "--model", *NET, "--style-layers", "features.0", "--content-layers", "features.5", "--size", "24", "--steps", "3", "-q", "--out", str(out)]) == 0
    assert "random weights" in capsys.readouterr().err
    record = json.loads(out.with_suffix(".json").read_text())
    assert set(record["quality"]["style_ratio"]) == {"features.0"} and set(record["quality"]["content_ratio"]) == {"features.5"}
    assert record["quality"]["style_met"] == (record["quality"]["style_ratio"]["features.0"] <= STYLE_RATIO_MAX)
