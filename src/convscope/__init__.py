"""convscope: see what every hidden unit of a trained PyTorch ConvNet has learned.

The one call for the whole job is :func:`make_atlas`; the pieces it is made of
can be called alone (see the documentation's "From Python" guide, docs/guides/python.md).
"""

from convscope.version import __version__

from convscope.atlas.build import RenderOptions, write_atlas
from convscope.atlas.format import read_hits, read_manifest
from convscope.data import ImageDataset, ImageList, find_images, load_pixels, make_loader
from convscope.errors import ConvscopeError, ConvscopeWarning
from convscope.circuits import make_circuits, write_circuits
from convscope.explain import ClassRelevance, Explanation, explain, explain_classes
from convscope.network.geometry import Box, ReceptiveField, receptive_fields
from convscope.network.layers import LayerInfo, conv_layers, default_layers, discover_layers, select_layers
from convscope.network.load import Network, load_network
from convscope.network.preprocess import Preprocess
from convscope.notebook import open_atlas
from convscope.pipeline import make_atlas
from convscope.render.selection import choose_units
from convscope.hooks import capture
from convscope.scan.scan import LayerScan, ScanResult, ScanState, scan
from convscope.scan.topk import RunningTopK, TopK

__all__ = [
    "Box",
    "ClassRelevance",
    "ConvscopeError",
    "ConvscopeWarning",
    "Explanation",
    "ImageDataset",
    "ImageList",
    "LayerInfo",
    "LayerScan",
    "Network",
    "Preprocess",
    "ReceptiveField",
    "RenderOptions",
    "RunningTopK",
    "ScanResult",
    "ScanState",
    "TopK",
    "capture",
    "choose_units",
    "conv_layers",
    "default_layers",
    "discover_layers",
    "explain",
    "explain_classes",
    "find_images",
    "load_network",
    "load_pixels",
    "make_atlas",
    "make_circuits",
    "make_loader",
    "open_atlas",
    "read_hits",
    "read_manifest",
    "receptive_fields",
    "scan",
    "select_layers",
    "write_atlas",
    "write_circuits",
    "__version__",
]
