"""The offline demo: a small AlexNet-like network trained in minutes on scikit-image's photos.

Example:
    >>> from pathlib import Path
    >>> from convscope.demo import export_photos, train_demo
    >>> result = train_demo(Path("cache"))  # doctest: +SKIP
    >>> photos = export_photos(Path("photos"))  # doctest: +SKIP
"""

from convscope.demo.model import CONV_LAYERS, TinyAlexNet
from convscope.demo.photos import PHOTOS, export_photos, export_tiles, load_photo, load_photos
from convscope.demo.run import run_demo
from convscope.demo.train import DemoResult, train_demo

__all__ = [
    "CONV_LAYERS",
    "PHOTOS",
    "DemoResult",
    "TinyAlexNet",
    "export_photos",
    "export_tiles",
    "load_photo",
    "load_photos",
    "run_demo",
    "train_demo",
]
