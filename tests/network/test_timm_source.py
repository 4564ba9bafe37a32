"""``timm:NAME`` sources: preprocessing equal to timm's own eval transform, weights files, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from convscope.errors import ModelError, WeightsError
from convscope.network.load import load_network
from oracles import need_module

timm = need_module("timm")


@pytest.mark.parametrize("name", ["resnet18", "inception_v3", "convnext_atto"])
def test_preprocessing_equals_timms_eval_transform(name):
    """The model input convscope makes from a photo equals timm's ``create_transform`` of it
    (resize with the config's crop_pct and interpolation, centre crop, mean, std)."""
    from timm.data import create_transform, resolve_data_config

    network = load_network(f"timm:{name}")
    model = timm.create_model(name)
    theirs = create_transform(**resolve_data_config({}, model=model), is_training=False)
    rng = np.random.default_rng(0)
    for height, width in [(300, 400), (401, 257), (224, 224), (120, 90), (1000, 999)]:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        frame = np.asarray(network.preprocess.to_model_frame(image))
        mine = network.model_input(torch.from_numpy(frame.copy()).permute(2, 0, 1)[None])[0]
        assert torch.allclose(mine, theirs(image), atol=1e-5), (name, height, width)


def test_weights_file_is_loaded_into_the_timm_model(tmp_path):
    torch.manual_seed(1)
    trained = timm.create_model("resnet18")
    torch.save(trained.state_dict(), tmp_path / "r18.pth")
    network = load_network("timm:resnet18", tmp_path / "r18.pth")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(network.model(x), trained.eval()(x))
    assert network.weights == str(tmp_path / "r18.pth") and network.weights_sha256
    assert network.class_names is not None and len(network.class_names) == 1000


def test_unknown_model_and_unknown_tag_say_what_exists():
    with pytest.raises(ModelError, match="did you mean.*resnet18"):
        load_network("timm:resnet1888")
    with pytest.raises(WeightsError, match="neither a file nor a timm pretrained tag"):
        load_network("timm:resnet18", "nonsense_tag")


def test_offline_download_fails_with_one_clear_message():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "convscope", "layers", "timm:resnet18", "--weights", "a1_in1k"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert out.returncode != 0
    assert "could not download the timm weights resnet18.a1_in1k" in out.stderr
    assert "--weights FILE" in out.stderr and "Traceback" not in out.stderr
