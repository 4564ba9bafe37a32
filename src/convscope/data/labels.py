"""Labels for an image list from other sources than ImageFolder layout: a CSV file, or file names.

Each source gives, for the images of an :class:`~convscope.data.folder.ImageList`
(its ``paths``: relative to the image root, ``/``-separated, in image order),
:class:`Labels`: one class index per image (``-1`` for an image without a label)
and the class names, sorted as :func:`~convscope.data.folder.find_images` sorts
folder names (plain string order; numerically when every name is an integer, so
``"2"`` comes before ``"10"``). :func:`read_class_names` reads a list of names in a
given order, e.g. to show readable names for class indices.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

from convscope.data.folder import IMAGE_EXTENSIONS, ImageList
from convscope.errors import ConvscopeError, ConvscopeWarning, DataError

PATH_COLUMNS = ("path", "file", "filename", "file_name", "image", "image_path", "img")
"""Header names (case-insensitive) of the column that names the image."""

LABEL_COLUMNS = ("label", "class", "class_name", "category", "target")
"""Header names (case-insensitive) of the column that gives the label."""

_NAMES_IN_MESSAGE = 5


class Labels(NamedTuple):
    """Labels of the images of an image list; unpacks as ``labels, class_names``.

    Attributes:
        labels: per image (image order), an index into ``class_names``, or ``-1``.
        class_names: sorted; numerically when all are integers.
    """

    labels: tuple[int, ...]
    class_names: tuple[str, ...]

    @property
    def unlabelled(self) -> int:
        """How many images have no label (``-1``)."""
        return self.labels.count(-1)


def labels_from_name(
    pattern: str, image_paths: Sequence[str], *, match: Literal["name", "path"] = "name"
) -> Labels:
    """Labels from a regular expression searched in each image's file name.

    The label is the text of the group named ``label`` if the pattern has one, else
    of its first group. ImageNet's ``n01440764_tench.jpg`` with ``'^(n\\d+)_'`` gives
    the label ``n01440764``. A file that the pattern does not match (or whose group is
    empty) gets ``-1``; :attr:`Labels.unlabelled` counts them.

    Args:
        pattern: a Python regular expression (``re.search``) with at least one group.
        image_paths: relative image paths (``ImageList.paths``).
        match: ``"name"`` to search the file name, ``"path"`` the relative path.

    Raises:
        DataError: an invalid pattern, a pattern without a group, or a pattern that
            matches no file.

    Example:
        >>> labels_from_name(r"^(n\\d+)_", ["n02_cat.jpg", "n01_fish.jpg", "n02_dog.jpg", "readme.jpg"])
        Labels(labels=(1, 0, 1, -1), class_names=('n01', 'n02'))
    """
    if match not in ("name", "path"):
        raise DataError(
            f"match must be 'name' or 'path', not {match!r}", hint="search the file name or the relative path"
        )
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise DataError(
            f"the label pattern {pattern!r} is not a valid regular expression: {error}",
            hint=r"write a Python regular expression with the label in parentheses, e.g. '^(n\d+)_'",
        ) from None
    if regex.groups == 0:
        raise DataError(
            f"the label pattern {pattern!r} has no group to take the label from",
            hint=rf"put the label part in parentheses, e.g. '^(n\d+)_' or '(?P<label>[a-z]+)_\d+', not {pattern!r}",
        )
    group = "label" if "label" in regex.groupindex else 1
    found: list[str | None] = []
    for path in image_paths:
        text = PurePosixPath(path).name if match == "name" else path
        hit = regex.search(text)
        found.append((hit.group(group) or None) if hit else None)  # an empty group is no label
    if image_paths and all(name is None for name in found):
        examples = ", ".join(repr(PurePosixPath(p).name if match == "name" else p) for p in image_paths[:3])
        searched = "name (not its folders)" if match == "name" else "path relative to the image folder"
        raise DataError(
            f"the label pattern {pattern!r} matches none of the {len(image_paths)} files (such as {examples})",
            hint=f"the pattern is searched in each file's {searched}; "
            "try it with python -c \"import re; print(re.search(PATTERN, NAME))\"",
        )
    return _index(found)


def labels_from_csv(path: Path | str, image_paths: Sequence[str]) -> Labels:
    """Labels from a CSV file of ``path,label`` rows.

    The file is comma-separated (tab-separated if its first line has a tab and no
    comma), UTF-8. A first row is a header when a cell names a known column
    (:data:`PATH_COLUMNS`, :data:`LABEL_COLUMNS`, any case) or when its first cell is
    not an image file name but the next row's names an image; without a header, the first column is the path and the
    second the label. A path names an image by its path relative to the image folder
    (``cat/001.jpg``), by any longer path that ends with it (absolute, or relative to
    a folder above), or by its bare file name when no other image has that name.
    Images that the file does not name get ``-1``.

    Args:
        path: the CSV file.
        image_paths: relative image paths (``ImageList.paths``).

    Raises:
        DataError: the file is missing or empty, has no label column, names files
            that are not among the images, gives one image two labels, or leaves a
            label empty.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = Path(folder, "labels.csv").write_text("file,label\\nb.jpg,dog\\nsub/a.jpg,cat\\n")
        ...     labels_from_csv(Path(folder, "labels.csv"), ["b.jpg", "c.jpg", "sub/a.jpg"])
        Labels(labels=(1, -1, 0), class_names=('cat', 'dog'))
    """
    path = Path(path).expanduser()
    rows = _read_rows(path)
    finder = _PathFinder(image_paths)
    path_column, label_column, first = _columns(rows, finder, path)
    found: list[str | None] = [None] * len(image_paths)
    unknown: list[str] = []
    ambiguous: list[str] = []
    conflicts: list[str] = []
    empty: list[int] = []
    for number, row in enumerate(rows[first:], start=first + 1):
        if len(row) <= max(path_column, label_column) or not row[label_column].strip():
            empty.append(number)
            continue
        entry, label = row[path_column].strip(), row[label_column].strip()
        index = finder.find(entry)
        if index is None:
            unknown.append(entry)
        elif index < 0:
            ambiguous.append(entry)
        elif found[index] not in (None, label):
            conflicts.append(f"{image_paths[index]} ({found[index]}, {label})")
        else:
            found[index] = label
    where = f"label file {path}"
    if unknown:
        raise DataError(
            f"{where} names {len(unknown)} files that are not among the {len(image_paths)} images: {_some(unknown)}",
            hint="give paths relative to the image folder (e.g. cat/001.jpg) or bare file names; "
            "remove the rows of images that are not in the folder",
        )
    if ambiguous:
        raise DataError(
            f"{where} names files by a name that several images share: {_some(ambiguous)}",
            hint="give those images' paths relative to the image folder (e.g. cat/001.jpg)",
        )
    if conflicts:
        raise DataError(
            f"{where} gives {len(conflicts)} images two different labels: {_some(conflicts)}",
            hint="keep one row per image",
        )
    if empty:
        raise DataError(
            f"{where} has rows without a label: rows {_some([str(n) for n in empty])}",
            hint="give every row a label, or remove the rows of unlabelled images",
        )
    return _index(found)


def read_class_names(path: Path | str) -> tuple[str, ...]:
    """Class names, in the file's order: one per line, or a JSON list of strings.

    Blank lines and surrounding spaces are ignored. Index ``i`` of the result is the
    name of class ``i``. A name may repeat: ImageNet's classes 134 and 517 are both
    "crane" (the bird and the machine).

    Raises:
        DataError: the file is missing, empty, not a JSON list of strings (when it
            starts with ``[``).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = Path(folder, "names.txt").write_text("tench\\ngoldfish\\n\\n")
        ...     read_class_names(Path(folder, "names.txt"))
        ('tench', 'goldfish')
    """
    path = Path(path).expanduser()
    text = _read_text(path, "class names file")
    if text.lstrip().startswith("["):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(
                f"class names file {path} starts like a JSON list but is not valid JSON: {error}",
                hint='write a JSON list of strings (["tench", "goldfish"]) or one name per line',
            ) from None
        if not isinstance(loaded, list) or not all(isinstance(name, str) for name in loaded):
            raise DataError(
                f"class names file {path} holds JSON that is not a list of strings",
                hint='write a JSON list of strings (["tench", "goldfish"]) or one name per line',
            )
        names = [name.strip() for name in loaded]
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise DataError(f"class names file {path} holds no name", hint="write one class name per line")
    return tuple(names)


def _index(found: Iterable[str | None]) -> Labels:
    """Class names sorted (numerically if all are integers) and each image's index, -1 for None."""
    found = list(found)
    names = sorted({name for name in found if name is not None})
    if names and all(re.fullmatch(r"[+-]?\d+", name) for name in names):
        names.sort(key=int)
    index = {name: i for i, name in enumerate(names)}
    return Labels(tuple(-1 if name is None else index[name] for name in found), tuple(names))


class _PathFinder:
    """Finds an image by relative path, by a longer path ending in one, or by a unique file name."""

    def __init__(self, image_paths: Sequence[str]) -> None:
        self.by_path = {p: i for i, p in enumerate(image_paths)}
        self.by_name: dict[str, int] = {}
        for i, p in enumerate(image_paths):
            name = PurePosixPath(p).name
            self.by_name[name] = -1 if name in self.by_name else i  # -1: several images

    def find(self, entry: str) -> int | None:
        """The image index, ``-1`` for a bare name that several images share, ``None`` if none."""
        parts = [part for part in entry.replace("\\", "/").split("/") if part not in ("", ".")]
        for start in range(len(parts)):
            index = self.by_path.get("/".join(parts[start:]))
            if index is not None:
                return index
        if len(parts) == 1:
            return self.by_name.get(parts[0])
        return None


def _columns(rows: list[list[str]], finder: _PathFinder, path: Path) -> tuple[int, int, int]:
    """``(path column, label column, first data row)``, the header read if there is one."""
    head = [cell.strip().lower() for cell in rows[0]]
    named = any(cell in PATH_COLUMNS or cell in LABEL_COLUMNS for cell in head)
    unnamed = (  # e.g. "file_id,breed": no image extension, no image, and the next row names one
        len(rows) > 1
        and PurePosixPath(rows[0][0].strip()).suffix.lower() not in IMAGE_EXTENSIONS
        and finder.find(rows[0][0].strip()) is None
        and bool(rows[1])
        and finder.find(rows[1][0].strip()) is not None
    )
    if named or unnamed:
        path_column = next((i for i, cell in enumerate(head) if cell in PATH_COLUMNS), 0)
        label_column = next((i for i, cell in enumerate(head) if cell in LABEL_COLUMNS), None)
        if label_column is None and len(head) == 2:
            label_column = 1 - path_column
        if label_column is None or label_column == path_column:
            raise DataError(
                f"label file {path} has no label column: its header is {', '.join(rows[0])}",
                hint=f"name the column of labels {LABEL_COLUMNS[0]!r} (or one of {', '.join(LABEL_COLUMNS[1:])}) "
                f"and the column of paths {PATH_COLUMNS[0]!r}",
            )
        return path_column, label_column, 1
    if max(len(row) for row in rows) < 2:
        raise DataError(
            f"label file {path} has no label column: its rows have one column",
            hint="write one 'path,label' row per image, e.g. cat/001.jpg,cat",
        )
    return 0, 1, 0


def _read_rows(path: Path) -> list[list[str]]:
    """The non-blank rows of a CSV (or TSV) file."""
    text = _read_text(path, "label file")
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    rows = [row for row in csv.reader(text.splitlines(), delimiter=delimiter) if any(c.strip() for c in row)]
    if not rows:
        raise DataError(f"label file {path} is empty", hint="write one 'path,label' row per image")
    return rows


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise DataError(
            f"{what} {path} does not exist" if not path.exists() else f"{what} {path} is not a file",
            hint="check the path",
        )
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{what} {path} cannot be read: {error}", hint="save it as UTF-8 text") from None


def _some(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_NAMES_IN_MESSAGE])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _NAMES_IN_MESSAGE else "")


def with_labels(images: ImageList, csv: str | Path | None, pattern: str | None) -> ImageList:
    """``images`` with the labels of a CSV file or a file-name pattern (at most one of them), else as found."""
    if csv is not None and pattern is not None:
        raise ConvscopeError("labels come from a CSV file or from file names, not both", hint="pass one of --labels and --labels-from-name")
    if csv is None and pattern is None:
        return images
    found = labels_from_csv(Path(csv), images.paths) if csv is not None else labels_from_name(pattern, images.paths)
    if found.unlabelled:
        warnings.warn(f"{found.unlabelled} of {len(images)} images have no label", ConvscopeWarning, stacklevel=3)
    return replace(images, labels=found.labels, class_names=found.class_names)
