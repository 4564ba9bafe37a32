"""An image folder as a PyTorch dataset of model-frame pixels, and the loader over it.

Every item is in the *model-input frame*: decoded to RGB at full resolution
(rules in :mod:`convscope.data.decode`; a JPEG at a reduced scale only with
``Preprocess.fast_decode``), then resized and centre-cropped by
:meth:`Preprocess.to_model_frame` exactly as torchvision's ``Resize`` +
``CenterCrop``, as ``uint8`` ``(3, H, W)``; or, with ``Preprocess.decoder``
``"torchcodec"``, decoded by TorchCodec and framed as tensors (:mod:`convscope.data.codec`).
With ``"nvjpeg"`` the loader's workers only read the files, and
:func:`frame_batches` decodes each batch on the GPU. A file that cannot
be read does not stop the scan: its item is all zeros with ``ok=False`` and a
reason. Pass 2 (:func:`load_pixels`) reloads only the winning images, by the same
route, and there a failure is an error: the file changed during the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from convscope.data import codec
from convscope.data.decode import channels_first, failure_reason, open_rgb
from convscope.data.folder import ImageList
from convscope.errors import DataError
from convscope.network.preprocess import Preprocess


class Item(NamedTuple):
    """One image: ``pixels`` ``uint8`` ``(3, H, W)``, its ``index`` in image order,
    ``ok`` (``False``: pixels are zeros), and ``error`` (``""`` when ok)."""

    pixels: torch.Tensor
    index: int
    ok: bool
    error: str


class Encoded(NamedTuple):
    """One image file as it is read for a decoder that decodes whole batches: ``source`` its
    bytes (``b""`` when not ok), its ``index`` in image order, ``ok``, and ``error`` (``""`` when ok)."""

    source: bytes
    index: int
    ok: bool
    error: str


class Batch(NamedTuple):
    """A batch of items: ``pixels`` ``uint8`` ``(N, 3, H, W)``, ``index`` ``int64`` ``(N,)``,
    ``ok`` ``bool`` ``(N,)``, ``errors`` (``N`` strings, ``""`` where ok)."""

    pixels: torch.Tensor
    index: torch.Tensor
    ok: torch.Tensor
    errors: list[str]


class _PerImage(Dataset):
    """One item per image of an :class:`ImageList`, in image order (the item is the subclass's ``_item``)."""

    def __init__(self, images: ImageList) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Item | Encoded:
        if not 0 <= index < len(self.images):
            raise IndexError(f"image index {index} out of range for {len(self.images)} images")
        return self._item(index)

    def _item(self, index: int) -> Item | Encoded:
        raise NotImplementedError


class ImageDataset(_PerImage):
    """The images of an :class:`ImageList` in the model-input frame of ``preprocess``.

    Holds only paths and settings (no open files), so it pickles to
    :class:`~torch.utils.data.DataLoader` workers.

    Example:
        >>> ds = ImageDataset(find_images("photos"), Preprocess((224, 224), 256))  # doctest: +SKIP
        >>> pixels, index, ok, error = ds[0]  # doctest: +SKIP
        >>> pixels.shape, pixels.dtype  # doctest: +SKIP
        (torch.Size([3, 224, 224]), torch.uint8)
    """

    def __init__(self, images: ImageList, preprocess: Preprocess) -> None:
        super().__init__(images)
        self.preprocess = preprocess

    def _item(self, index: int) -> Item:
        try:
            pixels = channels_first(_decode(self.images, index, self.preprocess))
        except Exception as error:  # any decoding failure is reported per image, never raised
            h, w = self.preprocess.input_size
            return Item(torch.zeros(3, h, w, dtype=torch.uint8), index, False, failure_reason(error))
        return Item(pixels, index, True, "")


class EncodedDataset(_PerImage):
    """The files of an :class:`ImageList` as :class:`Encoded` items, for a decoder that decodes
    whole batches (``"nvjpeg"``, see :func:`frame_batches`); a file that cannot be read, or
    whose header Pillow refuses (:func:`~convscope.data.codec.refusal`), is not ok."""

    def _item(self, index: int) -> Encoded:
        try:
            source = self.images.path(index).read_bytes()
        except OSError as error:
            return Encoded(b"", index, False, failure_reason(error))
        refused = codec.refusal(source)  # here in the workers, not in the main process that decodes
        if refused is not None:
            return Encoded(b"", index, False, failure_reason(refused))
        return Encoded(source, index, True, "")


def collate(items: Sequence[Item]) -> Batch:
    """Stack items into a :class:`Batch` (the ``collate_fn`` of :func:`make_loader`).

    Example:
        >>> item = Item(torch.zeros(3, 2, 2, dtype=torch.uint8), 4, True, "")
        >>> collate([item, item]).index
        tensor([4, 4])
    """
    return Batch(
        # stacked in numpy: torch.stack of uint8 images measured ~100x slower on our CPU runner
        pixels=torch.from_numpy(np.stack([item.pixels.numpy() for item in items])),
        index=torch.tensor([item.index for item in items], dtype=torch.int64),
        ok=torch.tensor([item.ok for item in items], dtype=torch.bool),
        errors=[item.error for item in items],
    )


#: The most loader workers :func:`default_workers` gives one process.
MOST_WORKERS = 8


def default_workers(device: torch.device, processes: int = 1) -> int:
    """Loader workers for a scan on ``device`` when the user names none.

    On a GPU, decoding in the main process would leave the device waiting, so each of the
    ``processes`` on this machine (torchrun's ``LOCAL_WORLD_SIZE``) gets its share of the
    CPUs this process may use, one kept for itself, at most :data:`MOST_WORKERS`. On a CPU
    the workers would take cores from the convolutions, so none.

    Example:
        >>> default_workers(torch.device("cpu"))
        0
    """
    if device.type == "cpu":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MOST_WORKERS, cpus // max(1, processes) - 1))


def make_loader(
    dataset: Dataset, batch_size: int, workers: int, pin_memory: bool = False, collate_fn=collate
) -> DataLoader:
    """A loader that yields :class:`Batch` es in image order, whatever ``workers`` is.

    No shuffling, the last partial batch kept, workers started afresh for each
    pass (not persistent), two batches prefetched per worker.

    Raises:
        DataError: ``batch_size`` below 1 or ``workers`` below 0.

    Example:
        >>> for pixels, index, ok, errors in make_loader(ds, 32, workers=2):  # doctest: +SKIP
        ...     pass
    """
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}", hint="pass --batch-size 32")
    if workers < 0:
        raise DataError(
            f"workers must be 0 or more, got {workers}", hint="pass --workers 0 to load in the main process"
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        drop_last=False,
        persistent_workers=False,
        prefetch_factor=2 if workers > 0 else None,
    )


def frame_batches(
    images: ImageList, preprocess: Preprocess, batch_size: int, workers: int, device: torch.device, indices: Sequence[int] | None = None
) -> Iterable[Batch]:
    """Pass 1's batches of ``images`` (or of those at ``indices``, in their order) in the model
    frame, by ``preprocess``'s decoder: decoded in the loader's ``workers`` (pinned for a CUDA
    ``device``), or, with ``"nvjpeg"``, read there and decoded on the GPU in the main
    process (the pixels come already on the GPU).

    Raises:
        DataError: as :func:`make_loader`; ``"nvjpeg"`` without CUDA or TorchCodec.
    """
    if preprocess.decoder != "pillow":
        codec.prepare()
    if preprocess.decoder != "nvjpeg":
        dataset: Dataset = ImageDataset(images, preprocess)
        dataset = dataset if indices is None else Subset(dataset, indices)
        return make_loader(dataset, batch_size, workers, pin_memory=device.type == "cuda")
    where = codec.decode_device(preprocess)
    encoded: Dataset = EncodedDataset(images)
    encoded = encoded if indices is None else Subset(encoded, indices)
    return _decoded(make_loader(encoded, batch_size, workers, collate_fn=list), preprocess, where)


def _decoded(loader: Iterable[list[Encoded]], preprocess: Preprocess, device: torch.device) -> Iterator[Batch]:
    """Each list of :class:`EncodedDataset` items decoded as one :class:`Batch` on ``device``."""
    for items in loader:
        frames = iter(codec.model_frames([item.source for item in items if item.ok], preprocess, device, checked=True))
        pixels = torch.zeros(len(items), 3, *preprocess.input_size, dtype=torch.uint8, device=device)
        errors = [item.error for item in items]
        for row, item in enumerate(items):
            frame = next(frames) if item.ok else None
            if isinstance(frame, torch.Tensor):
                pixels[row] = frame
            elif frame is not None:
                errors[row] = failure_reason(frame)
        ok = torch.tensor([not error for error in errors], dtype=torch.bool)
        yield Batch(pixels, torch.tensor([item.index for item in items], dtype=torch.int64), ok, errors)


def load_pixels(images: ImageList, indices: Sequence[int], preprocess: Preprocess) -> torch.Tensor:
    """Reload chosen images (pass 2) as ``uint8`` ``(n, 3, H, W)``, in the order of ``indices``.

    Raises:
        DataError: as :func:`load_frames`.

    Example:
        >>> load_pixels(images, [12, 3], Preprocess((224, 224), 256)).shape  # doctest: +SKIP
        torch.Size([2, 3, 224, 224])
    """
    frames = load_frames(images, indices, preprocess)
    return channels_first(np.stack(frames) if frames else np.zeros((0, *preprocess.input_size, 3), dtype=np.uint8))


def load_frames(images: ImageList, indices: Sequence[int], preprocess: Preprocess, threads: int = 2) -> list[np.ndarray]:
    """Reload chosen images (pass 2) as ``uint8`` ``(H, W, 3)`` arrays, in the order of ``indices``,
    decoding on ``threads`` threads (Pillow releases the GIL while it decodes and resizes),
    or, with the ``"nvjpeg"`` decoder, on the GPU in batches of :data:`RELOAD_BATCH`.

    Raises:
        DataError: an image cannot be read now; it was read in pass 1, so the
            file changed (or vanished) during the run.
    """
    if preprocess.decoder == "nvjpeg":
        return [frame for start in range(0, len(indices), RELOAD_BATCH) for frame in _gpu_frames(images, indices[start : start + RELOAD_BATCH], preprocess)]
    if threads > 1 and len(indices) > 1:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda index: _frame(images, index, preprocess), indices))
    return [_frame(images, index, preprocess) for index in indices]


#: Images pass 2 decodes together on the GPU (``"nvjpeg"``).
RELOAD_BATCH = 64


def _gpu_frames(images: ImageList, indices: Sequence[int], preprocess: Preprocess) -> list[np.ndarray]:
    """Images ``indices`` decoded together on the GPU, framed, back on the CPU: ``uint8 (H, W, 3)`` each."""
    sources = []
    for index in indices:
        try:
            sources.append(images.path(index).read_bytes())
        except OSError as error:
            raise _changed(images, index, error) from error
    frames = codec.model_frames(sources, preprocess, codec.decode_device(preprocess))
    for index, frame in zip(indices, frames):
        if isinstance(frame, Exception):
            raise _changed(images, index, frame) from frame
    return [frame.permute(1, 2, 0).cpu().numpy() for frame in frames]  # type: ignore[union-attr]


def _decode(images: ImageList, index: int, preprocess: Preprocess) -> np.ndarray:
    """Image ``index`` decoded, resized and cropped on the CPU: ``uint8`` ``(H, W, 3)``."""
    if preprocess.decoder != "pillow":  # one file alone; frame_batches decodes nvjpeg's in batches
        frame = codec.model_frames([images.path(index).read_bytes()], preprocess, codec.decode_device(preprocess))[0]
        if isinstance(frame, Exception):
            raise frame
        return frame.permute(1, 2, 0).cpu().numpy()
    min_side = _draft_side(preprocess) if preprocess.fast_decode else None
    return np.asarray(preprocess.to_model_frame(open_rgb(images.path(index), min_side=min_side)), dtype=np.uint8)


def _frame(images: ImageList, index: int, preprocess: Preprocess) -> np.ndarray:
    """:func:`_decode`, a failure turned into a :class:`DataError` that names the file."""
    try:
        return _decode(images, index, preprocess)
    except Exception as error:  # turned into a user error that names the file
        raise _changed(images, index, error) from error


def _changed(images: ImageList, index: int, error: Exception) -> DataError:
    """The error of pass 2 when image ``index``, read in pass 1, cannot be read now."""
    return DataError(
        f"image {images.paths[index]!r} was read in the first pass but cannot be read now: {failure_reason(error)}",
        hint=f"the file {images.path(index)} changed during the run; leave the folder alone and scan again",
    )


def _draft_side(preprocess: Preprocess) -> int:
    """The smallest side a JPEG may be decoded at with ``fast_decode``, for :func:`open_rgb`'s ``min_side``.

    ``to_model_frame`` scales the short side to ``resize`` (or each side to the
    input size), so a JPEG decoded with both sides at least the largest of
    these is still only ever shrunk afterwards (though not to the same pixels).
    """
    h, w = preprocess.input_size
    return max(h, w) if preprocess.resize is None else max(h, w, preprocess.resize)
