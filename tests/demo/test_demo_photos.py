"""The demo photos load offline, as RGB, and export as readable JPEGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from convscope.demo.photos import EXPORT_LONG_SIDE, PHOTOS, export_photos, load_photo


def test_greyscale_photo_becomes_rgb_with_equal_channels() -> None:
    image = load_photo("camera")
    pixels = np.asarray(image)
    assert image.mode == "RGB" and pixels.shape == (512, 512, 3)
    assert (pixels[..., 0] == pixels[..., 2]).all()


def test_stereo_pair_gives_its_left_view() -> None:
    assert load_photo("stereo_motorcycle").mode == "RGB"


def test_export_writes_every_photo_as_a_readable_rgb_jpeg(tmp_path: Path) -> None:
    paths = export_photos(tmp_path / "photos")
    assert [p.name for p in paths] == [f"{name}.jpg" for name in PHOTOS]
    assert sorted(p.name for p in (tmp_path / "photos").iterdir()) == sorted(p.name for p in paths)
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert max(image.size) <= EXPORT_LONG_SIDE and min(image.size) >= 170


def test_export_replaces_existing_files(tmp_path: Path) -> None:
    (tmp_path / "coffee.jpg").write_bytes(b"not a jpeg")
    export_photos(tmp_path)
    with Image.open(tmp_path / "coffee.jpg") as image:
        assert image.size == (600, 400)
