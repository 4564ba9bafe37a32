"""The scan against brute force: every activation of every image computed directly."""

import torch
from torch import nn

from convscope.scan.scan import scan
from tiny_models import tiny_alexnet


def test_scan_equals_brute_force_over_all_activations():
    model = tiny_alexnet().eval()
    g = torch.Generator().manual_seed(3)
    pixels = torch.randint(0, 256, (23, 3, 16, 16), dtype=torch.uint8, generator=g)
    normalize = lambda p: p.float() / 127.5 - 1  # noqa: E731
    with torch.no_grad():
        best = int(model.features[:1](normalize(pixels))[:, 0].amax(dim=(1, 2)).argmax())
    pixels[20] = pixels[best]  # a later copy of unit 0's best image: an exact tie at the top
    data = [
        (pixels[s : s + 5], torch.arange(s, min(s + 5, 23)), torch.ones(len(pixels[s : s + 5]), dtype=torch.bool), [""] * 5)
        for s in range(0, 23, 5)
    ]
    result = scan(model, [("features.0", 4), ("features.3", 6)], data, normalize, k=4, progress=False)

    with torch.no_grad():
        direct = {"features.0": model.features[:1](normalize(pixels)), "features.3": model.features[:4](normalize(pixels))}
    for name, acts in direct.items():
        n, units, rows, cols = acts.shape
        per_image, where = acts.reshape(n, units, -1).max(dim=2)  # (images, units)
        layer = result.layers[name]
        assert layer.cols == cols
        for unit in range(units):
            ranked = sorted(range(n), key=lambda i: (-per_image[i, unit].item(), i))[:4]
            assert layer.topk.images[unit].tolist() == ranked
            assert layer.topk.values[unit].tolist() == [per_image[i, unit].item() for i in ranked]
            assert layer.topk.positions[unit].tolist() == [where[i, unit].item() for i in ranked]
        assert torch.allclose(layer.mean, per_image.mean(dim=0))
    assert result.layers["features.0"].topk.images[0, :2].tolist() == [min(best, 20), max(best, 20)]


def test_unreadable_images_never_become_hits():
    model = nn.Sequential(nn.Conv2d(3, 1, 1, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    pixels = torch.full((3, 3, 4, 4), 10, dtype=torch.uint8)
    pixels[1] = 255  # the brightest image is the broken one: its zeros stand in for what failed to load
    ok = torch.tensor([True, False, True])
    result = scan(model, [("0", 1)], [(pixels, torch.arange(3), ok, ["", "truncated", ""])], lambda p: p.float(), k=3, progress=False)
    assert result.layers["0"].topk.images.tolist() == [[0, 2, -1]]
    assert result.failed == ((1, "truncated"),) and result.image_count == 2
