"""The few operating-system calls that :mod:`convscope.atlas.atomic` needs: locks and one swap.

* :func:`hold_lock_file`: a blocking, exclusive ``flock`` on a small lock file, for the short
  steps that must not interleave between runs (the swap, the clean-up of dead runs' folders);
  the file is removed when released, so nothing stays beside the atlas.
* :func:`try_lock_folder`: a non-blocking ``flock`` on a folder itself. A run holds the lock on
  its temporary folder for its whole life; the kernel drops it when the process dies, even by
  ``SIGKILL``, so a folder whose lock can be taken belongs to no live run.
* :func:`exchange`: Linux's ``renameat2(RENAME_EXCHANGE)``, which swaps two paths in one step.

Where ``fcntl`` or ``renameat2`` is missing (Windows, old C libraries, file systems without the
flag) the functions say so (``None`` / ``False``) and the caller falls back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: ``renameat2`` flags and the "current directory" file descriptor (``<linux/fs.h>``, ``<fcntl.h>``).
RENAME_EXCHANGE = 2
AT_FDCWD = -100
#: Errors meaning "this system or file system cannot exchange": fall back to two renames.
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


@contextmanager
def hold_lock_file(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) for the ``with`` block.

    Waits while another process holds it. On leaving, the file is removed if it is an empty
    regular file (the only kind this function creates) and then unlocked. A waiter that then
    finds its file gone or replaced starts again on the new one, so removing is safe.

    Raises:
        OSError: ``path`` is a folder, a link or another kind of file, or cannot be created.

    Example:
        >>> with hold_lock_file(Path(".atlas.lock")):  # doctest: +SKIP
        ...     swap()
    """
    if fcntl is None:  # pragma: no cover - no flock: run without the lock
        yield
        return
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    while True:
        fd = os.open(path, flags, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file, so not convscope's lock file", str(path))
            fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            try:
                now = os.lstat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            break
        os.close(fd)  # the holder before us removed it: lock the file that is there now
    try:
        yield
    finally:
        try:
            if os.fstat(fd).st_size == 0:
                os.unlink(path)  # still ours: nobody else can have replaced it while we hold it
        except OSError:
            pass
        os.close(fd)


def try_lock_folder(path: Path) -> int | None:
    """Take an exclusive lock on the folder ``path`` if no process holds one, without waiting.

    Returns:
        The open file descriptor that holds the lock (close it to release), or ``None`` if
        another process holds the lock, ``path`` is not a real folder (a link is not
        followed), or the system cannot lock folders.

    Example:
        >>> fd = try_lock_folder(Path(".atlas.k2j4h1x0.partial"))  # doctest: +SKIP
    """
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


@cache
def _renameat2() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """The C library's ``renameat2`` (glibc 2.28+, musl 1.2.x), or ``None``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` (both must exist) in one atomic step.

    Returns:
        ``True`` once swapped; ``False`` where the system or the file system cannot do it (then
        nothing changed and the caller uses two renames).

    Raises:
        OSError: the exchange is supported but failed (a path is missing, permissions, ...).

    Example:
        >>> exchange(Path(".atlas.k2j4h1x0.partial"), Path("atlas"))  # doctest: +SKIP
        True
    """
    function = _renameat2()
    if function is None:
        return False
    if function(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))
