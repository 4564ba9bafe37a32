"""train_demo: a few steps run, are deterministic, round-trip through the cache, read image folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from convscope.demo import train as train_module
from convscope.demo.photos import PHOTOS
from convscope.demo.train import train_demo
from convscope.errors import ConvscopeError, DataError


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 8 and 16 held-out crops keep each training call well under a second."""
    monkeypatch.setattr(train_module, "BATCH_SIZE", 8)
    monkeypatch.setattr(train_module, "HELD_OUT_CROPS", 16)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_exemplar_training_is_deterministic_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = train_demo(tmp_path / "a", steps=2, progress=False)
    again = train_demo(tmp_path / "b", steps=2, progress=False)
    other_seed = train_demo(tmp_path / "b", steps=2, seed=1, progress=False)
    assert _same_weights(first.model, again.model)
    assert not _same_weights(first.model, other_seed.model)
    assert first.weights != other_seed.weights

    assert first.class_names == PHOTOS
    assert not first.model.training
    record = first.training
    assert record["task"] == "exemplar" and record["steps"] == 2 and record["seed"] == 0
    assert 0.0 <= record["accuracy_held_out_crops"] <= 1.0
    assert 0.0 <= record["accuracy_last_training_batches"] <= 1.0
    assert record["held_out_crops"] == 16 and record["batch_size"] == 8
    assert first.preprocess.input_size == (224, 224)

    # The cache: weights are a plain state dict, the record sits beside them as JSON.
    state = torch.load(first.weights, weights_only=True)
    assert torch.equal(state["features.0.weight"], first.model.state_dict()["features.0.weight"])
    assert json.loads(first.weights.with_suffix(".json").read_text()) == record
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.endswith(".tmp")]

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again instead of loading the cache")

    monkeypatch.setattr(train_module, "_fit", no_training)
    cached = train_demo(tmp_path / "a", steps=2, progress=False)
    assert _same_weights(cached.model, first.model)
    assert cached.training == record and cached.weights == first.weights
    assert not cached.model.training
    with pytest.raises(AssertionError, match="trained again"):
        train_demo(tmp_path / "a", steps=3, progress=False)


def _image_folder(root: Path) -> Path:
    """Two classes of 4 small images each: reddish and bluish noise."""
    g = torch.Generator().manual_seed(0)
    for label, channel in (("blue", 2), ("red", 0)):
        (root / label).mkdir(parents=True)
        for i in range(4):
            pixels = torch.randint(0, 80, (40, 50, 3), generator=g, dtype=torch.uint8)
            pixels[..., channel] += 170
            Image.fromarray(pixels.numpy()).save(root / label / f"{i}.png")
    return root


def test_image_folder_training_uses_its_labels(tmp_path: Path) -> None:
    data = _image_folder(tmp_path / "data")
    (data / "red" / "notes.txt").write_text("not an image")
    (data / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    result = train_demo(tmp_path / "cache", data, steps=3, progress=False)
    assert result.class_names == ("blue", "red")
    assert result.training["task"] == "imagefolder"
    assert result.training["images"] == 8 and result.training["skipped_images"] == 1
    assert result.model(torch.zeros(1, 3, 128, 128)).shape == (1, 2)

    # A new file changes the cache key: the next call trains a new model file.
    Image.new("RGB", (40, 40), "red").save(data / "red" / "extra.png")
    grown = train_demo(tmp_path / "cache", data, steps=3, progress=False)
    assert grown.weights != result.weights and grown.training["images"] == 9


def test_a_missing_data_folder_is_a_data_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as error:
        train_demo(tmp_path / "cache", tmp_path / "nowhere", steps=1, progress=False)
    assert error.value.hint


def test_a_folder_without_class_subfolders_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (40, 40)).save(tmp_path / "flat" / "loose.png")
    with pytest.raises(DataError, match="no images in class subfolders") as error:
        train_demo(tmp_path / "cache", tmp_path / "flat", steps=1, progress=False)
    assert "one subfolder per class" in error.value.hint


def test_a_folder_of_unreadable_images_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "bad" / "cat").mkdir(parents=True)
    (tmp_path / "bad" / "cat" / "0.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="no readable image"):
        train_demo(tmp_path / "cache", tmp_path / "bad", steps=1, progress=False)


def test_zero_steps_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConvscopeError, match="at least 1"):
        train_demo(tmp_path, steps=0, progress=False)


def test_a_large_folder_is_cut_to_a_seeded_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train_module, "MAX_FOLDER_IMAGES", 5)
    data = _image_folder(tmp_path / "data")
    first, again, other = (torch.stack(train_module._folder_task(data, seed).load().images) for seed in (0, 0, 1))
    assert len(first) == 5
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_images_beside_the_class_subfolders_are_a_data_error(tmp_path: Path) -> None:
    data = _image_folder(tmp_path / "data")
    Image.new("RGB", (40, 40)).save(data / "loose.png")
    with pytest.raises(DataError, match="no images in class subfolders") as error:
        train_demo(tmp_path / "cache", data, steps=1, progress=False)
    assert "one subfolder per class" in error.value.hint


def test_training_keeps_checkpoints_on_the_way_without_training_more(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert train_module.checkpoint_steps(480) == [5, 14, 48, 120, 240]
    result = train_demo(tmp_path, steps=3, progress=False)
    assert [step for step, _ in result.checkpoints] == [1, 2, 3] and result.training["checkpoints"] == [1, 2]
    assert result.checkpoints[-1][1] == result.weights
    states = [torch.load(path, weights_only=True) for _, path in result.checkpoints]
    assert states[0].keys() == states[-1].keys()
    assert not torch.equal(states[0]["features.0.weight"], states[-1]["features.0.weight"])
    # The run that keeps checkpoints ends at the same weights as one that does not.
    generator = torch.Generator().manual_seed(0)
    plain = train_module.TinyAlexNet(len(PHOTOS), generator=generator)
    train_module._fit(plain, train_module._photo_task(), 3, generator, False)
    assert torch.equal(plain.state_dict()["features.0.weight"], states[-1]["features.0.weight"])
    # A checkpoint that went missing makes the cache incomplete: the next call trains again.
    result.checkpoints[0][1].unlink()
    again = train_demo(tmp_path, steps=3, progress=False)
    assert again.checkpoints[0][1].is_file()
    assert torch.equal(torch.load(again.checkpoints[0][1], weights_only=True)["features.0.weight"], states[0]["features.0.weight"])
