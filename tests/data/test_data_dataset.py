"""ImageDataset, collate, make_loader and load_pixels over generated folders."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from convscope.data import Batch, ImageDataset, Item, collate, find_images, load_pixels, make_loader
from convscope.errors import DataError
from convscope.network.preprocess import Preprocess

PRE = Preprocess(input_size=(8, 6), resize=None, interpolation="nearest")


def _colour(i: int) -> tuple[int, int, int]:
    return (10 * i, 255 - 10 * i, 7 * i)


def _folder(tmp_path: Path, broken: dict[int, bytes] | None = None, n: int = 7) -> Path:
    """``n`` flat one-colour images ``img0.png`` ...; ``broken`` replaces some by raw bytes (as .jpg)."""
    broken = broken or {}
    for i in range(n):
        if i in broken:
            (tmp_path / f"img{i}.jpg").write_bytes(broken[i])
        else:
            Image.new("RGB", (20 + i, 10 + i), _colour(i)).save(tmp_path / f"img{i}.png")
    return tmp_path


def test_item_is_model_frame_uint8_pixels(tmp_path: Path) -> None:
    dataset = ImageDataset(find_images(_folder(tmp_path, n=3)), PRE)
    assert len(dataset) == 3
    pixels, index, ok, error = dataset[2]
    assert pixels.shape == (3, 8, 6)
    assert pixels.dtype == torch.uint8
    assert (index, ok, error) == (2, True, "")
    assert pixels[:, 4, 3].tolist() == list(_colour(2))
    assert bool((pixels == pixels[:, :1, :1]).all())


def test_item_respects_resize_and_centre_crop(tmp_path: Path) -> None:
    image = Image.new("RGB", (30, 10), (0, 0, 0))
    image.paste((255, 255, 255), (10, 0, 20, 10))  # white middle third
    image.save(tmp_path / "wide.png")
    pre = Preprocess(input_size=(10, 10), resize=10, interpolation="nearest")
    pixels = ImageDataset(find_images(tmp_path), pre)[0].pixels
    assert bool((pixels == 255).all())  # the centre crop keeps just the white third


def test_unreadable_files_give_zero_items_with_reasons(tmp_path: Path) -> None:
    good = tmp_path / "src.jpg"
    Image.effect_noise((64, 64), 60).convert("RGB").save(good, quality=95)
    data = good.read_bytes()
    good.unlink()
    folder = _folder(tmp_path, broken={1: data[: len(data) // 2], 4: b"this is text, not a jpeg"}, n=6)
    dataset = ImageDataset(find_images(folder), PRE)
    for index, needle in [(1, "truncated"), (4, "cannot identify image file")]:
        pixels, got_index, ok, error = dataset[index]
        assert (got_index, ok) == (index, False)
        assert needle in error
        assert pixels.shape == (3, 8, 6)
        assert not pixels.any()
    assert dataset[0].ok and dataset[5].ok


def test_index_out_of_range(tmp_path: Path) -> None:
    dataset = ImageDataset(find_images(_folder(tmp_path, n=2)), PRE)
    with pytest.raises(IndexError):
        dataset[2]


def test_collate_shapes_and_dtypes() -> None:
    items = [
        Item(torch.full((3, 2, 2), 5, dtype=torch.uint8), 3, True, ""),
        Item(torch.zeros(3, 2, 2, dtype=torch.uint8), 9, False, "broken"),
    ]
    batch = collate(items)
    assert isinstance(batch, Batch)
    assert batch.pixels.shape == (2, 3, 2, 2) and batch.pixels.dtype == torch.uint8
    assert batch.index.tolist() == [3, 9] and batch.index.dtype == torch.int64
    assert batch.ok.tolist() == [True, False] and batch.ok.dtype == torch.bool
    assert batch.errors == ["", "broken"]


def test_loader_with_workers_matches_main_process(tmp_path: Path) -> None:
    folder = _folder(tmp_path, broken={3: b"not an image"}, n=7)
    dataset = ImageDataset(find_images(folder), PRE)
    main = list(make_loader(dataset, batch_size=3, workers=0))
    parallel = list(make_loader(dataset, batch_size=3, workers=2))
    assert [len(b.errors) for b in main] == [3, 3, 1]  # last partial batch kept
    assert torch.cat([b.index for b in main]).tolist() == list(range(7))  # image order
    assert len(main) == len(parallel)
    for a, b in zip(main, parallel, strict=True):
        assert torch.equal(a.pixels, b.pixels)
        assert torch.equal(a.index, b.index)
        assert torch.equal(a.ok, b.ok)
        assert a.errors == b.errors
    assert torch.cat([b.ok for b in main]).tolist() == [True, True, True, False, True, True, True]


def test_dataset_pickles(tmp_path: Path) -> None:
    dataset = ImageDataset(find_images(_folder(tmp_path, n=2)), PRE)
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[1].pixels, dataset[1].pixels)


@pytest.mark.parametrize(("batch_size", "workers", "needle"), [(0, 0, "batch size"), (4, -1, "workers")])
def test_make_loader_rejects_bad_settings(tmp_path: Path, batch_size: int, workers: int, needle: str) -> None:
    dataset = ImageDataset(find_images(_folder(tmp_path, n=1)), PRE)
    with pytest.raises(DataError, match=needle) as info:
        make_loader(dataset, batch_size=batch_size, workers=workers)
    assert info.value.hint is not None


def test_load_pixels_matches_dataset_in_requested_order(tmp_path: Path) -> None:
    images = find_images(_folder(tmp_path, n=5))
    dataset = ImageDataset(images, PRE)
    pixels = load_pixels(images, [4, 0, 4], PRE)
    assert pixels.shape == (3, 3, 8, 6) and pixels.dtype == torch.uint8
    assert torch.equal(pixels[0], dataset[4].pixels)
    assert torch.equal(pixels[1], dataset[0].pixels)
    assert torch.equal(pixels[2], dataset[4].pixels)
    assert load_pixels(images, [], PRE).shape == (0, 3, 8, 6)


def test_load_pixels_names_a_file_that_changed(tmp_path: Path) -> None:
    images = find_images(_folder(tmp_path, n=3))
    (tmp_path / "img1.png").write_text("overwritten between the passes")
    with pytest.raises(DataError, match="'img1.png' was read in the first pass") as info:
        load_pixels(images, [0, 1], PRE)
    assert "cannot identify image file" in info.value.message
    assert str(tmp_path / "img1.png") in (info.value.hint or "")
    (tmp_path / "img2.png").unlink()
    with pytest.raises(DataError, match="'img2.png'"):
        load_pixels(images, [2], PRE)
