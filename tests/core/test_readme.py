"""The README is a front page: CI runs its test command, its links lead into the docs.

Its examples run in tests/docs/test_examples.py, with those of the documentation.
"""

import re
from pathlib import Path

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


def test_the_readme_is_a_front_page_that_links_into_the_docs():
    assert len(README.splitlines()) <= 150
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert len([t for t in local if t.startswith("docs/") and t.endswith(".md")]) >= 10
    broken = [t for t in local if not (ROOT / t).exists()]
    assert not broken, f"README links to missing files: {broken}"
