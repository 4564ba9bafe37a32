"""Contract test over torchvision's classification zoo (random weights, reduced input sizes).

Every model meets the contract of :func:`zoo_contract.check_contract`: listed shapes against a
hooked forward, sampled receptive fields against the input-gradient support on a float64
averaging copy, atlas boxes equal to the units' own fields.
"""

from __future__ import annotations

import warnings

import pytest
import torchvision

from convscope.network.load import load_network
from convscope.network.preprocess import Preprocess
from tiny_models import write_images
from zoo_contract import check_contract

pytestmark = pytest.mark.slow

MODELS = torchvision.models.list_models(module=torchvision.models)
#: Transformers need their training resolution; everything else runs at 96 px (Inception-v3: 299).
SIZES = {"vit": 224, "swin": 224, "maxvit": 224, "inception_v3": 299}


def size_of(name: str) -> int:
    return next((s for prefix, s in SIZES.items() if name.startswith(prefix)), 96)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-images")
    write_images(root, 4, 100, seed=7)
    return root


@pytest.mark.parametrize("name", MODELS)
def test_zoo_model(name, images, tmp_path):
    size = size_of(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = load_network(f"torchvision:{name}", preprocess=Preprocess(input_size=(size, size), resize=size))
    check_contract(network, size, images, tmp_path)
