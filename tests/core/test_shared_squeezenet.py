"""The atlas of a real ImageNet network equals a brute force through torchvision's own transforms.

Uses ``../shared`` (next to the repository): the SqueezeNet 1.0 state dict
``models/squeezenet1_0-imagenet.pth`` and the 1,000 ImageNet photos
``data/imagenet-sample``. Skipped when absent (failed in CI, see oracles.py).

Two independent computations of each unit's strongest image:

- convscope: :func:`make_atlas` (its own decoding, resize, crop, normalisation, hooks
  and running top-k), read back with :func:`read_hits`;
- brute force: ``torchvision.models.squeezenet1_0`` with the same weights, every
  photo through ``PIL.Image.open(...).convert("RGB")`` and torchvision's
  ``Resize(256)``, ``CenterCrop(224)``, ``ToTensor()``, ``Normalize(mean, std)``,
  plain forward hooks, and per image and unit the plain spatial max.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

from convscope import make_atlas, read_hits, read_manifest
from oracles import need_shared

SHARED = Path(__file__).resolve().parents[3] / "shared"
WEIGHTS = SHARED / "models" / "squeezenet1_0-imagenet.pth"
PHOTOS = SHARED / "data" / "imagenet-sample"
LAYERS = ["features.0", "features.7", "classifier.1"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BATCH = 50

pytestmark = pytest.mark.slow
need_shared("models/squeezenet1_0-imagenet.pth", "data/imagenet-sample")


class BruteForce:
    """Per photo and unit of each layer: the spatial max and where it is.

    Attributes:
        names: photo file names, in the order of the rows below.
        maxima: layer -> ``(photos, units)`` float, the max over the map of each unit.
        where: layer -> ``(photos, units)`` int64, its flat position ``row * width + col``.
        width: layer -> the feature map's width.
    """

    def __init__(self) -> None:
        model = torchvision.models.squeezenet1_0()
        model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
        # channels-last: about twice as fast on CPUs here, and other kernels than convscope's scan
        model.eval().to(memory_format=torch.channels_last)
        transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(MEAN, STD)])
        modules = dict(model.named_modules())
        parts: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {name: [] for name in LAYERS}
        self.width: dict[str, int] = {}

        def hook(name: str):
            def record(module, inputs, output: torch.Tensor) -> None:
                # inside the forward: before the in-place ReLU that follows changes the output
                flat = output.detach().flatten(2)
                value, position = flat.max(dim=2)
                parts[name].append((value.clone(), position))
                self.width[name] = output.shape[-1]

            return record

        self.names = sorted(p.name for p in PHOTOS.iterdir() if p.suffix.lower() == ".jpg")
        handles = [modules[name].register_forward_hook(hook(name)) for name in LAYERS]
        try:
            with torch.inference_mode():
                for start in range(0, len(self.names), BATCH):
                    batch = []
                    for name in self.names[start : start + BATCH]:
                        with Image.open(PHOTOS / name) as image:
                            batch.append(transform(image.convert("RGB")))
                    model(torch.stack(batch).contiguous(memory_format=torch.channels_last))
        finally:
            for handle in handles:
                handle.remove()
        self.maxima = {name: torch.cat([v for v, _ in parts[name]]) for name in LAYERS}
        self.where = {name: torch.cat([p for _, p in parts[name]]) for name in LAYERS}


@pytest.fixture(scope="module")
def brute() -> BruteForce:
    return BruteForce()


@pytest.fixture(scope="module")
def atlas(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("squeezenet") / "atlas"
    return make_atlas(
        "torchvision:squeezenet1_0", PHOTOS, out, weights=WEIGHTS, layers=LAYERS, k=1, batch_size=BATCH, progress=False
    )


def test_manifest_records_full_decode(atlas: Path) -> None:
    preprocess = read_manifest(atlas)["preprocess"]
    assert preprocess["fast_decode"] is False
    assert (preprocess["resize"], preprocess["input_size"]) == (256, [224, 224])


@pytest.mark.parametrize("layer", LAYERS)
def test_top_images_and_activations_equal_the_torchvision_brute_force(atlas: Path, brute: BruteForce, layer: str) -> None:
    units = read_hits(atlas, layer)["units"]
    maxima, where, width = brute.maxima[layer], brute.where[layer], brute.width[layer]
    assert len(units) == maxima.shape[1]
    row_of = {name: i for i, name in enumerate(brute.names)}
    same_image = same_position = 0
    for unit, entry in enumerate(units):
        top = entry["hits"][0]
        photo = row_of[Path(top["image"]).name]
        best = int(maxima[:, unit].argmax())
        ours = torch.tensor(top["activation"], dtype=torch.float32)
        # the activation of the image convscope chose, and the strongest of all: both equal
        torch.testing.assert_close(ours, maxima[photo, unit], rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(ours, maxima[best, unit], rtol=1e-3, atol=1e-5)
        if photo == best:
            same_image += 1
            same_position += divmod(int(where[best, unit]), width) == (top["row"], top["col"])
    assert same_image >= 0.99 * len(units), f"{layer}: same top-1 image for {same_image} of {len(units)} units"
    assert same_position >= 0.99 * same_image, f"{layer}: same position for {same_position} of {same_image} units"
