"""The tutorial notebooks of docs/tutorials run in a real Jupyter kernel, and show what they teach.

Each notebook is executed with nbclient, cell by cell, in a fresh folder laid out like the
repository's root (``examples/`` beside it, ``../shared`` above it), so its code runs exactly as
written. Then its outputs are checked: the inline unit card with its patches, the atlas's table,
the explanation, and no error or warning anywhere. The notebooks are kept in git without
outputs (checked here too): the SqueezeNet one's outputs would be megabytes of base64 PNGs that
go stale with every change to the cards.
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import pytest

from oracles import need_module, need_shared

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "docs" / "tutorials"
TIMEOUT_S = 300  # per cell; each notebook takes about half a minute on two CPU cores
PNG = "data:image/png;base64,"


def execute(name: str, tmp_path: Path, monkeypatch) -> tuple[dict, float]:
    """Run ``docs/tutorials/<name>`` in a kernel whose working folder is a copy of the repository's
    layout under ``tmp_path``; returns the executed notebook and the seconds it took."""
    nbformat = need_module("nbformat")
    nbclient = need_module("nbclient")
    need_module("ipykernel")
    shared = need_shared("models/resnet20-cifar10.th", "models/squeezenet1_0-imagenet.pth",
                         "data/cifar10-test", "data/imagenet-sample")
    work = tmp_path / "repository"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "shared").symlink_to(shared)  # ../shared from the working folder
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "src"))  # the kernel imports this checkout's convscope
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(TUTORIALS / name, as_version=4)
    # "python3" is ipykernel's kernelspec, which jupyter_client starts with this interpreter
    client = nbclient.NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    start = time.perf_counter()
    client.execute()
    return notebook, time.perf_counter() - start


def outputs(notebook: dict) -> list[tuple[int, dict]]:
    """Every output of every code cell, with the cell's position."""
    return [(i, out) for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" for out in cell.outputs]


def html_outputs(notebook: dict) -> list[str]:
    return [out["data"]["text/html"] for _, out in outputs(notebook) if "text/html" in out.get("data", {})]


def text(notebook: dict) -> str:
    """What the notebook printed, and the plain-text results of its cells."""
    parts = [out.get("text", "") for _, out in outputs(notebook) if out["output_type"] == "stream"]
    parts += [out["data"].get("text/plain", "") for _, out in outputs(notebook) if "data" in out]
    return "\n".join(parts)


def assert_clean(notebook: dict) -> None:
    """No errors, nothing on stderr (warnings such as tqdm's "IProgress not found" land there)."""
    for i, out in outputs(notebook):
        assert out["output_type"] != "error", f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
        if out["output_type"] == "stream":
            assert out["name"] == "stdout", f"cell {i} wrote to stderr: {out['text'][:500]}"
    assert "IProgress" not in text(notebook)


def unit_cards(notebook: dict, layer: str) -> list[str]:
    """The inline unit cards of ``layer`` (titled ``"<layer> · unit <i>"``)."""
    return [h for h in html_outputs(notebook) if re.search(rf">{re.escape(layer)} · unit \d+<", h)]


def test_the_notebooks_are_stored_without_outputs():
    nbformat = need_module("nbformat")
    names = sorted(p.name for p in TUTORIALS.glob("*.ipynb"))
    assert names == ["resnet20-cifar.ipynb", "squeezenet-imagenet.ipynb"]
    for name in names:
        notebook = nbformat.read(TUTORIALS / name, as_version=4)
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), name
        assert notebook.cells[0].cell_type == "markdown" and notebook.cells[0].source.startswith("# "), name


@pytest.mark.slow
def test_the_resnet20_tutorial_runs_and_shows_a_unit_card(tmp_path, monkeypatch):
    notebook, seconds = execute("resnet20-cifar.ipynb", tmp_path, monkeypatch)
    print(f"\nresnet20-cifar.ipynb executed in {seconds:.1f} s")
    assert_clean(notebook)
    html = html_outputs(notebook)
    # the atlas's table: one row per default layer of the ResNet-20
    table = [h for h in html if "<table" in h and "layer3.2" in h and "conv1" in h]
    assert table, "no atlas table among the outputs"
    for layer in ["conv1", "layer1.0", "layer2.1", "layer3.2"]:
        assert f">{layer}<" in table[0]
    assert "1000 images" in table[0]
    # the unit card, with its 9 top hits as PNG patches, its bottom hits and its label's badge
    cards = unit_cards(notebook, "layer3.2")
    assert len(cards) >= 1, "no unit card among the outputs"
    card = cards[0]
    assert card.count(PNG) >= 18 and "top 9 hits" in card and "bottom hits" in card
    assert re.search(r"· high<", card), "the card's label badge is not 'high'"
    printed = text(notebook)
    assert re.search(r"\d+ of 64 units have a high-confidence label", printed)
    assert re.search(r"confidence high: \d of 9 hits agree", printed)
    assert "(64,) float64" in printed  # the firing rates as a numpy array over the layer's units
    assert "layer3.2  selectivity" in printed
    # the explanation, with the atlas's patches of its units
    explanation = [h for h in html if "gradient x activation" in h]
    assert explanation and explanation[0].count(PNG) >= 8
    assert "predicted: cat" in printed


@pytest.mark.slow
def test_the_squeezenet_tutorial_runs_and_explains_a_photo(tmp_path, monkeypatch):
    notebook, seconds = execute("squeezenet-imagenet.ipynb", tmp_path, monkeypatch)
    print(f"\nsqueezenet-imagenet.ipynb executed in {seconds:.1f} s")
    assert_clean(notebook)
    html = html_outputs(notebook)
    printed = text(notebook)
    assert "features.12.expand3x3  256 units on 13x13 positions, field 155x155" in printed
    table = [h for h in html if "<table" in h and "features.12.expand3x3" in h]
    assert table and "200 images" in table[0]
    # statistics.png, shown as an image output
    images = [out for _, out in outputs(notebook) if "image/png" in out.get("data", {})]
    assert len(images) == 1 and len(images[0]["data"]["image/png"]) > 10_000
    # the deep unit's card and the always-on unit's card, patches included
    cards = unit_cards(notebook, "features.12.expand3x3")
    assert len(cards) == 2 and all(card.count(PNG) >= 18 for card in cards)
    assert "confidence: none" in printed
    always_on = re.search(r"(\d+) of 256 units always on, (\d+) dead", printed)
    assert always_on and int(always_on[1]) > 0
    assert "100% of images" in cards[1]  # the always-on unit fires on every photo
    # the explained photo, by LRP, with the atlas's patches of its units
    explanation = [h for h in html if "LRP epsilon-plus-flat" in h]
    assert explanation and explanation[0].count(PNG) >= 8
    assert ">beagle<" in explanation[0]
    assert printed.index("beagle: 0.") < printed.index("basset: 0.")


def test_the_checks_catch_a_warning_and_a_missing_card(tmp_path):
    """The output checks can fail: a warning lands on stderr (as tqdm's "IProgress not found"
    does in a kernel without ipywidgets), and a notebook that shows no card has none."""
    nbformat = need_module("nbformat")
    nbclient = need_module("nbclient")
    need_module("ipykernel")
    cells = ["import warnings\nwarnings.warn('a warning a reader would see')",
             "from tqdm.auto import tqdm\nfor _ in tqdm(range(2), disable=True):\n    pass"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    with pytest.raises(AssertionError, match="cell 0 wrote to stderr"):
        assert_clean(notebook)
    if importlib.util.find_spec("ipywidgets") is None:
        assert "IProgress not found" in notebook.cells[1].outputs[0]["text"]
    assert not unit_cards(notebook, "layer3.2") and not html_outputs(notebook)
