"""Replace a folder atomically: build it under a temporary name beside it, then swap it in.

A crash, a Ctrl-C or a ``SIGKILL`` leaves the previous folder or the new one at ``out``, never
a half-written one, and the next run on the same ``out`` cleans what the dead run left.

The names beside ``out`` (``NAME`` is ``out``'s name), all in ``out``'s parent folder:

* ``.NAME.XXXXXXXX.partial``: a run's temporary folder (``tempfile.mkdtemp``). The run holds a
  ``flock`` on the folder for its whole life; the kernel drops it when the process dies, so a
  later run removes the folders whose lock it can take (their run is dead) and never a live
  run's. The old folder that a swap replaced is removed under such a name too.
* ``.NAME.old-PID``: only where the swap takes two renames (no ``renameat2``): the old folder
  between them. A run killed there leaves ``NAME`` missing; the next run renames it back.
* ``.NAME.lock``: held (and then removed) while a run cleans up, creates its temporary folder
  or swaps it in, so that two runs on one ``out`` never interleave these steps: each swap puts a
  whole folder at ``NAME``, and the last run to finish wins.

Only real folders (not links) with exactly these names, owned by the user, are ever removed;
an ``.old-PID`` folder also has to pass the same ``check`` as ``out``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from convscope.atlas.format import FORMAT
from convscope.atlas.posix import exchange, hold_lock_file, try_lock_folder
from convscope.errors import AtlasError, ConvscopeError

#: The random part of a ``tempfile.mkdtemp`` name (``tempfile._RandomNameSequence``).
_RANDOM = "[a-z0-9_]{8}"

#: A folder to remove (its path) and the descriptor holding its lock (``None`` if unlockable).
Garbage = tuple[Path, int | None]


def check_out(out: Path, *, record: str = "manifest.json", format: str = FORMAT, what: str = "a convscope atlas") -> None:
    """Refuse ``out`` unless writing there can only replace a folder of ours (default: an atlas).

    ``out`` may be missing, an empty folder, or a previous one: a real folder (not a
    symlink) whose ``record`` file is a regular file (not a symlink) holding a JSON
    object with ``"format": format``. Anything else (a file, a folder of the user's, a
    web app's or browser extension's ``manifest.json``, an unreadable one) raises, and
    nothing is touched. Other folders convscope writes (an evolution folder) pass their
    own ``record``, ``format`` and ``what``.

    Call it before long work (a scan, a training) so that a bad ``--out`` fails fast;
    :func:`atomic_folder` calls it again before replacing anything.

    Raises:
        AtlasError: ``out`` holds something that is not ``what``.

    Example:
        >>> check_out(Path("new-atlas"))  # missing: fine  # doctest: +SKIP
    """
    out = Path(out).absolute()
    hint = f"choose another --out, or remove {out} yourself if it is no longer needed"
    if out.is_symlink():
        raise AtlasError(f"{out} is a symbolic link; convscope does not replace links", hint=f"pass the folder it points to, or {hint}")
    if not out.exists():
        return
    if not out.is_dir():
        raise AtlasError(f"{out} exists and is a file, not {what}", hint=hint)
    marker = out / record
    if not marker.exists() and not marker.is_symlink():
        if any(out.iterdir()):
            raise AtlasError(f"{out} exists, is not empty and is not {what} (it has no {record})", hint=hint)
        return
    if marker.is_symlink() or not marker.is_file():
        raise AtlasError(f"the {record} in {out} is not a regular file, so it is not {what}", hint=hint)
    try:
        data = json.loads(marker.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict) or data.get("format") != format:
        raise AtlasError(
            f"the {record} in {out} is not {what}'s (no \"format\": \"{format}\"): it may be a web app's "
            "or a browser extension's, so the folder is left as it is",
            hint=hint,
        )


@contextmanager
def atomic_folder(out: Path, check: Callable[[Path], None] = check_out) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``out`` that replaces ``out`` on success.

    ``out`` may be missing, an empty folder or a previous folder of ours (``check``,
    default :func:`check_out`: an atlas); anything else is refused before anything is
    written, so a user's folder is never deleted. On entering, the leftovers of dead runs
    on the same ``out`` are removed (and an old folder that a run killed inside its swap
    left aside is put back); a live run's temporary folder is left alone. On success the
    swap is one ``renameat2(RENAME_EXCHANGE)`` where Linux has it, else two renames.

    Raises:
        AtlasError: ``out`` is not ``check``'s kind of folder (now, or when the swap comes).

    Example:
        >>> with atomic_folder(Path("atlas")) as tmp:  # doctest: +SKIP
        ...     (tmp / "manifest.json").write_text('{"format": "convscope-atlas"}')
    """
    out = Path(out).absolute()
    check(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_file(out)
    _check_lock(lock)
    garbage: list[Garbage] = []
    held: int | None = None
    try:
        with hold_lock_file(lock):
            garbage = _recover(out, check)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
            held = try_lock_folder(tmp)
        _remove(garbage)
        try:
            yield tmp
            with hold_lock_file(lock):
                check(out)  # again: the folder may have changed while it was built
                garbage = _swap(tmp, out)
                if held is not None:
                    os.close(held)  # our folder is ``out`` now: nobody may take it for a leftover
                    held = None
            _remove(garbage)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        _remove(garbage)  # if cut short: removed or released
        if held is not None:
            os.close(held)


def lock_file(out: Path) -> Path:
    """The lock file beside ``out`` that serializes runs' clean-ups and swaps: ``.NAME.lock``."""
    return out.parent / f".{out.name}.lock"


def _check_lock(lock: Path) -> None:
    """Refuse a ``.NAME.lock`` that is not a regular file: a folder or link of the user's."""
    if os.path.lexists(lock) and (lock.is_symlink() or not lock.is_file()):
        raise AtlasError(
            f"{lock} is in the way: convscope locks a file of that name while it replaces the folder beside it",
            hint=f"rename or remove {lock}, or choose another --out",
        )


def _swap(tmp: Path, out: Path) -> list[Garbage]:
    """Put ``tmp`` at ``out``; return the old ``out`` (now garbage) to remove. Under the lock."""
    if not os.path.lexists(out):
        os.rename(tmp, out)
        return []
    if exchange(tmp, out):
        return [(tmp, try_lock_folder(tmp))]  # ``tmp`` now names the old folder
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    os.rename(out, old)  # a kill from here ...
    try:
        os.rename(tmp, out)  # ... to here leaves ``out`` missing: the next run's _recover puts ``old`` back
    except BaseException:
        os.rename(old, out)
        raise
    return [_retire(old, out)]


def _retire(folder: Path, out: Path) -> Garbage:
    """Lock ``folder`` and rename it to a fresh ``.partial`` name, so that it is removed as
    garbage (by us, or by a later run if we die) and never taken for an old folder to restore."""
    fd = try_lock_folder(folder)
    name = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    os.rename(folder, name)  # replaces the empty folder ``mkdtemp`` made
    return name, fd


def _recover(out: Path, check: Callable[[Path], None]) -> list[Garbage]:
    """Undo what dead runs on ``out`` left, under the lock; return the folders to remove.

    The temporary folders whose lock can be taken (their run is dead) come back locked by us.
    An ``.old-PID`` folder (a run killed inside its two-rename swap) goes back to ``out`` if
    ``out`` is missing, else is retired as garbage; one that fails ``check`` is left alone.
    """
    partial = re.compile(rf"\.{re.escape(out.name)}\.{_RANDOM}\.partial")
    aside = re.compile(rf"\.{re.escape(out.name)}\.old-[0-9]+")
    garbage: list[Garbage] = []
    olds: list[Path] = []
    try:
        for entry in sorted(os.scandir(out.parent), key=lambda e: e.name):
            path = Path(entry.path)
            if partial.fullmatch(entry.name) and _own_folder(path):
                fd = try_lock_folder(path)
                if fd is not None:
                    garbage.append((path, fd))
            elif aside.fullmatch(entry.name) and _own_folder(path) and _passes(check, path):
                olds.append(path)
        if olds and not os.path.lexists(out):
            newest = max(olds, key=lambda p: p.stat().st_mtime)
            olds.remove(newest)
            os.rename(newest, out)
        for old in olds:
            garbage.append(_retire(old, out))
    except BaseException:
        _remove(garbage, delete=False)
        raise
    return garbage


def _own_folder(path: Path) -> bool:
    """A real folder (a link is not followed) owned by this user."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and (not hasattr(os, "getuid") or info.st_uid == os.getuid())


def _passes(check: Callable[[Path], None], path: Path) -> bool:
    try:
        check(path)
    except ConvscopeError:
        return False
    return True


def _remove(garbage: list[Garbage], delete: bool = True) -> None:
    """Delete each folder (while holding its lock), then release the lock; empties the list."""
    while garbage:
        path, fd = garbage.pop()
        try:
            if delete:
                shutil.rmtree(path, ignore_errors=True)
        finally:
            if fd is not None:
                with suppress(OSError):
                    os.close(fd)
