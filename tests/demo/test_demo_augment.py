"""Augmented crops: shape, determinism, and the geometry on hand-made images."""

from __future__ import annotations

import torch

from convscope.demo.augment import Augment

STILL = Augment(size=8, side=(1.0, 1.0), aspect=1.0, rotate=0.0, brightness=0.0, contrast=0.0, saturation=0.0, gain=0.0)


def test_crops_have_the_asked_shape_and_follow_the_generator() -> None:
    images = [torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8), torch.randint(0, 256, (3, 50, 30), dtype=torch.uint8)]
    picks = torch.tensor([0, 1, 1])
    a = Augment(size=12).crops(images, picks, torch.Generator().manual_seed(3))
    b = Augment(size=12).crops(images, picks, torch.Generator().manual_seed(3))
    c = Augment(size=12).crops(images, picks, torch.Generator().manual_seed(4))
    assert a.shape == (3, 3, 12, 12) and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_whole_square_image_is_kept_or_mirrored() -> None:
    # Left half white, right half black; a full-size crop without jitter is the
    # image itself or its mirror image.
    image = torch.zeros(3, 8, 8, dtype=torch.uint8)
    image[:, :, :4] = 255
    crops = STILL.crops([image], torch.zeros(16, dtype=torch.long), torch.Generator().manual_seed(0))
    mirrored = image.flip(-1)
    kinds = [torch.equal(c, image) or (torch.equal(c, mirrored) and 2) for c in crops]
    assert set(kinds) == {True, 2}


def test_crops_stay_inside_a_wide_image() -> None:
    # A 8x24 image whose middle third is white: unrotated full-height crops are
    # square, so they fall inside; every crop holds some of the image's pixels only.
    image = torch.zeros(3, 8, 24, dtype=torch.uint8)
    image[:, :, 8:16] = 255
    crops = STILL.crops([image], torch.zeros(64, dtype=torch.long), torch.Generator().manual_seed(0))
    means = crops.float().mean(dim=(1, 2, 3)) / 255
    assert means.min() >= 0 and means.max() <= 1
    assert means.min() < 0.2 and means.max() > 0.8  # crops at both ends and in the middle


def test_brightness_jitter_changes_a_grey_image_within_its_range() -> None:
    image = torch.full((3, 10, 10), 100, dtype=torch.uint8)
    jitter = Augment(size=10, side=(1.0, 1.0), aspect=1.0, rotate=0.0, brightness=0.5, contrast=0.0, saturation=0.0, gain=0.0)
    crops = jitter.crops([image], torch.zeros(32, dtype=torch.long), torch.Generator().manual_seed(0))
    values = crops.float().mean(dim=(1, 2, 3))
    assert values.min() >= 50 - 1 and values.max() <= 150 + 1
    assert values.max() - values.min() > 40
    assert (crops == crops[:, :1, :1, :1]).all()  # still flat and grey
