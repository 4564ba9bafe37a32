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
import random
from dataclasses import dataclass, replace
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


def list_images(listing: Path | str, root: Path | str | None = None) -> ImageList:
    """The images named in a text file, one path per line, in the file's order.

    Blank lines and lines starting with ``#`` are ignored. Paths are relative to ``root``
    (default: the folder of ``listing``), ``/``-separated; an absolute path must lie below
    ``root``. The file's order is the image order. Labels come, as for a folder, from an
    ImageFolder layout of the paths (every path below a first-level folder). Whether each
    file exists and decodes is found out when it is read (a missing one is skipped then).

    Raises:
        DataError: the file cannot be read, names no image, names one twice, or names a path
            outside ``root`` or with a non-image extension.

    Example:
        >>> images = list_images("train.txt", root="/data/imagenet")  # doctest: +SKIP
    """
    listing = Path(listing).expanduser().absolute()
    base = Path(root).expanduser().absolute() if root is not None else listing.parent
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the image list {listing}: {exc}", hint="give a UTF-8 text file with one image path per line") from None
    paths: list[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        path = Path(text)
        if path.is_absolute():
            try:
                path = path.relative_to(base)
            except ValueError:
                raise DataError(f"{listing}:{number}: {text} is not below the root {base}", hint="give paths relative to --root, or the right --root") from None
        relative = PurePosixPath(path.as_posix())
        if ".." in relative.parts:
            raise DataError(f"{listing}:{number}: {text} leaves the root {base}", hint="give paths below the root")
        if not _is_image(str(relative)):
            raise DataError(f"{listing}:{number}: {text} is not an image file (extension {relative.suffix or 'none'})", hint=f"list files ending in {', '.join(sorted(IMAGE_EXTENSIONS))}")
        paths.append(str(relative))
    if not paths:
        raise DataError(f"the image list {listing} names no image", hint="write one image path per line")
    if len(set(paths)) != len(paths):
        twice = next(p for i, p in enumerate(paths) if p in paths[:i])
        raise DataError(f"the image list {listing} names {twice} twice", hint="list every image once: a repeated image would be two of a unit's hits")
    labels, class_names = _folder_labels(tuple(paths))
    return ImageList(root=base, paths=tuple(paths), labels=labels, class_names=class_names, skipped=())


def image_source(source: Path | str, root: Path | str | None = None) -> ImageList:
    """A folder (:func:`find_images`) or a text file listing images (:func:`list_images`)."""
    path = Path(source).expanduser()
    if path.is_file() and not _is_image(path.name):
        return list_images(path, root)
    if root is not None:
        raise DataError("--root goes with a text file listing images, not with a folder", hint="leave out --root, or give the list file")
    return find_images(path)


def take(images: ImageList, limit: int | None = None, sample: int | None = None, seed: int = 0) -> ImageList:
    """The first ``limit`` images, or ``sample`` images drawn at random (seeded, kept in image
    order), to try a big data set quickly; ``images`` itself when neither is given.

    Example:
        >>> small = take(find_images("imagenet/train"), sample=5000)  # doctest: +SKIP
    """
    if limit is not None and sample is not None:
        raise DataError("give --limit or --sample, not both", hint="--limit N takes the first N images, --sample N a seeded random N")
    count = limit if limit is not None else sample
    if count is None or count >= len(images):
        return images
    if count < 1:
        raise DataError(f"--limit and --sample take a positive number of images, got {count}")
    if limit is not None:
        chosen = list(range(count))
    else:
        chosen = sorted(random.Random(seed).sample(range(len(images)), count))
    labels = tuple(images.labels[i] for i in chosen) if images.labels is not None else None
    return replace(images, paths=tuple(images.paths[i] for i in chosen), labels=labels)
