"""find_images: recursion, image order, ImageFolder labels, skipped files, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from convscope.data import ImageList, SkippedFile, find_images
from convscope.errors import DataError


def _touch_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(path, format="PNG")


def _touch_text(path: Path, text: str = "not an image") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_recursive_listing_in_sorted_posix_order(tmp_path: Path) -> None:
    for rel in ["b.png", "a/c.png", "a/b/d.png", "A.png", "a.png", "z/UPPER.JPG", "x.Jpeg"]:
        _touch_image(tmp_path / rel)
    images = find_images(tmp_path)
    # plain string order: "A" < "a." < "a/" < "b" < "x" < "z"
    assert images.paths == ("A.png", "a.png", "a/b/d.png", "a/c.png", "b.png", "x.Jpeg", "z/UPPER.JPG")
    assert images.root == tmp_path.absolute()
    assert images.skipped == ()
    assert len(images) == 7
    assert images.path(2) == tmp_path / "a" / "b" / "d.png"


def test_hidden_files_and_folders_are_ignored_not_skipped(tmp_path: Path) -> None:
    _touch_image(tmp_path / "seen.png")
    _touch_image(tmp_path / ".hidden.png")
    _touch_image(tmp_path / ".cache" / "inside.png")
    _touch_text(tmp_path / ".DS_Store")
    images = find_images(tmp_path)
    assert images.paths == ("seen.png",)
    assert images.skipped == ()


def test_relative_root_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch_image(tmp_path / "photos" / "one.png")
    monkeypatch.chdir(tmp_path)
    images = find_images("photos")
    assert images.root == tmp_path / "photos"
    assert images.root.is_absolute()


def test_non_image_files_are_listed_as_skipped_with_reason(tmp_path: Path) -> None:
    _touch_image(tmp_path / "img.png")
    _touch_text(tmp_path / "notes.txt")
    _touch_text(tmp_path / "sub" / "data.csv")
    _touch_text(tmp_path / "LICENSE")
    images = find_images(tmp_path)
    assert images.paths == ("img.png",)
    assert images.skipped == (
        SkippedFile("LICENSE", "not an image file (extension none)"),
        SkippedFile("notes.txt", "not an image file (extension .txt)"),
        SkippedFile("sub/data.csv", "not an image file (extension .csv)"),
    )


def test_image_folder_layout_gives_sorted_class_names_and_labels(tmp_path: Path) -> None:
    for rel in ["dog/2.png", "cat/1.png", "dog/puppies/3.png", "bird/0.png"]:
        _touch_image(tmp_path / rel)
    _touch_text(tmp_path / "README.txt")  # a non-image at the root does not break the layout
    _touch_text(tmp_path / "empty" / "notes.txt")  # a folder without images is no class
    images = find_images(tmp_path)
    assert images.paths == ("bird/0.png", "cat/1.png", "dog/2.png", "dog/puppies/3.png")
    assert images.class_names == ("bird", "cat", "dog")
    assert images.labels == (0, 1, 2, 2)
    assert [images.label_name(i) for i in range(4)] == ["bird", "cat", "dog", "dog"]


def test_single_class_folder_is_image_folder_layout(tmp_path: Path) -> None:
    _touch_image(tmp_path / "only" / "a.png")
    _touch_image(tmp_path / "only" / "b.png")
    images = find_images(tmp_path)
    assert images.class_names == ("only",)
    assert images.labels == (0, 0)


def test_flat_or_mixed_folder_has_no_labels(tmp_path: Path) -> None:
    _touch_image(tmp_path / "cat" / "1.png")
    _touch_image(tmp_path / "loose.png")
    images = find_images(tmp_path)
    assert images.labels is None
    assert images.class_names is None
    assert images.label_name(0) is None


def test_image_list_is_frozen(tmp_path: Path) -> None:
    _touch_image(tmp_path / "a.png")
    images = find_images(tmp_path)
    assert isinstance(images, ImageList)
    with pytest.raises(AttributeError):
        images.paths = ()  # type: ignore[misc]


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as info:
        find_images(tmp_path / "nope")
    assert info.value.hint is not None
    assert str(tmp_path / "nope") in info.value.message


def test_root_is_a_file(tmp_path: Path) -> None:
    _touch_image(tmp_path / "cat.png")
    with pytest.raises(DataError, match="is a file, not a folder") as info:
        find_images(tmp_path / "cat.png")
    assert "folder" in (info.value.hint or "")


@pytest.mark.parametrize("hidden_only", [False, True])
def test_empty_folder(tmp_path: Path, hidden_only: bool) -> None:
    (tmp_path / "sub").mkdir()
    if hidden_only:
        _touch_image(tmp_path / ".hidden.png")
    with pytest.raises(DataError, match="is empty") as info:
        find_images(tmp_path)
    assert info.value.hint is not None


def test_folder_of_non_images_names_some_files(tmp_path: Path) -> None:
    for i in range(7):
        _touch_text(tmp_path / f"doc{i}.txt")
    with pytest.raises(DataError, match="folder of non-images") as info:
        find_images(tmp_path)
    message = info.value.message
    assert "7 files" in message
    assert "doc0.txt, doc1.txt, doc2.txt, doc3.txt, doc4.txt, ..." in message
    assert "doc6.txt" not in message
    assert ".jpg" in (info.value.hint or "")


def test_unlistable_subfolder_is_reported_as_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _touch_image(tmp_path / "ok.png")
    _touch_image(tmp_path / "locked" / "unseen.png")
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:  # chmod does not stop root, so refuse here
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    images = find_images(tmp_path)
    assert images.paths == ("ok.png",)
    assert images.skipped == (SkippedFile("locked", "cannot list folder (Permission denied)"),)


def test_unlistable_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def scandir(path: str | os.PathLike[str]) -> object:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(DataError, match="cannot be read: cannot list folder") as info:
        find_images(tmp_path)
    assert "permissions" in (info.value.hint or "")
