"""Listing an image folder: which files are images, in which order, with which labels.

The order of :attr:`ImageList.paths` (relative POSIX paths, plain string sort)
is *the image order* everywhere in convscope: image indices refer to it and
ties between equal activations are broken by it.

A folder is in *ImageFolder layout* (torchvision's convention) when every image
lies below a first-level subfolder of the root; the subfolder names are then the
class names, and each image's label is the index of its first-level folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from convscope.errors import DataError

IMAGE_EXTENSIONS = frozenset(
    {
        ".bmp", ".dib", ".gif", ".jfif", ".jpe", ".jpeg", ".jpg", ".pbm", ".pgm",
        ".png", ".pnm", ".ppm", ".tga", ".tif", ".tiff", ".webp",
    }
)  # fmt: skip
"""File extensions (lower case) that are read as images; case-insensitive."""

_NAMES_IN_MESSAGE = 5


@dataclass(frozen=True)
class SkippedFile:
    """A file that is not scanned, and why.

    Attributes:
        path: relative to the image root, ``/``-separated (``notes/readme.txt``).
        reason: one phrase, e.g. ``not an image file (extension .txt)``.
    """

    path: str
    reason: str


@dataclass(frozen=True)
class ImageList:
    """The images of one folder, in image order.

    Attributes:
        root: the folder, absolute.
        paths: image files relative to ``root``, ``/``-separated, sorted.
        labels: per image, the index into ``class_names`` of its class (``-1``: unlabelled):
            its first-level folder in ImageFolder layout, or what a CSV file or a file-name
            pattern says (:mod:`convscope.data.labels`); ``None`` without labels.
        class_names: the sorted class names (ImageFolder: first-level folders that hold images), or ``None``.
        skipped: files that are listed but are not images, in path order.

    Example:
        >>> images = find_images(Path("photos"))  # doctest: +SKIP
        >>> images.paths[:2], images.class_names  # doctest: +SKIP
        (('cat/001.jpg', 'cat/002.jpg'), ('cat', 'dog'))
    """

    root: Path
    paths: tuple[str, ...]
    labels: tuple[int, ...] | None
    class_names: tuple[str, ...] | None
    skipped: tuple[SkippedFile, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, index: int) -> Path:
        """The absolute path of image ``index``."""
        return self.root.joinpath(*PurePosixPath(self.paths[index]).parts)

    def label_name(self, index: int) -> str | None:
        """The class name of image ``index``, or ``None`` without labels or for an unlabelled image (label ``-1``)."""
        if self.labels is None or self.class_names is None or self.labels[index] < 0:
            return None
        return self.class_names[self.labels[index]]


def find_images(root: Path | str) -> ImageList:
    """List the images below ``root``, recursively, in image order.

    Hidden files and folders (names starting with ``.``) are ignored; files
    whose extension is not in :data:`IMAGE_EXTENSIONS` are kept in
    ``skipped``. Symbolic links to folders are not followed. Whether a file
    with an image extension really decodes is found out later, when it is read.

    Raises:
        DataError: the root is missing or a file, holds no files, or holds no
            file with an image extension.

    Example:
        >>> images = find_images("photos")  # doctest: +SKIP
        >>> len(images), images.skipped  # doctest: +SKIP
        (120, (SkippedFile(path='notes.txt', reason='not an image file (extension .txt)'),))
    """
    root = Path(root).expanduser().absolute()
    if not root.exists():
        raise DataError(
            f"image folder {root} does not exist",
            hint="check the path; give the folder that holds the images",
        )
    if not root.is_dir():
        raise DataError(
            f"{root} is a file, not a folder",
            hint="give the folder that holds the images, not one image; "
            "put a single image in a folder of its own",
        )
    files, unlisted = _walk(root)
    if not files and unlisted:
        raise DataError(
            f"image folder {root} cannot be read: {unlisted[0].reason}",
            hint="check the folder's permissions",
        )
    if not files:
        raise DataError(
            f"image folder {root} is empty (hidden files aside)",
            hint="put images (.jpg, .png, ...) in it or in subfolders of it",
        )
    paths = tuple(p for p in files if _is_image(p))
    skipped = unlisted + tuple(
        SkippedFile(p, f"not an image file (extension {PurePosixPath(p).suffix or 'none'})")
        for p in files
        if not _is_image(p)
    )
    if not paths:
        seen = ", ".join(files[:_NAMES_IN_MESSAGE]) + (", ..." if len(files) > _NAMES_IN_MESSAGE else "")
        raise DataError(
            f"image folder {root} is a folder of non-images: {len(files)} files, such as {seen}",
            hint=f"convscope reads files ending in {', '.join(sorted(IMAGE_EXTENSIONS))}; "
            "convert the files or give another folder",
        )
    labels, class_names = _folder_labels(paths)
    return ImageList(root=root, paths=paths, labels=labels, class_names=class_names, skipped=skipped)


def _walk(root: Path) -> tuple[list[str], tuple[SkippedFile, ...]]:
    """Sorted relative POSIX paths of all non-hidden files, and folders that could not be listed."""
    files: list[str] = []
    unreadable: list[SkippedFile] = []

    def on_error(error: OSError) -> None:
        where = Path(error.filename or root).relative_to(root).as_posix()
        unreadable.append(SkippedFile(where, f"cannot list folder ({error.strerror or error})"))

    for folder, dirnames, filenames in os.walk(root, onerror=on_error):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(folder).relative_to(root)
        files.extend((rel / f).as_posix() for f in filenames if not f.startswith("."))
    files.sort()
    return files, tuple(sorted(unreadable, key=lambda s: s.path))


def _is_image(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in IMAGE_EXTENSIONS


def _folder_labels(paths: tuple[str, ...]) -> tuple[tuple[int, ...] | None, tuple[str, ...] | None]:
    """Labels and class names if every image lies below a first-level folder, else ``(None, None)``."""
    parts = [PurePosixPath(p).parts for p in paths]
    if any(len(p) < 2 for p in parts):
        return None, None
    class_names = tuple(sorted({p[0] for p in parts}))
    index = {name: i for i, name in enumerate(class_names)}
    return tuple(index[p[0]] for p in parts), class_names
