"""An atlas of the real SqueezeNet scanned with ``decoder="torchcodec"``, against a brute force
that decodes with TorchCodec and frames with torchvision's v2 tensor transforms by hand.

The photos are resized to 240 before the 224 crop, so the tensor resize really runs (their
short side is 256). The brute force over the same photos with Pillow's frame must differ
from the atlas somewhere: this shows the test can tell the two decoders apart.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

from convscope import make_atlas, read_hits
from convscope.network.preprocess import Preprocess
from oracles import SHARED, need_module, need_shared

WEIGHTS = SHARED / "models" / "squeezenet1_0-imagenet.pth"
PHOTOS = SHARED / "data" / "imagenet-sample"
COUNT = 40
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

pytestmark = pytest.mark.slow
need_shared("models/squeezenet1_0-imagenet.pth", "data/imagenet-sample")


def _top1(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per unit of ``features.3``: the largest activation over the photos ``x`` ``(N, 3, 224, 224)`` and its photo."""
    with torch.inference_mode():
        maxima = model.features[:4](x).amax(dim=(2, 3))  # (N, units)
    return maxima.max(dim=0)


def test_torchcodec_atlas_is_the_brute_force_of_torchcodec_and_torchvision_tensors(tmp_path: Path) -> None:
    decoders = need_module("torchcodec.decoders")
    names = sorted(p.name for p in PHOTOS.iterdir() if p.suffix == ".jpg")[:COUNT]
    pre = Preprocess(resize=240, decoder="torchcodec")
    atlas = make_atlas("torchvision:squeezenet1_0", PHOTOS, tmp_path / "atlas", weights=WEIGHTS, layers=["features.3"], preprocess=pre, limit=COUNT, progress=False)

    model = torchvision.models.squeezenet1_0()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    model.eval()
    tensor = v2.Compose([v2.Resize(240, antialias=True), v2.CenterCrop(224), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])
    codec_x = torch.stack([tensor(decoders.decode_jpeg(str(PHOTOS / name), mode="RGB")) for name in names])
    pillow = T.Compose([T.Resize(240), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
    pillow_x = torch.stack([pillow(Image.open(PHOTOS / name).convert("RGB")) for name in names])
    values, photos = _top1(model, codec_x)
    pillow_values, _ = _top1(model, pillow_x)

    units = read_hits(atlas, "features.3")["units"]
    assert len(units) == len(values) == 128
    recorded = torch.tensor([unit["hits"][0]["activation"] for unit in units])
    assert [unit["hits"][0]["image"] for unit in units] == [names[i] for i in photos]
    torch.testing.assert_close(recorded, values, rtol=1e-4, atol=1e-4)
    assert ((recorded - pillow_values).abs() > 1e-3 * recorded.abs().clamp(min=1)).any()
