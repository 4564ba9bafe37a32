"""Runs killed with SIGKILL at many points, and runs on one ``--out`` at the same time.

Each run is a real forked process (a fork is quick: no new interpreter, no torch import); the
test kills it with ``SIGKILL`` where it announces that it reached a point, or after a delay.
A later run must then find no leftovers (the dead run's temporary folder, an ``.old-PID``
folder, a lock file) and a complete folder at ``out``: the old one or the dead run's new one.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from convscope.atlas.format import FORMAT
from convscope.atlas.writer import atomic_folder
from convscope.errors import AtlasError

PARTS = [f"part-{i:02d}.txt" for i in range(12)]


def write_complete(folder: Path, tag: str, announce: Callable[[str], None] | None = None, pause: float = 0.0) -> None:
    """A small folder of ours: ``PARTS`` and a manifest, all saying ``tag``."""
    for number, name in enumerate(PARTS):
        (folder / name).write_text(tag)
        if announce is not None and number == len(PARTS) // 2:
            announce("writing")
        time.sleep(pause)
    (folder / "manifest.json").write_text(json.dumps({"format": FORMAT, "tag": tag}))


def tag_of(folder: Path) -> str:
    """The tag of a complete folder (every part and the manifest agree); fails on a partial or mixed one."""
    assert folder.is_dir() and not folder.is_symlink(), f"{folder} is missing"
    assert sorted(os.listdir(folder)) == sorted([*PARTS, "manifest.json"]), f"{folder} is not complete"
    tag = json.loads((folder / "manifest.json").read_text())["tag"]
    assert all((folder / name).read_text() == tag for name in PARTS), f"{folder} is mixed"
    return tag


def build(out: Path, tag: str) -> None:
    with atomic_folder(out) as tmp:
        write_complete(tmp, tag)


def pause() -> None:
    time.sleep(60)  # until the test kills us


class Child:
    """A forked process running ``target(announce, go)``: ``announce(word)`` tells the test where
    it is; ``go()`` waits for the test's :meth:`release`."""

    def __init__(self, target: Callable[[Callable[[str], None], Callable[[], None]], None]) -> None:
        words_r, words_w = os.pipe()
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 0
            try:
                os.close(words_r)
                target(lambda word: os.write(words_w, word.encode() + b"\n") and None, lambda: os.read(go_r, 1) and None)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        os.close(words_w)
        os.close(go_r)
        self.pid, self.words, self.go = pid, words_r, go_w
        self.heard = b""
        self.status: int | None = None

    def wait_for(self, word: str, timeout: float = 20.0) -> str:
        """Wait until the child announces a line starting with ``word``; return that line."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.heard.split(b"\n")[:-1]:
                if line.decode().split(" ")[0] == word:
                    return line.decode()
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.words], [], [], max(left, 0))
            chunk = os.read(self.words, 4096) if ready else b""
            if not chunk:
                self.kill()
                pytest.fail(f"the child never said {word!r} (it said {self.heard!r})")
            self.heard += chunk

    def release(self) -> None:
        os.write(self.go, b"x")

    def running(self) -> bool:
        """Whether the child still runs (if not, its status is kept)."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                return True
            self._ended(status)
        return False

    def kill(self) -> None:
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
            self.join()

    def join(self) -> int:
        if self.status is None:
            self._ended(os.waitpid(self.pid, 0)[1])
        return self.status

    def _ended(self, status: int) -> None:
        self.status = status
        os.close(self.words)
        os.close(self.go)


def two_renames() -> None:
    """In a child: swap with two renames, as where Linux's renameat2 is missing."""
    try:
        import convscope.atlas.atomic as atomic
    except ImportError:  # the code before the atomic module had only two renames
        return
    atomic.exchange = lambda a, b: False  # type: ignore[attr-defined]


def killed_run(out: Path, stage: str, fallback: bool) -> Callable[[Callable[[str], None], Callable[[], None]], None]:
    """A run that announces ``stage`` and pauses there (to be killed)."""

    def run(announce: Callable[[str], None], go: Callable[[], None]) -> None:
        if fallback:
            two_renames()
        if stage == "between":  # after the first of the two renames: ``out`` was moved aside
            for name in ("rename", "replace"):
                real = getattr(os, name)

                def renamed(src: object, dst: object, *args: object, _real: Callable = real, **kwargs: object) -> None:
                    _real(src, dst, *args, **kwargs)
                    if Path(str(src)) == out:
                        announce("between")
                        pause()

                setattr(os, name, renamed)
        if stage in ("swapped", "deleting"):  # the new folder is in place; the old one is to be deleted
            real_rmtree = shutil.rmtree

            def rmtree(path: object, *args: object, **kwargs: object) -> None:
                if stage == "deleting":
                    some = next(Path(d) / f for d, _, files in os.walk(str(path)) for f in files)
                    some.unlink()  # a half-deleted old folder
                announce(stage)
                pause()
                real_rmtree(path, *args, **kwargs)

            shutil.rmtree = rmtree  # type: ignore[assignment]
        with atomic_folder(out) as tmp:
            announce(f"start {tmp.name}")
            if stage == "start":
                pause()
            write_complete(tmp, "killed", announce if stage == "writing" else None)
            if stage == "writing":
                pause()
            announce("written")
            if stage == "written":
                pause()
        announce("done")

    return run


def later_run(out: Path, allowed: set[str], tag: str = "later") -> None:
    """Enter the next run: no leftovers beside ``out``, a complete folder (or none) at ``out``."""
    with atomic_folder(out) as tmp:
        beside = sorted(name for name in os.listdir(out.parent) if name != tmp.name)
        assert beside == [name for name in [out.name] if os.path.lexists(out)], f"leftovers: {beside}"
        found = tag_of(out) if out.exists() else None
        assert found in allowed, f"{out} holds {found}, expected one of {allowed}"
        write_complete(tmp, tag)
    assert sorted(os.listdir(out.parent)) == [out.name], "the run left something beside the folder"
    assert tag_of(out) == tag


STAGES = [
    ("start", False, {"old"}),
    ("start", True, {"old"}),
    ("writing", False, {"old"}),
    ("writing", True, {"old"}),
    ("written", False, {"old"}),
    ("written", True, {"old"}),
    ("between", True, {"old"}),  # two renames: the old folder is aside, ``out`` missing
    ("swapped", False, {"killed"}),
    ("swapped", True, {"killed"}),
    ("deleting", False, {"killed"}),
    ("deleting", True, {"killed"}),
]


@pytest.mark.parametrize(("stage", "fallback", "allowed"), STAGES, ids=[f"{s}-{'two-renames' if f else 'exchange'}" for s, f, _ in STAGES])
def test_a_run_killed_at_any_point_leaves_nothing_the_next_run_does_not_clean(tmp_path: Path, stage: str, fallback: bool, allowed: set[str]) -> None:
    out = tmp_path / "atlas"
    build(out, "old")
    child = Child(killed_run(out, stage, fallback))
    child.wait_for(stage)
    child.kill()
    assert os.WIFSIGNALED(child.status) and os.WTERMSIG(child.status) == signal.SIGKILL
    assert len(os.listdir(tmp_path)) > 1  # it did leave something
    later_run(out, allowed)


@pytest.mark.parametrize("stage", ["start", "writing", "written"])
def test_a_first_run_killed_leaves_no_folder_and_no_leftovers(tmp_path: Path, stage: str) -> None:
    out = tmp_path / "atlas"
    child = Child(killed_run(out, stage, fallback=False))
    child.wait_for(stage)
    child.kill()
    assert not out.exists()
    later_run(out, {None})


def test_runs_killed_at_varied_times_always_leave_a_complete_folder(tmp_path: Path) -> None:
    out = tmp_path / "atlas"
    build(out, "later-start")
    previous = "later-start"
    for attempt in range(14):
        fallback = attempt % 2 == 1

        def run(announce: Callable[[str], None], go: Callable[[], None], fallback: bool = fallback) -> None:
            if fallback:
                two_renames()
            with atomic_folder(out) as tmp:
                announce("start")
                write_complete(tmp, "killed", pause=0.004)

        child = Child(run)
        child.wait_for("start")
        time.sleep(attempt * 0.006)  # from the first file to past the end (12 files * 4 ms, then the swap)
        child.kill()
        later_run(out, {previous, "killed"}, tag=f"later-{attempt}")
        previous = f"later-{attempt}"


def test_a_later_run_removes_a_dead_runs_folder_but_never_a_live_runs(tmp_path: Path) -> None:
    out = tmp_path / "atlas"
    build(out, "old")

    def live_run(announce: Callable[[str], None], go: Callable[[], None]) -> None:
        with atomic_folder(out) as tmp:
            write_complete(tmp, "live")
            announce(f"built {tmp.name}")
            go()  # the test runs other whole runs on ``out`` meanwhile
        announce("done")

    live = Child(live_run)
    try:
        live_name = live.wait_for("built").split(" ")[1]
        dead = Child(killed_run(out, "writing", fallback=False))  # enters while ``live`` builds
        dead_name = dead.wait_for("start").split(" ")[1]
        dead.wait_for("writing")
        dead.kill()
        assert (tmp_path / dead_name).is_dir()
        assert tag_of(tmp_path / live_name) == "live", "the live run's folder was touched"
        with atomic_folder(out) as tmp:
            assert not (tmp_path / dead_name).exists(), "the dead run's folder was not removed"
            assert tag_of(tmp_path / live_name) == "live", "the live run's folder was touched"
            write_complete(tmp, "between")
        assert tag_of(out) == "between"
        assert tag_of(tmp_path / live_name) == "live"
        live.release()
        live.wait_for("done")
        assert live.join() == 0
    finally:
        live.kill()
    assert tag_of(out) == "live"  # the last run to finish wins
    assert sorted(os.listdir(tmp_path)) == [out.name]


@pytest.mark.parametrize("fallback", [False, True], ids=["exchange", "two-renames"])
def test_two_runs_swapping_on_one_out_always_leave_a_whole_folder(tmp_path: Path, fallback: bool) -> None:
    out = tmp_path / "atlas"
    build(out, "old")
    runs = 15

    def racing(who: str) -> Callable[[Callable[[str], None], Callable[[], None]], None]:
        def run(announce: Callable[[str], None], go: Callable[[], None]) -> None:
            if fallback:
                two_renames()
            for name in ("rename", "replace"):  # widen the gaps between steps, where runs could interleave
                real = getattr(os, name)

                def slow(src: object, dst: object, *args: object, _real: Callable = real, **kwargs: object) -> None:
                    _real(src, dst, *args, **kwargs)
                    time.sleep(0.002)

                setattr(os, name, slow)
            announce("ready")
            go()
            for number in range(runs):
                build(out, f"{who}-{number}")

        return run

    children = [Child(racing("a")), Child(racing("b"))]
    try:
        for child in children:
            child.wait_for("ready")
        for child in children:
            child.release()
        while any([child.running() for child in children]):
            try:
                fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                assert fallback, f"{out} was missing while two runs swapped"  # two renames: briefly, by design
                continue
            try:  # one folder, read through one descriptor: all its files must agree
                tags = set()
                for name in [*PARTS, "manifest.json"]:
                    with open(name, opener=lambda path, flags: os.open(path, flags, dir_fd=fd)) as file:
                        tags.add(file.read() if name in PARTS else json.loads(file.read())["tag"])
                assert len(tags) == 1, f"a mixed folder: {tags}"
            except FileNotFoundError:
                pass  # it was swapped out and is being deleted
            finally:
                os.close(fd)
    finally:
        for child in children:
            child.kill()
    assert [child.status for child in children] == [0, 0], "a run failed (its traceback is in the captured output)"
    assert tag_of(out) in {f"a-{runs - 1}", f"b-{runs - 1}"}
    assert sorted(os.listdir(tmp_path)) == [out.name]



def test_things_named_like_ours_that_are_not_ours_are_never_touched(tmp_path: Path) -> None:
    out = tmp_path / "atlas"
    build(out, "old")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("mine")
    (tmp_path / ".atlas.abcdefgh.partial").write_text("a file, not a folder")
    (tmp_path / ".atlas.linktoit.partial").symlink_to(elsewhere)
    (tmp_path / ".atlas.old-12").symlink_to(elsewhere)
    for name in (".atlas.mine.partial", ".atlas.ABCDEFGH.partial", ".atlasx.abcdefgh.partial", ".atlas.abcdefgh.partial2",
                 ".atlas.old-x", ".atlas.scan.pt", "atlas.abcdefgh.partial"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "keep.txt").write_text(name)
    (tmp_path / ".atlas.old-13").mkdir()  # an .old-PID folder that is not an atlas (check_out refuses it)
    (tmp_path / ".atlas.old-13" / "notes.md").write_text("mine")
    (tmp_path / ".atlas.lock").write_text("a file of the user's, not empty")
    before = {name: _describe(tmp_path / name) for name in os.listdir(tmp_path) if name != "atlas"}
    build(out, "new")
    build(out, "newer")
    assert tag_of(out) == "newer"
    assert {name: _describe(tmp_path / name) for name in os.listdir(tmp_path) if name != "atlas"} == before


def _describe(path: Path) -> object:
    if path.is_symlink():
        return ("link", os.readlink(path))
    if path.is_file():
        return ("file", path.read_text())
    return ("folder", {name: _describe(path / name) for name in sorted(os.listdir(path))})


def test_a_folder_in_the_way_of_the_lock_file_is_refused_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "atlas"
    build(out, "old")
    (tmp_path / ".atlas.lock").mkdir()
    (tmp_path / ".atlas.lock" / "mine.txt").write_text("mine")
    with pytest.raises(AtlasError, match="in the way") as error:
        build(out, "new")
    assert "rename or remove" in error.value.hint
    assert tag_of(out) == "old" and (tmp_path / ".atlas.lock" / "mine.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == [".atlas.lock", "atlas"]


def test_a_failed_second_rename_puts_the_old_folder_back_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import convscope.atlas.atomic as atomic

    out = tmp_path / "atlas"
    build(out, "old")
    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    real = os.rename

    def rename(src: object, dst: object) -> None:
        if Path(str(dst)) == out and Path(str(src)).name.endswith(".partial"):
            raise OSError(5, "input/output error")
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="input/output"):
        build(out, "new")
    assert tag_of(out) == "old"
    assert sorted(os.listdir(tmp_path)) == ["atlas"]
