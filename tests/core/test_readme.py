"""The README's examples run, and CI runs the README's test command."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    quick_start = blocks("bash")[:2]
    assert "convscope demo" in quick_start[0]
    test_command = quick_start[1].strip()
    assert "pytest" in test_command
    assert test_command in (ROOT / ".ci" / "run").read_text()


@pytest.mark.slow
def test_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(tmp_path / "photos" / f"{i}.jpg")
    torch.save(torchvision.models.alexnet().state_dict(), tmp_path / "alexnet.pth")
    examples = blocks("python")
    assert len(examples) >= 2
    for code in examples:
        exec(compile(code, "README.md", "exec"), {})
    assert (tmp_path / "atlas" / "manifest.json").is_file()
