"""Images from a text file of paths, and the first or a seeded random few of a big data set."""

from __future__ import annotations

import random

import pytest

from convscope.cli import main
from convscope.data import find_images, image_source, list_images, take
from convscope.errors import DataError
from tiny_models import write_images


def test_a_list_file_gives_its_images_in_its_order_with_folder_labels(tmp_path) -> None:
    write_images(tmp_path / "data", 6, classes=("cat", "dog"))
    listing = tmp_path / "data" / "train.txt"
    listing.write_text("# training images\ndog/img001.png\n\ncat/img000.png\n" + str(tmp_path / "data/cat/img002.png") + "\n")
    images = list_images(listing)
    assert images.paths == ("dog/img001.png", "cat/img000.png", "cat/img002.png")
    assert images.root == tmp_path / "data" and images.class_names == ("cat", "dog") and images.labels == (1, 0, 0)
    elsewhere = tmp_path / "lists" / "few.txt"
    elsewhere.parent.mkdir()
    elsewhere.write_text("cat/img004.png\n")
    assert image_source(elsewhere, root=tmp_path / "data").path(0) == tmp_path / "data/cat/img004.png"
    assert image_source(tmp_path / "data").paths == find_images(tmp_path / "data").paths  # a folder as before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "names no image"),
        ("a.png\nb.png\na.png\n", "names a.png twice"),
        ("notes.txt\n", r"list:1: notes.txt is not an image file"),
        ("../outside.png\n", "leaves the root"),
        ("/elsewhere/x.png\n", "is not below the root"),
    ],
)
def test_bad_lists_are_refused_naming_the_line(tmp_path, text: str, message: str) -> None:
    listing = tmp_path / "list"
    listing.write_text(text)
    with pytest.raises(DataError, match=message):
        list_images(listing)


def test_limit_and_sample(tmp_path) -> None:
    write_images(tmp_path, 20, classes=("a", "b"))
    images = find_images(tmp_path)
    first = take(images, limit=5)
    assert first.paths == images.paths[:5] and first.labels == images.labels[:5] and first.class_names == images.class_names
    sample = take(images, sample=7, seed=3)
    chosen = sorted(random.Random(3).sample(range(20), 7))
    assert sample.paths == tuple(images.paths[i] for i in chosen) and list(sample.paths) == sorted(sample.paths)
    assert take(images, sample=7, seed=3) == sample and take(images, sample=7, seed=4) != sample
    assert take(images, limit=50) is images
    with pytest.raises(DataError, match="not both"):
        take(images, limit=2, sample=2)


def test_cli_scans_a_list_with_a_root_and_a_sample(tmp_path) -> None:
    import json

    write_images(tmp_path / "data", 10)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(f"img{i:03d}.png" for i in range(10)))
    out = tmp_path / "atlas"
    args = ["atlas", "tiny_models:ColourNet", str(listing), "--root", str(tmp_path / "data"), "--input-size", "16", "-q", "--out", str(out)]
    assert main([*args, "--sample", "4", "-k", "2"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"]["image_count"] == 4 and manifest["dataset"]["root"] == str(tmp_path / "data")
    with pytest.raises(SystemExit):  # one or the other
        main([*args, "--limit", "3", "--sample", "3"])
