"""``convscope circuits`` on the real SqueezeNet (../shared): the written contributions of a unit at
its one hit equal gradient x activation by a plain forward hook and ``torch.autograd.grad`` on the
image as torchvision's transforms make it (an end-to-end check of hits, images and arrays)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from convscope import load_network, make_atlas
from convscope.atlas.circuits_data import read_circuits
from convscope.atlas.format import read_hits
from convscope.cli import main
from oracles import need_shared


@pytest.mark.slow
def test_squeezenet_inputs_equal_a_plain_gradient(tmp_path, capsys):
    shared = need_shared("models/squeezenet1_0-imagenet.pth", "data/imagenet-sample")
    weights = shared / "models/squeezenet1_0-imagenet.pth"
    network = load_network("torchvision:squeezenet1_0", weights)
    network = replace(network, preprocess=replace(network.preprocess, input_size=(96, 96), resize=110))
    atlas = tmp_path / "atlas"
    make_atlas(network, shared / "data/imagenet-sample", atlas, layers=["features.3", "features.4", "classifier"], k=2, limit=12,
               labels_from_name=r"^n\d+_(.+)\.", progress=False, workers=0)
    ablation = ["--ablation", "6"] if importlib.util.find_spec("convscope.circuits.ablation") else []
    assert main(["circuits", str(atlas), "--layers", "features.4", "--hits", "1", "--labels-from-name", r"^n\d+_(.+)\.", "-q", *ablation]) == 0
    printed = capsys.readouterr()
    assert "features.4 <- features.3" in printed.out
    record = json.loads((atlas / "circuits" / "circuits.json").read_text())
    (pair,) = record["pairs"]
    assert (pair["layer"], pair["below"], pair["direct"], pair["units"], pair["below_units"]) == ("features.4", "features.3", False, 128, 128)
    if ablation:
        # ImageNet's 'Cardigan' (the dog) and 'cardigan' (the sweater) differ only in case: the file names do
        # not map onto the model's names uniquely, so the images count for their predicted classes (as in explain)
        assert record["ablation"]["class_by"] == "predicted" and [e["layer"] for e in record["ablation"]["layers"]] == ["features.4"]
        assert "counts each image for its predicted class" in printed.err
    stored = read_circuits(atlas).inputs("features.4")
    hits = read_hits(atlas, "features.4")["units"]
    model = torchvision.models.squeezenet1_0()
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    frame = transforms.Compose([transforms.Resize(110), transforms.CenterCrop(96), transforms.ToTensor(),
                                transforms.Normalize(network.preprocess.mean, network.preprocess.std)])
    for unit in (0, 57, 127):
        hit = hits[unit]["hits"][0]
        with Image.open(shared / "data/imagenet-sample" / hit["image"]) as image:
            x = frame(image.convert("RGB"))[None]
        seen = {}

        def leaf(module, inputs, output):
            seen["below"] = output.detach().clone().requires_grad_(True)
            return seen["below"]

        handles = [model.features[3].register_forward_hook(leaf),
                   model.features[4].register_forward_hook(lambda m, i, o: seen.__setitem__("upper", o))]
        try:
            model(x)
        finally:
            for handle in handles:
                handle.remove()
        value = seen["upper"][0, unit, hit["row"], hit["col"]]
        (gradient,) = torch.autograd.grad(value, seen["below"])
        plain = (seen["below"].detach() * gradient).double().sum(dim=(2, 3))[0].numpy()
        assert stored.hits[unit] == 1 and stored.activations[unit] == pytest.approx(float(value.detach()), rel=1e-4)
        np.testing.assert_allclose(stored.contributions[unit], plain, rtol=0, atol=1e-4 * np.abs(plain).max())
