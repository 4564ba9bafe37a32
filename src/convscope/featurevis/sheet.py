"""A sheet of optimised images: one row per layer, each image captioned with its unit (nothing is written here)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convscope.featurevis.optimise import FeatureVis
from convscope.render.grid import caption, fit_cell, stack

#: The side of one picture on the sheet (small images are enlarged with crisp pixels).
CELL = 128
GAP = 6


def featurevis_sheet(results: Sequence[FeatureVis], cell: int = CELL) -> np.ndarray:
    """``uint8 (H, W, 3)``: per result (a layer) a captioned row of its images, ``layer:unit`` under each.

    Example:
        >>> vis = FeatureVis("conv", np.array([3]), np.zeros((1, 8, 8, 3), np.uint8), np.ones(1), np.ones(1), (8, 8))
        >>> featurevis_sheet([vis], cell=16).dtype
        dtype('uint8')
    """
    rows = []
    for vis in results:
        pictures = [caption(fit_cell(image, cell), f"{vis.layer}:{unit}", size=12) for image, unit in zip(vis.images, vis.units)]
        rows.append(stack(pictures, GAP))
    return stack(rows, 2 * GAP, vertical=True)
