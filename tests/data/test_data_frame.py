"""The model-input frame against torchvision's own transforms, pixel for pixel.

Two independent computations: convscope's :meth:`Preprocess.to_model_frame` (and the
dataset that decodes files for it) versus torchvision's ``Resize`` + ``CenterCrop``
(v1 ``transforms`` and v2) and ``ToTensor`` + ``Normalize`` on the same PIL image,
over images of many sizes: odd and even, portrait and landscape, smaller than the
crop and than the resize, exactly the crop, 1xN and Nx1. Plus hand-computed frames
that the old rounding (crop start floored, long side rounded) got wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import v2

from convscope.data import ImageDataset, find_images, load_pixels
from convscope.network.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess, crop_start, resized_size

#: (width, height) of generated images: odd/even, portrait/landscape, around 224 and 256, tiny, extreme.
SIZES = [
    (640, 480), (480, 640), (500, 375), (375, 500), (451, 300), (300, 451), (343, 256), (256, 343),
    (341, 256), (256, 256), (257, 257), (255, 257), (224, 224), (225, 224), (223, 223), (224, 300),
    (100, 60), (60, 100), (1, 1), (3, 2), (1, 40), (40, 1), (999, 1001), (1500, 2000),
]

#: Preprocessing variants: ImageNet's default, resize equal to the crop, resize below the
#: crop (padding), a non-square crop, straight resize, other interpolations.
PREPROCESSES = {
    "imagenet": Preprocess(),
    "resize=crop": Preprocess(input_size=(224, 224), resize=224),
    "resize<crop": Preprocess(input_size=(224, 224), resize=200),
    "non-square": Preprocess(input_size=(200, 150), resize=170),
    "straight": Preprocess(input_size=(224, 224), resize=None),
    "nearest": Preprocess(input_size=(32, 32), resize=36, interpolation="nearest"),
    "bicubic": Preprocess(input_size=(64, 48), resize=60, interpolation="bicubic"),
    "lanczos": Preprocess(input_size=(31, 33), resize=35, interpolation="lanczos"),
}

_MODES = {
    "nearest": T.InterpolationMode.NEAREST,
    "bilinear": T.InterpolationMode.BILINEAR,
    "bicubic": T.InterpolationMode.BICUBIC,
    "lanczos": T.InterpolationMode.LANCZOS,
}


def _torchvision(pre: Preprocess, version=T) -> T.Compose:
    """torchvision's eval transform for ``pre``, up to the crop (PIL in, PIL out)."""
    size = pre.resize if pre.resize is not None else list(pre.input_size)
    return version.Compose([version.Resize(size, interpolation=_MODES[pre.interpolation]), version.CenterCrop(pre.input_size)])


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB image of random pixels: any shift or rescale changes the frame."""
    rng = np.random.default_rng(seed + 7919 * width + height)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(PREPROCESSES))
@pytest.mark.parametrize("width,height", SIZES)
def test_frame_equals_torchvision_resize_and_center_crop(name: str, width: int, height: int) -> None:
    pre = PREPROCESSES[name]
    image = _noise(width, height)
    ours = _pixels(pre.to_model_frame(image))
    assert ours.shape == (*pre.input_size, 3)
    np.testing.assert_array_equal(ours, _pixels(_torchvision(pre)(image)))
    np.testing.assert_array_equal(ours, _pixels(_torchvision(pre, v2)(image)))


@pytest.mark.parametrize("width,height", [(500, 375), (343, 256), (451, 300), (200, 210), (1, 40)])
def test_normalize_equals_to_tensor_and_normalize(width: int, height: int) -> None:
    pre = Preprocess(input_size=(224, 224), resize=256, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    image = _noise(width, height)
    frame = torch.from_numpy(_pixels(pre.to_model_frame(image)).transpose(2, 0, 1).copy())
    ours = pre.normalize(frame[None])[0]
    theirs = T.Compose([_torchvision(pre), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(image)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_resized_size_truncates_the_long_side() -> None:
    assert resized_size(375, 500, 256) == (256, 341)  # 341.33
    assert resized_size(300, 451, 256) == (256, 384)  # 384.85: rounding would give 385
    assert resized_size(451, 300, 256) == (384, 256)
    assert resized_size(256, 256, 224) == (224, 224)
    assert resized_size(1, 40, 256) == (256, 10240)


def test_crop_start_rounds_halves_to_even_and_pads_short_sides() -> None:
    assert crop_start(341, 224) == 58  # 58.5 -> 58
    assert crop_start(343, 224) == 60  # 59.5 -> 60: flooring would give 59
    assert crop_start(224, 224) == 0
    assert crop_start(200, 224) == -12  # 12 black pixels before, 12 after
    assert crop_start(201, 224) == -11  # 11 before, 12 after


def _column_ramp(width: int, height: int) -> Image.Image:
    """Red is the column index mod 256, green the column index // 256, blue the row."""
    cols = np.arange(width)
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[:, :, 0] = cols % 256
    rgb[:, :, 1] = cols // 256
    rgb[:, :, 2] = np.arange(height)[:, None] % 256
    return Image.fromarray(rgb)


def test_centre_crop_of_an_odd_margin_starts_where_torchvision_starts() -> None:
    # 343x256: the short side is already 256, so no resize; the margin of 119 columns
    # splits as round(59.5) = 60 on the left (the old floor gave 59)
    frame = _pixels(Preprocess().to_model_frame(_column_ramp(343, 256)))
    assert frame[0, 0].tolist() == [60, 0, 16]  # column 60, row round(32 / 2) = 16
    assert frame[0, -1].tolist() == [283 % 256, 1, 16]


def test_a_side_shorter_than_the_crop_is_padded_with_black() -> None:
    # 201x200 with resize 200 is not resized; the 224 crop pads 11 columns left, 12 right,
    # 12 rows above and 12 below (the old code stretched the image to 224 instead)
    pre = Preprocess(input_size=(224, 224), resize=200, interpolation="nearest")
    frame = _pixels(pre.to_model_frame(_column_ramp(201, 200)))
    assert frame.shape == (224, 224, 3)
    assert not frame[:12].any() and not frame[-12:].any()
    assert not frame[:, :11].any() and not frame[:, -12:].any()
    assert frame[12, 11].tolist() == [0, 0, 0] and frame[12, 12].tolist() == [1, 0, 0]
    assert frame[12 + 199, 11 + 200].tolist() == [200, 0, 199]


def _save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


@pytest.mark.parametrize("width,height", [(500, 375), (343, 256), (451, 300), (257, 199), (30, 700), (1024, 769)])
def test_jpeg_files_equal_torchvision_on_image_open_convert_rgb(tmp_path: Path, width: int, height: int) -> None:
    path = _save(_noise(width, height).resize((width // 4 + 1, height // 4 + 1)).resize((width, height)), tmp_path / "a.jpg", quality=90)
    pre = Preprocess()
    with Image.open(path) as image:
        theirs = _pixels(_torchvision(pre)(image.convert("RGB"))).transpose(2, 0, 1)
    dataset = ImageDataset(find_images(tmp_path), pre)
    item = dataset[0]
    assert item.ok
    np.testing.assert_array_equal(item.pixels.numpy(), theirs)
    np.testing.assert_array_equal(load_pixels(dataset.images, [0], pre)[0].numpy(), theirs)


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "YCbCr"])
def test_other_modes_equal_torchvision_on_convert_rgb(tmp_path: Path, mode: str) -> None:
    suffix = {"CMYK": "tif", "YCbCr": "jpg"}.get(mode, "png")
    path = _save(_noise(341, 259).convert(mode), tmp_path / f"m.{suffix}")
    pre = Preprocess()
    with Image.open(path) as image:
        theirs = _pixels(_torchvision(pre)(image.convert("RGB"))).transpose(2, 0, 1)
    np.testing.assert_array_equal(ImageDataset(find_images(tmp_path), pre)[0].pixels.numpy(), theirs)


def test_alpha_is_composited_over_white_then_framed_like_torchvision(tmp_path: Path) -> None:
    rgba = np.asarray(_noise(343, 301)).copy()
    alpha = np.random.default_rng(1).integers(0, 256, (301, 343), dtype=np.uint8)
    _save(Image.fromarray(np.dstack([rgba, alpha]), "RGBA"), tmp_path / "a.png")
    # independent compositing over white, in integers: Pillow's alpha_composite rounds
    # c * a / 255 + 255 * (255 - a) / 255 to the nearest
    a = alpha.astype(np.int64)[:, :, None]
    over_white = (rgba.astype(np.int64) * a + 255 * (255 - a) + 127) // 255
    theirs = _pixels(_torchvision(Preprocess())(Image.fromarray(over_white.astype(np.uint8))))
    ours = ImageDataset(find_images(tmp_path), Preprocess())[0].pixels.numpy().transpose(1, 2, 0)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1  # composite rounding only


def test_full_decode_is_the_default_and_fast_decode_is_recorded() -> None:
    pre = Preprocess()
    assert pre.fast_decode is False
    assert pre.to_dict()["fast_decode"] is False
    fast = Preprocess(fast_decode=True)
    assert fast.to_dict()["fast_decode"] is True
    assert Preprocess.from_dict(fast.to_dict()) == fast
    old = pre.to_dict()
    del old["fast_decode"]  # a manifest written before the flag existed
    assert Preprocess.from_dict(old) == pre


def test_fast_decode_changes_large_jpegs_only_a_little(tmp_path: Path) -> None:
    smooth = _noise(40, 30).resize((1600, 1200), Image.Resampling.BICUBIC)
    _save(smooth, tmp_path / "big.jpg", quality=92)
    images = find_images(tmp_path)
    exact = ImageDataset(images, Preprocess())[0].pixels.numpy().astype(int)
    fast = ImageDataset(images, Preprocess(fast_decode=True))[0].pixels.numpy().astype(int)
    with Image.open(tmp_path / "big.jpg") as image:
        theirs = _pixels(_torchvision(Preprocess())(image.convert("RGB"))).transpose(2, 0, 1)
    np.testing.assert_array_equal(exact, theirs)
    difference = np.abs(exact - fast)
    assert difference.max() > 0  # a 1/4-scale decode: not the same pixels
    assert difference.mean() < 4


def test_fast_decode_leaves_small_jpegs_exact(tmp_path: Path) -> None:
    _save(_noise(343, 256), tmp_path / "small.jpg", quality=90)  # short side 256: no reduced scale fits
    images = find_images(tmp_path)
    exact = ImageDataset(images, Preprocess())[0].pixels
    assert torch.equal(ImageDataset(images, Preprocess(fast_decode=True))[0].pixels, exact)


@pytest.mark.parametrize("bad", [{"resize": 0}, {"fast_decode": "yes"}])
def test_bad_settings_raise(bad: dict) -> None:
    from convscope.errors import GeometryError

    with pytest.raises(GeometryError):
        Preprocess(**bad)


@pytest.mark.parametrize("flags,expected", [([], False), (["--fast-decode"], True)])
def test_cli_fast_decode_flag_reaches_make_atlas(tmp_path: Path, monkeypatch, flags: list[str], expected: bool) -> None:
    from dataclasses import dataclass

    import convscope.pipeline
    from convscope import cli

    @dataclass(frozen=True)
    class Loaded:
        preprocess: Preprocess

    seen = {}

    def fake_make_atlas(network, images, out, **options) -> Path:
        seen["preprocess"] = network.preprocess
        return Path(out)

    monkeypatch.setattr(cli, "_network", lambda args: Loaded(Preprocess()))
    monkeypatch.setattr(convscope.pipeline, "make_atlas", fake_make_atlas)
    assert cli.main(["atlas", "m.py:f", str(tmp_path), "--out", str(tmp_path / "atlas"), *flags]) == 0
    assert seen["preprocess"] == Preprocess(fast_decode=expected)
