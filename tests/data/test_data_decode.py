"""open_rgb / to_rgb: every mode to RGB with hand-checked values, EXIF, strict failures."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

from convscope.data import failure_reason, open_rgb, to_rgb


def _pixel(image: Image.Image, row: int = 0, col: int = 0) -> tuple[int, int, int]:
    assert image.mode == "RGB"
    return image.getpixel((col, row))  # type: ignore[return-value]


def _near(actual: tuple[int, ...], expected: tuple[int, ...], tol: int = 1) -> bool:
    return all(abs(a - e) <= tol for a, e in zip(actual, expected, strict=True))


def test_greyscale_l_and_bilevel(tmp_path: Path) -> None:
    Image.new("L", (3, 2), 128).save(tmp_path / "grey.png")
    assert _pixel(open_rgb(tmp_path / "grey.png")) == (128, 128, 128)
    bilevel = Image.new("1", (2, 2), 0)
    bilevel.putpixel((1, 0), 1)
    bilevel.save(tmp_path / "bw.png")
    rgb = open_rgb(tmp_path / "bw.png")
    assert _pixel(rgb, 0, 0) == (0, 0, 0)
    assert _pixel(rgb, 0, 1) == (255, 255, 255)


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    values = np.array([[0, 257 * 128, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as raw:
        assert raw.mode.startswith("I")  # a real 16-bit file, not quietly 8-bit
    rgb = open_rgb(tmp_path / "deep.png")
    assert [_pixel(rgb, 0, c) for c in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_32_bit_integer_mode_uses_the_16_bit_scale() -> None:
    assert _pixel(to_rgb(Image.new("I", (1, 1), 257 * 200))) == (200, 200, 200)
    assert _pixel(to_rgb(Image.new("I", (1, 1), 10**6))) == (255, 255, 255)


@pytest.mark.parametrize(("value", "expected"), [(128.0, 128), (127.6, 128), (300.0, 255), (-5.0, 0)])
def test_float_mode_uses_the_0_255_scale(value: float, expected: int) -> None:
    assert _pixel(to_rgb(Image.new("F", (1, 1), value))) == (expected,) * 3


def _palette_image() -> Image.Image:
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 30, 40] + [0, 0, 0] * 254)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    return image


def test_palette_colours(tmp_path: Path) -> None:
    _palette_image().save(tmp_path / "pal.png")
    rgb = open_rgb(tmp_path / "pal.png")
    assert _pixel(rgb, 0, 0) == (10, 20, 30)
    assert _pixel(rgb, 0, 1) == (200, 30, 40)


@pytest.mark.parametrize("suffix", ["png", "gif"])
def test_palette_transparency_becomes_white(tmp_path: Path, suffix: str) -> None:
    _palette_image().save(tmp_path / f"pal.{suffix}", transparency=0)
    rgb = open_rgb(tmp_path / f"pal.{suffix}")
    assert _pixel(rgb, 0, 0) == (255, 255, 255)
    assert _pixel(rgb, 0, 1) == (200, 30, 40)


def test_rgba_is_composited_over_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (3, 1))
    image.putpixel((0, 0), (255, 0, 0, 255))  # opaque red stays red
    image.putpixel((1, 0), (0, 0, 0, 0))  # transparent black shows the white background
    image.putpixel((2, 0), (0, 0, 255, 128))  # half blue: 255 * (1 - 128/255) = 127 in R and G
    image.save(tmp_path / "alpha.png")
    rgb = open_rgb(tmp_path / "alpha.png")
    assert _pixel(rgb, 0, 0) == (255, 0, 0)
    assert _pixel(rgb, 0, 1) == (255, 255, 255)
    assert _near(_pixel(rgb, 0, 2), (127, 127, 255))


def test_grey_with_alpha_is_composited_over_white(tmp_path: Path) -> None:
    image = Image.new("LA", (2, 1))
    image.putpixel((0, 0), (40, 255))
    image.putpixel((1, 0), (0, 0))
    image.save(tmp_path / "la.png")
    rgb = open_rgb(tmp_path / "la.png")
    assert _pixel(rgb, 0, 0) == (40, 40, 40)
    assert _pixel(rgb, 0, 1) == (255, 255, 255)


def test_cmyk_pure_cyan(tmp_path: Path) -> None:
    image = Image.new("CMYK", (2, 1), (255, 0, 0, 0))
    image.putpixel((1, 0), (0, 0, 0, 255))  # pure black ink
    image.save(tmp_path / "cmyk.tif")
    rgb = open_rgb(tmp_path / "cmyk.tif")
    assert _pixel(rgb, 0, 0) == (0, 255, 255)
    assert _pixel(rgb, 0, 1) == (0, 0, 0)


def test_ycbcr_red() -> None:
    # R = Y + 1.402 (Cr - 128) = 76 + 178; G = Y - 0.344 (Cb - 128) - 0.714 (Cr - 128) = 0;
    # B = Y + 1.772 (Cb - 128) = 0
    assert _near(_pixel(to_rgb(Image.new("YCbCr", (1, 1), (76, 85, 255)))), (254, 0, 0))


def test_rgb_is_returned_unchanged() -> None:
    image = Image.new("RGB", (1, 1), (1, 2, 3))
    assert to_rgb(image) is image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_applied(tmp_path: Path, fmt: str) -> None:
    # stored 16 wide x 8 high: left half red, right half blue
    stored = Image.new("RGB", (16, 8), (255, 0, 0))
    stored.paste((0, 0, 255), (8, 0, 16, 8))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / f"rotated.{fmt.lower()}"
    stored.save(path, format=fmt, exif=exif, quality=95)
    upright = open_rgb(path)
    assert upright.size == (8, 16)  # now 8 wide, 16 high
    assert _near(_pixel(upright, 2, 4), (255, 0, 0), tol=8)  # the left half is now on top
    assert _near(_pixel(upright, 13, 4), (0, 0, 255), tol=8)


def _noise_jpeg_bytes(size: int = 64) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_truncated_jpeg_fails(tmp_path: Path) -> None:
    data = _noise_jpeg_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match="truncated") as info:
        open_rgb(tmp_path / "cut.jpg")
    assert "truncated" in failure_reason(info.value)


def test_text_with_image_extension_fails(tmp_path: Path) -> None:
    (tmp_path / "fake.jpg").write_text("hello, I am not a JPEG")
    with pytest.raises(UnidentifiedImageError) as info:
        open_rgb(tmp_path / "fake.jpg")
    assert failure_reason(info.value).startswith("cannot identify image file")


def _png_claiming_size(width: int, height: int) -> bytes:
    """A valid tiny PNG whose header (with a correct CRC) claims ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 10  # above twice the limit: an error, not a warning
    (tmp_path / "bomb.png").write_bytes(_png_claiming_size(side, side))
    with pytest.raises(Image.DecompressionBombError) as info:
        open_rgb(tmp_path / "bomb.png")
    assert "decompression bomb" in failure_reason(info.value)


def test_jpeg_draft_decodes_smaller_but_not_below_min_side(tmp_path: Path) -> None:
    gradient = np.linspace(0, 255, 800, dtype=np.float64)[None, :, None].repeat(600, axis=0).repeat(3, axis=2)
    Image.fromarray(gradient.astype(np.uint8)).save(tmp_path / "big.jpg", quality=95)
    assert open_rgb(tmp_path / "big.jpg").size == (800, 600)
    assert open_rgb(tmp_path / "big.jpg", min_side=140).size == (200, 150)  # 1/4: both sides >= 140
    assert open_rgb(tmp_path / "big.jpg", min_side=160).size == (400, 300)  # 1/4 would give 150 < 160
