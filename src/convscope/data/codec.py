"""Decoding image files with TorchCodec: on the CPU, or JPEGs in batches on a CUDA GPU (nvJPEG).

The ``"torchcodec"`` and ``"nvjpeg"`` decoders of :class:`~convscope.network.preprocess.Preprocess`
come here. A JPEG (the file starts with ``FF D8 FF``) is decoded by TorchCodec's
``decode_jpeg`` to RGB, upright by its EXIF orientation; on a CUDA device a whole batch
goes to nvJPEG in one call. Any other file, and a JPEG TorchCodec refuses or whose header
Pillow refuses (a decompression bomb: TorchCodec checks no size), is decoded by Pillow with
the rules of :mod:`convscope.data.decode` (the same pixels TorchCodec gives on
the CPU: both are libjpeg-turbo). The frame is then made where the pixels are, with
:meth:`~convscope.network.preprocess.Preprocess.tensor_to_model_frame`.

Pass 1 and pass 2 decode each file by this same route, so a winning image's pixels in
pass 2 are the ones it was scanned with. On the GPU this holds although pass 2 batches the
images otherwise: TorchCodec (0.17) has nvJPEG choose its backend per image, from the image's
own header (the hardware engine for baseline JPEGs where the GPU has one, the software path
for progressive ones and elsewhere), not per batch.

TorchCodec is an extra: ``pip install 'convscope[decode]'``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from types import ModuleType

import numpy as np
import torch
from PIL import Image

from convscope.data.decode import channels_first, open_rgb
from convscope.errors import DataError
from convscope.network.preprocess import Preprocess

_JPEG_START = b"\xff\xd8\xff"


def decode_device(preprocess: Preprocess) -> torch.device:
    """Where ``preprocess``'s decoder makes pixels: the current CUDA device for ``"nvjpeg"``
    (each ``torchrun`` process's own), else the CPU.

    Raises:
        DataError: ``"nvjpeg"`` and no CUDA device.
    """
    if preprocess.decoder != "nvjpeg":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DataError(
            "the nvjpeg decoder decodes on a CUDA GPU, and there is none",
            hint="use --decoder torchcodec (the same decoder on the CPU) or leave out --decoder",
        )
    return torch.device("cuda", torch.cuda.current_device())


def model_frames(sources: Sequence[bytes], preprocess: Preprocess, device: torch.device, checked: bool = False) -> list[torch.Tensor | Exception]:
    """The files' bytes as model-frame pixels: ``uint8 (3, H, W)`` on ``device`` for each file,
    or the exception that says why it could not be read (never raised); ``checked`` as :func:`decode`.

    Example:
        >>> frames = model_frames([Path("cat.jpg").read_bytes()], Preprocess(decoder="torchcodec"), torch.device("cpu"))  # doctest: +SKIP
        >>> frames[0].shape  # doctest: +SKIP
        torch.Size([3, 224, 224])
    """
    frames: list[torch.Tensor | Exception] = []
    for image in decode(sources, device, checked):
        frames.append(image if isinstance(image, Exception) else preprocess.tensor_to_model_frame(image))
    return frames


def decode(sources: Sequence[bytes], device: torch.device, checked: bool = False) -> list[torch.Tensor | Exception]:
    """Each file's bytes as upright RGB ``uint8 (3, h, w)`` on ``device``, or the exception
    that says why it could not be read. JPEGs are decoded together, in one call.
    ``checked``: every source has passed :func:`refusal` already (in the loader's workers)."""
    decoded: list[torch.Tensor | Exception | None] = [None] * len(sources)
    jpegs = [i for i, source in enumerate(sources) if source[:3] == _JPEG_START and (checked or refusal(source) is None)]
    for i, image in zip(jpegs, _decode_jpegs([sources[i] for i in jpegs], device)):
        decoded[i] = image
    for i, image in enumerate(decoded):
        if image is None:  # not a JPEG, or one TorchCodec refused: Pillow's rules and reasons
            decoded[i] = _pillow(sources[i], device)
    return decoded  # type: ignore[return-value]


def _decode_jpegs(sources: Sequence[bytes], device: torch.device) -> list[torch.Tensor | None]:
    """TorchCodec's RGB decode of each JPEG, ``None`` where it failed. A batch fails as a
    whole, so after a failure each file is decoded alone to find the bad ones."""
    if not sources:
        return []
    decode_jpeg = torchcodec().decode_jpeg
    tensors = [torch.frombuffer(bytearray(source), dtype=torch.uint8) for source in sources]
    try:
        return list(decode_jpeg(tensors, mode="RGB", device=device))
    except Exception:  # noqa: BLE001 - which file failed is found below, one by one
        pass
    alone: list[torch.Tensor | None] = []
    for tensor in tensors:
        try:
            alone.append(decode_jpeg(tensor, mode="RGB", device=device))
        except Exception:  # noqa: BLE001 - Pillow then decodes it, or says why it cannot
            alone.append(None)
    return alone


def refusal(source: bytes) -> Exception | None:
    """Why Pillow refuses the file's header (a decompression bomb over
    ``PIL.Image.MAX_IMAGE_PIXELS`` among the reasons), or ``None``: TorchCodec checks no
    size, so only files whose header Pillow takes go to TorchCodec (about 50 us a file)."""
    try:
        with Image.open(io.BytesIO(source)):
            return None
    except Exception as error:  # reported per image, as Pillow's decode would
        return error


def _pillow(source: bytes, device: torch.device) -> torch.Tensor | Exception:
    """Pillow's decode of a file, as ``uint8 (3, h, w)`` on ``device``, or why it failed."""
    try:
        image = open_rgb(io.BytesIO(source))
    except Exception as error:  # reported per image, as the Pillow decoder does
        return error
    return channels_first(np.asarray(image)).to(device)


def prepare() -> None:
    """Import TorchCodec and torchvision's tensor transforms now, before the loader's workers
    start: they inherit the modules instead of each importing torchvision (over a second)
    in its first item, and a missing TorchCodec fails at once, not in a worker.

    Raises:
        DataError: TorchCodec is not installed.
    """
    torchcodec()
    import torchvision.transforms.v2.functional  # noqa: F401


def torchcodec() -> ModuleType:
    """TorchCodec's decoders (imported on first use).

    Raises:
        DataError: TorchCodec is not installed.
    """
    try:
        from torchcodec import decoders
    except ImportError as error:
        raise DataError(
            f"the torchcodec and nvjpeg decoders need TorchCodec, which cannot be imported ({error})",
            hint="pip install 'convscope[decode]' (or torchcodec), or leave out --decoder to decode with Pillow",
        ) from None
    return decoders
