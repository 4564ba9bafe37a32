"""The operating-system calls behind atomic_folder: folder locks that die with their process,
a lock file that leaves nothing behind, and renameat2's exchange."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from convscope.atlas.posix import exchange, hold_lock_file, try_lock_folder


def test_a_folder_lock_is_exclusive_and_dies_with_a_killed_process(tmp_path: Path) -> None:
    folder = tmp_path / ".atlas.abcdefgh.partial"
    folder.mkdir()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            assert try_lock_folder(folder) is not None
            os.write(ready_w, b"x")
            time.sleep(60)
        finally:
            os._exit(1)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"x"
    try:
        assert try_lock_folder(folder) is None  # a live process holds it
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
    fd = try_lock_folder(folder)  # the kernel released it with the process
    assert fd is not None
    os.close(fd)


def test_links_and_files_are_not_locked_as_folders(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "folder")
    (tmp_path / "file").write_text("x")
    assert try_lock_folder(tmp_path / "link") is None
    assert try_lock_folder(tmp_path / "file") is None
    assert try_lock_folder(tmp_path / "missing") is None


def test_the_lock_file_is_removed_and_a_users_file_is_kept(tmp_path: Path) -> None:
    lock = tmp_path / ".atlas.lock"
    with hold_lock_file(lock):
        assert lock.is_file()
    assert not lock.exists()
    lock.write_text("the user's")
    with hold_lock_file(lock):
        pass
    assert lock.read_text() == "the user's"
    lock.unlink()
    lock.mkdir()
    with pytest.raises(OSError), hold_lock_file(lock):
        pass


def test_a_lock_file_makes_another_process_wait(tmp_path: Path) -> None:
    lock = tmp_path / ".atlas.lock"
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with hold_lock_file(lock):
                os.write(ready_w, b"x")
                time.sleep(0.3)
        finally:
            os._exit(0)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"x"
    start = time.monotonic()
    with hold_lock_file(lock):
        waited = time.monotonic() - start
    os.waitpid(pid, 0)
    os.close(ready_r)
    assert waited > 0.15
    assert not lock.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_exchange_swaps_two_folders_in_one_step(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "from-a").write_text("a")
    (tmp_path / "b").mkdir()
    assert exchange(tmp_path / "a", tmp_path / "b")
    assert os.listdir(tmp_path / "b") == ["from-a"] and os.listdir(tmp_path / "a") == []
    with pytest.raises(FileNotFoundError):
        exchange(tmp_path / "a", tmp_path / "missing")
