"""Label sources: CSV files, file-name patterns, class-name lists; and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from convscope.data import find_images
from convscope.data.labels import Labels, labels_from_csv, labels_from_name, read_class_names
from convscope.errors import DataError
from oracles import need_shared

PATHS = ("cat/001.jpg", "cat/002.jpg", "dog/001.jpg", "dog/003.png", "n02_misc.jpg")


def _write(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ file names


def test_labels_from_name_first_group_and_unmatched_files() -> None:
    paths = ("n01440764_tench.jpg", "n01443537_goldfish.jpg", "sub/n01440764_2.jpg", "notes.jpg")
    labels = labels_from_name(r"^(n\d+)_", paths)
    assert labels == ((0, 1, 0, -1), ("n01440764", "n01443537"))
    assert isinstance(labels, Labels) and labels.unlabelled == 1
    labels, class_names = labels_from_name(r"^n\d+_(\w+?)(_\d+)?\.jpg$", paths)  # unpacks as a pair
    assert class_names == ("2", "goldfish", "tench") and labels == (2, 1, 0, -1)


def test_named_group_label_wins_and_empty_groups_are_unlabelled() -> None:
    paths = ("a-x1.jpg", "b-y2.jpg", "c-.jpg")
    assert labels_from_name(r"(\w)-(?P<label>\w*)", paths) == ((0, 1, -1), ("x1", "y2"))


def test_match_on_the_relative_path() -> None:
    paths = ("cat/001.jpg", "dog/001.jpg", "top.jpg")
    assert labels_from_name(r"^(\w+)/", paths, match="path") == ((0, 1, -1), ("cat", "dog"))
    with pytest.raises(DataError, match="matches none of the 3 files"):
        labels_from_name(r"^(\w+)/", paths)  # the file name alone has no folder


def test_integer_labels_sort_numerically() -> None:
    paths = ("10_a.jpg", "2_b.jpg", "1_c.jpg")
    assert labels_from_name(r"^(\d+)_", paths) == ((2, 1, 0), ("1", "2", "10"))


def test_pattern_errors() -> None:
    with pytest.raises(DataError, match="not a valid regular expression") as error:
        labels_from_name(r"^(n\d+_", PATHS)
    assert "parentheses" in str(error.value.hint)
    with pytest.raises(DataError, match="has no group") as error:
        labels_from_name(r"^n\d+_", PATHS)
    assert "parentheses" in str(error.value.hint)
    with pytest.raises(DataError, match=r"matches none of the 5 files \(such as '001.jpg'"):
        labels_from_name(r"^(zzz)", PATHS)
    with pytest.raises(DataError, match="'name' or 'path'"):
        labels_from_name(r"(a)", PATHS, match="folder")  # type: ignore[arg-type]


@pytest.mark.slow
def test_the_shared_imagenet_sample_by_wnid() -> None:
    images = find_images(need_shared("data/imagenet-sample") / "data" / "imagenet-sample")
    labels, class_names = labels_from_name(r"^(n\d+)_", images.paths)
    assert len(images) == 1000 and len(class_names) == 1000 and -1 not in labels
    assert all(images.paths[i].startswith(class_names[label] + "_") for i, label in enumerate(labels))


# ------------------------------------------------------------------ CSV


def test_csv_with_a_header_any_case_and_extra_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "id,Path,score,CLASS\n1,cat/001.jpg,0.5,cat\n2,dog/003.png,0.1,dog\n3,cat/002.jpg,0,cat\n")
    assert labels_from_csv(path, PATHS) == ((0, 0, -1, 1, -1), ("cat", "dog"))


def test_csv_without_a_header(tmp_path: Path) -> None:
    path = _write(tmp_path, "dog/001.jpg,dog\ncat/001.jpg,cat\n\n")
    assert labels_from_csv(path, PATHS) == ((0, -1, 1, -1, -1), ("cat", "dog"))


def test_csv_with_an_unknown_header_tabs_and_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "labels.tsv"
    path.write_text("\ufefffile_id\tbreed\ncat/002.jpg\tsiamese\n", encoding="utf-8")
    assert labels_from_csv(path, PATHS) == ((-1, 0, -1, -1, -1), ("siamese",))


def test_csv_paths_by_longer_path_bare_name_and_backslashes(tmp_path: Path) -> None:
    text = (
        "path,label\n"
        "/data/photos/cat/001.jpg,a\n"  # absolute: ends with a relative path
        "photos\\dog\\003.png,b\n"  # Windows separators, relative to a folder above
        "n02_misc.jpg,c\n"  # a bare name that one image has
        "./cat/002.jpg,a\n"
    )
    assert labels_from_csv(_write(tmp_path, text), PATHS) == ((0, 0, -1, 1, 2), ("a", "b", "c"))


def test_csv_same_label_twice_is_fine(tmp_path: Path) -> None:
    path = _write(tmp_path, "path,label\ncat/001.jpg,cat\ncat/001.jpg,cat\n")
    assert labels_from_csv(path, PATHS).labels == (0, -1, -1, -1, -1)


def test_csv_naming_unknown_files(tmp_path: Path) -> None:
    rows = "".join(f"missing/{i}.jpg,x\n" for i in range(7))
    path = _write(tmp_path, "path,label\ncat/001.jpg,cat\n" + rows + "dog/9.jpg,dog\n")
    with pytest.raises(DataError, match="names 8 files that are not among the 5 images") as error:
        labels_from_csv(path, PATHS)
    message = str(error.value)
    assert "missing/0.jpg, missing/1.jpg" in message and "(8 in all)" in message and "dog/9.jpg" not in message
    assert "relative to the image folder" in str(error.value.hint)


def test_csv_without_a_label_column(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has no label column: its header is path, score, size"):
        labels_from_csv(_write(tmp_path, "path,score,size\ncat/001.jpg,1,2\n"), PATHS)
    with pytest.raises(DataError, match="has no label column: its rows have one column"):
        labels_from_csv(_write(tmp_path, "cat/001.jpg\ndog/001.jpg\n"), PATHS)


def test_csv_other_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        labels_from_csv(tmp_path / "nope.csv", PATHS)
    with pytest.raises(DataError, match="is empty"):
        labels_from_csv(_write(tmp_path, "\n \n"), PATHS)
    with pytest.raises(DataError, match="several images share: 001.jpg"):
        labels_from_csv(_write(tmp_path, "path,label\n001.jpg,cat\n"), PATHS)
    with pytest.raises(DataError, match=r"two different labels: cat/001.jpg \(cat, dog\)"):
        labels_from_csv(_write(tmp_path, "path,label\ncat/001.jpg,cat\ncat/001.jpg,dog\n"), PATHS)
    with pytest.raises(DataError, match="rows without a label: rows 3"):
        labels_from_csv(_write(tmp_path, "path,label\ncat/001.jpg,cat\ndog/001.jpg, \n"), PATHS)


# ------------------------------------------------------------------ class names


def test_class_names_from_lines_and_json(tmp_path: Path) -> None:
    assert read_class_names(_write(tmp_path, "  tench \n\ngoldfish\ngreat white shark\n", "n.txt")) == (
        "tench",
        "goldfish",
        "great white shark",
    )
    assert read_class_names(_write(tmp_path, '["b", "a"]', "n.json")) == ("b", "a")  # file order, not sorted
    assert read_class_names(_write(tmp_path, "crane\nkite\ncrane\n", "dup.txt")) == ("crane", "kite", "crane")  # ImageNet repeats names


def test_class_names_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_class_names(tmp_path / "none.txt")
    with pytest.raises(DataError, match="holds no name"):
        read_class_names(_write(tmp_path, "\n", "n.txt"))
    with pytest.raises(DataError, match="not valid JSON"):
        read_class_names(_write(tmp_path, '["a", ', "n.json"))
    with pytest.raises(DataError, match="not a list of strings"):
        read_class_names(_write(tmp_path, "[1, 2]", "n.json"))
