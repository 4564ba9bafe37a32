"""open_atlas(...).circuits and a unit's inputs() / matters_for(): the numbers written, as numpy
arrays and lists; an atlas without circuits says how to make them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from circuits_fixtures import build_tiny_atlas, sample_circuits
from convscope.circuits.folder import write_circuits
from convscope.errors import AtlasError
from convscope.notebook import open_atlas


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return build_tiny_atlas(tmp_path_factory.mktemp("circuits-notebook"))


@pytest.fixture()
def atlas(tiny, tmp_path) -> Path:
    return Path(shutil.copytree(tiny["atlas"], tmp_path / "atlas"))


def test_arrays_and_unit_lists_are_what_was_written(atlas):
    written = sample_circuits()
    write_circuits(atlas, written)
    opened = open_atlas(atlas)
    found = opened.circuits
    assert found is opened.circuits  # read once
    assert found.pairs == [("features.3", "features.0"), ("classifier", "features.3")]
    first = written.inputs[0]
    inputs = found.inputs("features.3")
    np.testing.assert_array_equal(inputs.contributions, first.contributions.astype(np.float32))
    np.testing.assert_array_equal(inputs.activations, first.activations.astype(np.float32))
    np.testing.assert_array_equal(inputs.hits, first.hits)
    np.testing.assert_allclose(inputs.shares, first.shares, atol=1e-6)
    assert inputs.top(2, 2, -1) == opened["features.3"][2].inputs(n=2, sign=-1)
    for unit in opened["features.3"]:
        listed = unit.inputs(n=3)
        assert isinstance(listed, list) and [c for c, _, _ in listed] == [c for c, _, _ in first.top(unit.index, 3)]
        np.testing.assert_allclose([s for _, s, _ in listed], [s for _, s, _ in first.top(unit.index, 3)], atol=1e-6)
    ablation = found.ablation("features.3")
    fake = written.ablations[0]
    for name in ("drops", "accuracy", "ablated_accuracy", "counts", "bau_top", "bau_random"):
        np.testing.assert_array_equal(getattr(ablation, name), getattr(fake, name))
    assert ablation.units_for(1) == fake.units_for(1)
    matters = opened["features.3"][4].matters_for(n=2)
    assert [k for k, _, _ in matters] == [k for k, _, _ in fake.matters_for(4, 2)]
    np.testing.assert_allclose([[d, a] for _, d, a in matters], [[d, a] for _, d, a in fake.matters_for(4, 2)], rtol=1e-6)
    with pytest.raises(AtlasError, match="no pair for layer 'features.0'"):
        opened["features.0"][0].inputs()
    with pytest.raises(AtlasError, match="no ablation of layer 'classifier'"):
        opened["classifier"][0].matters_for()


def test_an_atlas_without_circuits(atlas):
    opened = open_atlas(atlas)
    assert opened.circuits is None
    with pytest.raises(AtlasError, match="has no circuits") as error:
        opened["features.3"][0].inputs()
    assert "convscope circuits" in str(error.value)
    with pytest.raises(AtlasError, match="--ablation"):
        opened["features.3"][0].matters_for()
