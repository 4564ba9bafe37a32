"""The examples of the README and of the documentation, found, set up and run.

Every fenced ``python`` block and every ``bash`` command of ``README.md`` and ``docs/**/*.md`` is
an example. A block opts out of running only with a marker on the line before it,
``<!-- not run: REASON -->`` (an HTML comment: GitHub and the site do not show it); the
convscope commands of such a block are still parsed by convscope's own argument parser, so a
renamed command or flag fails there too.

The examples run in a :class:`Sandbox`: a fresh folder holding, under the names the examples
use, small stand-ins for what a reader would have: a few generated photos for ``photos/``, a
two-class ImageFolder of 32 px images for ``cifar10/test/``, randomly initialised weights for
``alexnet.pth`` and the other weight files, a model file for ``my_model.py:build``, a
TorchScript file for ``model.ts``, and a home folder whose ``~/.cache/convscope`` looks like
the demo's cache (checkpoints of its network, its photo tiles); ``cifar10-test/`` and
``imagenet-sample/`` stand for the folders of ``../shared`` that the guides' pictures were made from.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = {"python", "bash", "console", "sh", "shell"}
_BLOCK = re.compile(r"^(?:<!-- not run: (?P<reason>.+?) -->\n)?```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Example:
    """One fenced block: where it is, its language, its code and, if it opts out, why."""

    document: str
    line: int
    language: str
    code: str
    not_run: str | None

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"


def documents() -> list[Path]:
    """README.md and every Markdown page of the documentation."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def examples(path: Path) -> list[Example]:
    """The Python and shell blocks of one Markdown file, in order."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        if match["lang"] not in LANGUAGES:
            continue
        line = text.count("\n", 0, match.start("code"))
        found.append(Example(path.relative_to(ROOT).as_posix(), line, match["lang"], match["code"], match["reason"]))
    return found


def commands(code: str) -> list[str]:
    """The shell commands of a block: continuation lines joined, comments and ``$ `` prompts dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        words = shlex.split(line, comments=True)
        if words:
            out.append(line)
    return out


def needs_shell(command: str) -> bool:
    """A command that only a shell can run (``cd``, variables, substitutions, pipes, chains)."""
    return bool(re.search(r"(^cd\s|\$|\||&&|;|~)", command))


def convscope_argv(command: str) -> list[str] | None:
    """The arguments after ``convscope`` (also under ``torchrun ... -m convscope`` or a venv's
    ``.venv/bin/convscope``), or ``None`` for another program."""
    words = shlex.split(command, comments=True)
    if words and words[0] == "torchrun" and "-m" in words and words[words.index("-m") + 1] == "convscope":
        return words[words.index("-m") + 2:]
    if words and Path(words[0]).name == "convscope":
        return words[1:]
    return None


def parse_only(example: Example) -> int:
    """Parse the convscope commands of a block that is not run; returns how many there were."""
    from convscope.cli import build_parser

    count = 0
    for command in commands(example.code):
        for part in command.split("&&"):
            argv = convscope_argv(part.strip())
            if argv is None:
                continue
            try:
                build_parser().parse_args(argv)
            except SystemExit as exc:  # argparse's way of refusing
                raise AssertionError(f"{example.where}: convscope refuses {part.strip()!r}") from exc
            count += 1
    return count


# ---------------------------------------------------------------- the sandbox's stand-ins


def _photo(path: Path, seed: int, size: tuple[int, int] = (320, 256)) -> None:
    """A JPEG of a few coloured shapes on noise: something for units to fire on."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = rng.integers(0, size[0] - 20), rng.integers(0, size[1] - 20)
        w, h = rng.integers(10, 60, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=90)


_MY_MODEL = '''"""A stand-in for a reader's own model file: a ResNet-18 with 10 classes."""
import torchvision


def build():
    return torchvision.models.resnet18(num_classes=10)
'''


def build_assets(folder: Path) -> Path:
    """Everything the examples read, made once per test session (weights are the big part)."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from resnet20_cifar import resnet20
    finally:
        sys.path.remove(str(ROOT / "examples"))
    from convscope.demo.model import TinyAlexNet

    torch.manual_seed(0)
    for i in range(6):
        _photo(folder / "photos" / f"photo{i}.jpg", i)
    for name, seed in [("cat.jpg", 10), ("dog.jpg", 11), ("beagle.jpg", 12), ("photo.jpg", 13), ("starry_night.jpg", 14)]:
        _photo(folder / name, seed)
    for c, label in enumerate(["airplane", "cat"]):
        for i in range(3):
            _photo(folder / "cifar10" / "test" / label / f"{i}.jpg", 20 + 3 * c + i, size=(32, 32))
    os.symlink("cifar10/test", folder / "cifar10-test")  # ../shared's name for the same ImageFolder
    for i, name in enumerate(["n01440764_tench", "n02088364_beagle", "n02123045_tabby", "n03452741_grand_piano"]):
        _photo(folder / "imagenet-sample" / f"{name}.jpg", 30 + i)
    alexnet = torchvision.models.alexnet().state_dict()
    torch.save(alexnet, folder / "alexnet.pth")
    os.link(folder / "alexnet.pth", folder / "alexnet-owt-7be5be79.pth")
    squeezenet = torchvision.models.squeezenet1_0().state_dict()
    torch.save(squeezenet, folder / "squeezenet.pth")
    torch.save(squeezenet, folder / "squeezenet1_0-imagenet.pth")
    # the trained ResNet-20's file holds a `state_dict` with DataParallel's `module.` prefix
    torch.save({"state_dict": {f"module.{k}": v for k, v in resnet20().state_dict().items()}}, folder / "resnet20-cifar10.th")
    for name in ("e1.pt", "e5.pt", "e20.pt"):
        torch.save(resnet20().state_dict(), folder / name)
    (folder / "my_model.py").write_text(_MY_MODEL)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), folder / "best.pt")
    small = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU()).eval()
    torch.jit.save(torch.jit.script(small), folder / "model.ts")
    # the demo's cache: its five checkpoints and final weights, and its photo tiles
    cache = folder / "home" / ".cache" / "convscope"
    _mk(cache)
    for step in (5, 14, 48, 120, 240):
        torch.save(TinyAlexNet(num_classes=18).state_dict(), cache / f"tinyalexnet-docs.step-{step:05d}.pt")
    torch.save(TinyAlexNet(num_classes=18).state_dict(), cache / "tinyalexnet-docs.pt")
    for i in range(4):
        _photo(cache / "tiles-96-v2" / f"{i}.jpg", 40 + i, size=(96, 96))
    return folder


def _mk(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Sandbox:
    """A fresh working folder for one document's examples, with links to the stand-ins."""

    def __init__(self, folder: Path, assets: Path):
        self.folder = folder
        for entry in assets.iterdir():
            if entry.name != "home":
                (folder / entry.name).symlink_to(entry)
        home = _mk(folder / "home" / ".cache")
        (home / "convscope").symlink_to(assets / "home" / ".cache" / "convscope")
        (folder / "examples").symlink_to(ROOT / "examples")
        bin_ = _mk(folder / "bin")
        (bin_ / "convscope").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m convscope "$@"\n')
        (bin_ / "convscope").chmod(0o755)
        self.env = {**os.environ, "HOME": str(folder / "home"), "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}

    @contextlib.contextmanager
    def inside(self):
        """Run in the sandbox: its folder the working directory, its home ``HOME``."""
        before, home = os.getcwd(), os.environ.get("HOME")
        os.chdir(self.folder)
        os.environ["HOME"] = self.env["HOME"]
        try:
            yield
        finally:
            os.chdir(before)
            if home is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = home

    def run(self, example: Example) -> int:
        """Run every command (or the Python code) of a block; returns how many ran."""
        if example.language == "python":
            with self.inside():
                exec(compile(example.code, example.where, "exec"), {"__name__": "__example__"})
            return 1
        if any(needs_shell(c) for c in commands(example.code)):  # one shell, so `cd` and variables carry
            self._shell(example, "\n".join(commands(example.code)))
            return len(commands(example.code))
        count = 0
        for command in commands(example.code):
            argv = convscope_argv(command)
            if argv is None:
                self._shell(example, command)
            elif argv[0] == "serve":
                self._serve(example, argv)
            else:
                self._convscope(example, argv)
            count += 1
        return count

    def _convscope(self, example: Example, argv: list[str]) -> None:
        from convscope.cli import main

        with self.inside():
            status = main(argv)
        assert status == 0, f"{example.where}: `convscope {shlex.join(argv)}` exited {status}"
        if "--out" in argv:
            out = Path(os.path.expanduser(argv[argv.index("--out") + 1]))
            assert (self.folder / out).exists(), f"{example.where}: `convscope {shlex.join(argv)}` wrote no {out}"

    def _shell(self, example: Example, command: str) -> None:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=self.folder, env=self.env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{example.where}: `{command}` exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        for out in re.findall(r"--out\s+(\S+)", command):
            path = Path(out.replace("~", self.env["HOME"], 1)) if out.startswith("~") else self.folder / out
            assert path.exists(), f"{example.where}: `{command}` wrote no {out}"

    def _serve(self, example: Example, argv: list[str]) -> None:
        """``convscope serve`` runs until stopped: it must answer for the atlas's page, then it is
        stopped. Its port becomes a free one (the documented 8000 may be taken on a test machine)."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if "--port" in argv:
            argv = [*argv[:argv.index("--port")], *argv[argv.index("--port") + 2:]]
        server = subprocess.Popen([sys.executable, "-m", "convscope", *argv, "--port", str(port)], cwd=self.folder,
                                  env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as answer:
                        assert answer.status == 200 and b"<html" in answer.read().lower()
                    return
                except OSError:
                    assert server.poll() is None, f"{example.where}: `convscope {shlex.join(argv)}` stopped"
                    assert time.monotonic() < deadline, f"{example.where}: `convscope {shlex.join(argv)}` never answered"
                    time.sleep(0.5)
        finally:
            server.terminate()
            server.wait(timeout=30)
