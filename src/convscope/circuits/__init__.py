"""Circuits: how each unit is built from the units below it, and which classes it matters for.

:func:`make_circuits` is the one call on an atlas (every unit's inputs from the scanned layer
before it, the weights view of direct convolutions, and with ``ablation`` each unit of a layer
zeroed over a sample of images); :func:`write_circuits` stores the result in the atlas
(``ATLAS/circuits/``), which the viewer and ``open_atlas(...).circuits`` read. The pieces can be
called alone: :func:`circuit_inputs` (contributions of lower units at given hits),
:func:`ablate` (one layer's batched ablation and Bau's top-versus-random test),
:func:`direct_conv` and :func:`kernels` (the weights view).
"""

from convscope.circuits.ablation import LayerAblation, ablate, sample_images
from convscope.circuits.api import make_circuits
from convscope.circuits.folder import write_circuits
from convscope.circuits.inputs import HitTable, LayerInputs, NoPathError, circuit_inputs
from convscope.circuits.result import AblationInfo, Circuits
from convscope.circuits.weights import direct_conv, kernels

__all__ = [
    "AblationInfo",
    "Circuits",
    "HitTable",
    "LayerAblation",
    "LayerInputs",
    "NoPathError",
    "ablate",
    "circuit_inputs",
    "direct_conv",
    "kernels",
    "make_circuits",
    "sample_images",
    "write_circuits",
]
