"""The TorchCodec decoders (``--decoder torchcodec`` / ``nvjpeg``) against independent computations.

- The tensor frame against torchvision's own v2 ``Resize`` + ``CenterCrop`` on tensors, and
  within a level of the Pillow frame on the CPU (bilinear and bicubic).
- TorchCodec's decode against Pillow's: the same pixels for RGB, grey and CMYK JPEGs and
  for all eight EXIF orientations (against ``ImageOps.exif_transpose``); other formats
  and refused JPEGs go to Pillow, with its rules (alpha over white) and its reasons.
- The GPU route's batching (:class:`EncodedDataset` read in workers, decoded in batches in the
  main process) against the per-image route, run here on the CPU; on a CUDA machine the
  same with nvJPEG, and pass 2's reload against pass 1's pixels.
- A scan with the torchcodec decoder: each unit's top activation recomputed from pass 2's
  reloaded pixels equals the one pass 1 recorded.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision.transforms import v2

from convscope.data import EncodedDataset, ImageDataset, find_images, frame_batches, load_pixels, make_loader, open_rgb
from convscope.data import codec
from convscope.data.dataset import _decoded
from convscope.errors import DataError, GeometryError
from convscope.network.preprocess import Preprocess
from oracles import need_module

need_module("torchcodec")

CPU = torch.device("cpu")

#: (width, height): landscape, portrait, odd, exactly the resize, smaller than the crop, 1 pixel wide.
SIZES = [(640, 480), (375, 500), (451, 300), (341, 256), (256, 256), (100, 60), (1, 40), (1500, 999)]

PREPROCESSES = {
    "imagenet": Preprocess(decoder="torchcodec"),
    "resize<crop": Preprocess(input_size=(224, 224), resize=200, decoder="torchcodec"),
    "non-square": Preprocess(input_size=(200, 150), resize=170, decoder="torchcodec"),
    "straight": Preprocess(input_size=(224, 224), resize=None, decoder="torchcodec"),
    "nearest": Preprocess(input_size=(32, 32), resize=36, interpolation="nearest", decoder="torchcodec"),
    "bicubic": Preprocess(input_size=(64, 48), resize=60, interpolation="bicubic", decoder="torchcodec"),
}

#: torchvision's tensor modes; Pillow's nearest neighbour is torchvision's nearest-exact.
_MODES = {"nearest": v2.InterpolationMode.NEAREST_EXACT, "bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth random RGB image (JPEG-friendly: compression leaves it recognisable)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def _jpeg(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


def _chw(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1).contiguous()


@pytest.mark.parametrize("name", PREPROCESSES)
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_tensor_frame_is_torchvisions_tensor_resize_and_centre_crop(name: str, size: tuple[int, int]) -> None:
    pre = PREPROCESSES[name]
    image = _chw(_photo(*size))
    resize = pre.resize if pre.resize is not None else list(pre.input_size)
    expected = v2.Compose([v2.Resize(resize, interpolation=_MODES[pre.interpolation], antialias=True), v2.CenterCrop(pre.input_size)])(image)
    got = pre.tensor_to_model_frame(image)
    assert got.dtype == torch.uint8 and got.shape == (3, *pre.input_size)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("name", ["imagenet", "non-square", "bicubic"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_tensor_frame_is_within_a_level_of_pillows_on_the_cpu(name: str, size: tuple[int, int]) -> None:
    pre = PREPROCESSES[name]
    image = _photo(*size, seed=3)
    pillow = np.asarray(Preprocess(pre.input_size, pre.resize, interpolation=pre.interpolation).to_model_frame(image), dtype=int)
    tensor = pre.tensor_to_model_frame(_chw(image)).permute(1, 2, 0).numpy().astype(int)
    assert np.abs(pillow - tensor).max() <= 1
    assert np.abs(pillow - tensor).mean() < 0.02


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_torchcodec_decodes_jpegs_to_pillows_pixels(mode: str) -> None:
    source = _jpeg(_photo(301, 203, seed=1).convert(mode))
    pillow = np.asarray(Image.open(io.BytesIO(source)).convert("RGB"))
    (decoded,) = codec.decode([source], CPU)
    assert np.array_equal(decoded.permute(1, 2, 0).numpy(), pillow)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_does(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    source = _jpeg(_photo(120, 80, seed=orientation), exif=exif)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(source))).convert("RGB"))
    (decoded,) = codec.decode([source], CPU)
    assert np.array_equal(decoded.permute(1, 2, 0).numpy(), upright)


def test_other_formats_and_refused_jpegs_go_to_pillow_with_its_rules_and_reasons() -> None:
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # transparent red: white over white
    png = io.BytesIO()
    rgba.save(png, "PNG")
    good = _jpeg(_photo(64, 48))
    truncated = good[: len(good) // 2]
    decoded = codec.decode([good, png.getvalue(), truncated, b"not an image", good], CPU)
    assert torch.equal(decoded[0], decoded[4])  # the good JPEGs survive a batch that failed
    assert np.array_equal(decoded[1].permute(1, 2, 0).numpy(), np.asarray(open_rgb(io.BytesIO(png.getvalue()))))
    assert (decoded[1] == 255).all()
    assert isinstance(decoded[2], OSError) and "truncated" in str(decoded[2])
    assert isinstance(decoded[3], Exception) and not isinstance(decoded[3], torch.Tensor)


def test_a_decompression_bomb_is_refused_as_pillow_refuses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    source = _jpeg(_photo(64, 48))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 48 // 3)  # the photo is over twice the limit
    (decoded,) = codec.decode([source], CPU)
    assert isinstance(decoded, Image.DecompressionBombError)
    monkeypatch.undo()
    assert isinstance(codec.decode([source], CPU)[0], torch.Tensor)


def test_the_gpu_routes_workers_refuse_a_bomb_with_pillows_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "big.jpg").write_bytes(_jpeg(_photo(64, 48)))
    (folder / "small.jpg").write_bytes(_jpeg(_photo(8, 6)))
    images = find_images(folder)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 48 // 3)
    pre = Preprocess(decoder="torchcodec")
    per_image = list(make_loader(ImageDataset(images, pre), batch_size=2, workers=0))[0]
    batched = list(_decoded(make_loader(EncodedDataset(images), batch_size=2, workers=0, collate_fn=list), pre, CPU))[0]
    assert per_image.ok.tolist() == batched.ok.tolist() == [False, True]
    assert per_image.errors == batched.errors and "decompression bomb" in batched.errors[0]


def _folder(tmp_path: Path) -> Path:
    """JPEGs of many sizes, a PNG, a grey JPEG, and two files that cannot be read."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i, size in enumerate(SIZES):
        (folder / f"{i:02d}.jpg").write_bytes(_jpeg(_photo(*size, seed=i)))
    _photo(90, 70, seed=20).save(folder / "20.png")
    (folder / "21.jpg").write_bytes(_jpeg(_photo(200, 150, seed=21).convert("L")))
    (folder / "22.jpg").write_bytes(_jpeg(_photo(200, 150))[:300])
    (folder / "23.jpg").write_bytes(b"\xff\xd8\xff but nothing else")
    return folder


def test_batches_decoded_in_the_main_process_equal_the_workers_per_image_frames(tmp_path: Path) -> None:
    images = find_images(_folder(tmp_path))
    pre = Preprocess(decoder="torchcodec")
    per_image = list(make_loader(ImageDataset(images, pre), batch_size=5, workers=2))
    batched = list(_decoded(make_loader(EncodedDataset(images), batch_size=5, workers=2, collate_fn=list), pre, CPU))
    assert len(per_image) == len(batched) == 3
    for one, other in zip(per_image, batched):
        assert torch.equal(one.index, other.index) and torch.equal(one.ok, other.ok)
        assert torch.equal(one.pixels, other.pixels)
        assert one.errors == other.errors
    errors = [e for batch in batched for e in batch.errors]
    assert sum(bool(e) for e in errors) == 2 and "truncated" in errors[images.paths.index("22.jpg")].lower()
    reloaded = load_pixels(images, [3, 0, 8], pre)  # pass 2, the same route
    assert torch.equal(reloaded, torch.cat([b.pixels for b in per_image])[[3, 0, 8]])


def test_a_subset_keeps_its_order(tmp_path: Path) -> None:
    images = find_images(_folder(tmp_path))
    pre = Preprocess(decoder="torchcodec")
    whole = torch.cat([b.pixels for b in frame_batches(images, pre, 4, 0, CPU)])
    some = list(frame_batches(images, pre, 4, 0, CPU, indices=[7, 2, 5]))
    assert torch.equal(torch.cat([b.index for b in some]), torch.tensor([7, 2, 5]))
    assert torch.equal(torch.cat([b.pixels for b in some]), whole[[7, 2, 5]])


def test_the_decoder_is_recorded_and_checked() -> None:
    assert Preprocess().decoder == "pillow"
    assert Preprocess(decoder="nvjpeg").to_dict()["decoder"] == "nvjpeg"
    old = Preprocess().to_dict()
    del old["decoder"]  # a manifest written before decoders existed
    assert Preprocess.from_dict(old) == Preprocess()
    with pytest.raises(GeometryError, match="unknown decoder"):
        Preprocess(decoder="turbo")
    with pytest.raises(GeometryError, match="draft"):
        Preprocess(decoder="torchcodec", fast_decode=True)
    with pytest.raises(GeometryError, match="no lanczos filter"):
        Preprocess(decoder="nvjpeg", interpolation="lanczos")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_nvjpeg_without_a_gpu_says_what_to_use(tmp_path: Path) -> None:
    images = find_images(_folder(tmp_path))
    with pytest.raises(DataError, match="CUDA GPU") as error:
        frame_batches(images, Preprocess(decoder="nvjpeg"), 4, 0, CPU)
    assert "--decoder torchcodec" in error.value.hint


def test_without_torchcodec_the_error_says_how_to_install_it_before_any_worker_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = find_images(_folder(tmp_path))
    monkeypatch.setitem(sys.modules, "torchcodec", None)
    with pytest.raises(DataError, match="TorchCodec") as error:
        codec.decode([_jpeg(_photo(8, 8))], CPU)
    assert "convscope[decode]" in error.value.hint
    with pytest.raises(DataError, match="TorchCodec"):  # raised here, not in a worker's first batch
        frame_batches(images, Preprocess(decoder="torchcodec"), 4, 2, CPU)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_nvjpeg_pass_1_and_pass_2_give_the_same_pixels_close_to_the_cpus(tmp_path: Path) -> None:
    images = find_images(_folder(tmp_path))
    pre = Preprocess(decoder="nvjpeg")
    batches = list(frame_batches(images, pre, 5, 2, torch.device("cuda")))
    assert all(b.pixels.is_cuda for b in batches)
    pixels = torch.cat([b.pixels.cpu() for b in batches])
    ok = torch.cat([b.ok for b in batches])
    good = ok.nonzero().flatten().tolist()
    assert torch.equal(load_pixels(images, good[::-1], pre), pixels[good[::-1]])
    cpu = torch.cat([b.pixels for b in frame_batches(images, Preprocess(decoder="torchcodec"), 5, 0, CPU)])
    assert (pixels[good].int() - cpu[good].int()).abs().float().mean() < 1.0
