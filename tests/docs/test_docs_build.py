"""The documentation site builds strictly, offline, with every public name in its API reference."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import convscope
from oracles import missing

ROOT = Path(__file__).resolve().parents[2]


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of ``config`` into ``site`` (mkdocs is in the test extra)."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        missing("mkdocs and mkdocstrings-python are not installed; pip install -e '.[test]'")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
                          cwd=config.parent, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    result = mkdocs_build(ROOT / "mkdocs.yml", site)
    assert result.returncode == 0, result.stdout + result.stderr
    return site


def pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_every_page_of_the_nav_is_built(site):
    nav = re.findall(r":\s+([\w/-]+)\.md\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert len(nav) >= 20
    for page in nav:
        assert (site / f"{page}.html").is_file(), page
    # every Markdown file under docs/ is in the nav (mkdocs would build an orphan page silently)
    docs = {p.relative_to(ROOT / "docs").with_suffix("").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert docs == set(nav), docs ^ set(nav)
    # and every tutorial notebook is a page of the nav, under "Tutorials"
    notebooks = re.findall(r":\s+(tutorials/[\w-]+)\.ipynb\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert sorted(notebooks) == sorted(p.relative_to(ROOT / "docs").with_suffix("").as_posix() for p in (ROOT / "docs").rglob("*.ipynb"))
    for page in notebooks:
        html = (site / f"{page}.html").read_text(encoding="utf-8")
        assert "jupyter-wrapper" in html and "import convscope" in html.replace("</span>", "").replace('<span class="kn">', ""), page


def test_the_tutorials_link_to_the_pages_of_the_site(site):
    """mkdocs-jupyter leaves a notebook's links as written; tools/mkdocs_notebooks.py points them
    at the built pages."""
    html = (site / "tutorials" / "resnet20-cifar.html").read_text(encoding="utf-8")
    assert 'href="../reading-an-atlas.html"' in html and 'href="squeezenet-imagenet.html"' in html
    for page in pages(site):
        assert not re.search(r'href="(?![a-z]+:)[^"]+\.(md|ipynb)(#[^"]*)?"', page.read_text(encoding="utf-8")), page.name


def test_every_public_name_is_in_the_api_reference(site):
    html = (site / "reference" / "convscope.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'id="([\w.]+)"', html))
    assert not undocumented(convscope, ids), "not in the API reference"
    for module in ("explain", "notebook", "project"):
        html = (site / "reference" / f"{module}.html").read_text(encoding="utf-8")
        package = importlib.import_module(f"convscope.{module}")
        assert not undocumented(package, set(re.findall(r'id="([\w.]+)"', html))), f"convscope.{module}"


def undocumented(package, ids: set[str]) -> list[str]:
    """The names of ``package.__all__`` with no anchor in the page: neither under the package
    (``convscope.make_atlas``) nor where they are defined (``convscope.scan.scan.scan``, for a
    function named like its subpackage)."""
    absent = []
    for name in package.__all__:
        if name.startswith("__"):
            continue
        where = getattr(getattr(package, name), "__module__", None)
        if f"{package.__name__}.{name}" not in ids and f"{where}.{name}" not in ids:
            absent.append(name)
    return absent


def test_docstrings_render_as_google_style_sections(site):
    html = (site / "reference" / "convscope.html").read_text(encoding="utf-8")
    section = html[html.index('id="convscope.receptive_fields"'):html.index('id="convscope.select_layers"')]
    assert "Parameters:" in section and "Raises:" in section and "Examples:" in section
    assert "input_size" in section and "GeometryError" in section
    # no Sphinx role is printed as text, and doctests are code, not Markdown
    assert not re.search(r":(func|class|meth|mod|data|attr):", html)
    assert "&gt;&gt;&gt;" in section and "highlight" in section


def test_the_site_fetches_nothing_from_the_network(site):
    for page in pages(site):
        html = page.read_text(encoding="utf-8")
        for tag, url in re.findall(r"<(script|link|img|iframe)\b[^>]*?(?:src|href)=\"([^\"]+)\"", html):
            assert not re.match(r"(https?:)?//", url), f"{page.name}: <{tag}> loads {url}"
        # nor do inline scripts (nbconvert's template imports MathJax and Mermaid from CDNs), nor an empty src
        for script in re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S):
            assert not re.search(r"[\"'](https?:)?//", script), f"{page.name}: an inline script loads {script[:300]}"
        assert 'src=""' not in html, page.name
    assert "fonts.googleapis" not in "".join(p.read_text(encoding="utf-8") for p in pages(site))
    assert (site / "search" / "search_index.js").is_file()  # the offline plugin's inlined index


def test_a_broken_link_fails_the_build(tmp_path):
    """The strict build is the check: a copy of the docs with one broken link does not build."""
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copytree(ROOT / "tools", tmp_path / "tools")
    (tmp_path / "src").symlink_to(ROOT / "src")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "getting-started.md"
    page.write_text(page.read_text() + "\nSee [the missing page](guides/missing.md).\n")
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "guides/missing.md" in result.stdout + result.stderr


def test_a_missing_api_reference_fails_the_build(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copytree(ROOT / "tools", tmp_path / "tools")
    (tmp_path / "src").symlink_to(ROOT / "src")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "reference" / "project.md"
    page.write_text(page.read_text() + "\n::: convscope.project.no_such_function\n")
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "no_such_function" in result.stdout + result.stderr


def test_a_broken_link_in_a_tutorial_fails_the_build(tmp_path):
    """A notebook's links are checked too (tools/mkdocs_notebooks.py), not only the Markdown pages'."""
    import json

    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copytree(ROOT / "tools", tmp_path / "tools")
    (tmp_path / "src").symlink_to(ROOT / "src")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    path = tmp_path / "docs" / "tutorials" / "squeezenet-imagenet.ipynb"
    notebook = json.loads(path.read_text())
    notebook["cells"][-1]["source"].append("\n- [a page that is not there](../guides/missing.md)\n")
    path.write_text(json.dumps(notebook))
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "guides/missing.md" in result.stdout + result.stderr
