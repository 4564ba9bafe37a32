"""What ``convscope circuits`` computes, in one record: :class:`Circuits`.

Per pair of layers (each with the layer before it) every unit's inputs
(:class:`~convscope.circuits.inputs.LayerInputs`) and, where the lower layer feeds the upper one
through a single convolution, the kernels that connect each unit with its listed inputs; per
ablation layer what zeroing each unit does to each class
(:class:`~convscope.circuits.ablation.LayerAblation`). :func:`~convscope.circuits.folder.write_circuits`
stores it as an atlas's ``circuits/`` folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from convscope.circuits.inputs import LayerInputs

if TYPE_CHECKING:
    from convscope.circuits.ablation import LayerAblation

#: ``kernels[pair][unit][below_unit]``: the ``(kh, kw)`` kernel from ``below_unit`` to ``unit``.
Kernels = dict[int, dict[int, dict[int, np.ndarray]]]


@dataclass(frozen=True)
class AblationInfo:
    """How the ablation's images were chosen.

    Attributes:
        images: how many images were sampled.
        seed: the sample's seed.
        class_by: ``"label"`` (each image's label) or ``"predicted"`` (its predicted class).
        class_names: the classes' names, or ``None``.
    """

    images: int
    seed: int
    class_by: str
    class_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Circuits:
    """The circuits of an atlas's network (see the module's docstring).

    Attributes:
        inputs: per pair, every unit's inputs from the layer below.
        kernels: per pair index (direct pairs only), per unit, per listed input unit, its
            ``(kh, kw)`` kernel (:data:`Kernels`).
        direct: per pair, whether the lower layer feeds the upper one through one convolution.
        ablations: per ablation layer, each unit zeroed.
        top: inputs listed per unit and sign.
        hits: hits per unit the inputs were averaged over (at most).
        ablation_info: how the ablation's images were chosen (``None`` without ablation).
        model: the atlas manifest's ``"model"`` section.

    Example:
        >>> found = LayerInputs("b", "a", np.array([[2.0, -3.0]]), np.array([1.0]), np.array([1]), "full")
        >>> Circuits((found,), {}, (False,), (), top=8, hits=9).pairs
        [('b', 'a')]
    """

    inputs: tuple[LayerInputs, ...]
    kernels: Kernels
    direct: tuple[bool, ...]
    ablations: tuple["LayerAblation", ...]
    top: int
    hits: int
    ablation_info: AblationInfo | None = None
    model: dict[str, Any] = field(default_factory=dict)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """``(layer, below)`` of every pair."""
        return [(found.layer, found.below) for found in self.inputs]
