"""convscope.data: image folders as datasets.

:func:`find_images` lists a folder (image order, labels, skipped files), :func:`list_images`
a text file of image paths, :func:`take` the first or a random few of them;
:func:`frame_batches` (over :class:`ImageDataset` and :func:`make_loader`, or
:class:`EncodedDataset` for the GPU decoder) streams it in the model-input frame
for pass 1; :func:`load_pixels` reloads the winning images for pass 2.
:func:`labels_from_csv`, :func:`labels_from_name` and :func:`read_class_names` give
labels to folders that are not in ImageFolder layout.
"""

from convscope.data.dataset import Batch, Encoded, EncodedDataset, ImageDataset, Item, collate, default_workers, frame_batches, load_pixels, make_loader
from convscope.data.decode import failure_reason, open_rgb, to_rgb
from convscope.data.folder import IMAGE_EXTENSIONS, ImageList, SkippedFile, find_images, image_source, list_images, take
from convscope.data.labels import Labels, labels_from_csv, labels_from_name, read_class_names, with_labels

__all__ = [
    "IMAGE_EXTENSIONS",
    "Batch",
    "Encoded",
    "EncodedDataset",
    "ImageDataset",
    "ImageList",
    "Item",
    "Labels",
    "SkippedFile",
    "collate",
    "failure_reason",
    "find_images",
    "frame_batches",
    "image_source",
    "list_images",
    "take",
    "labels_from_csv",
    "labels_from_name",
    "load_pixels",
    "default_workers",
    "make_loader",
    "open_rgb",
    "read_class_names",
    "to_rgb",
    "with_labels",
]
