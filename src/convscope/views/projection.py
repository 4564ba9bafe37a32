"""The projection view: each hit's deconvnet or guided-backprop picture, cut to its box."""

from __future__ import annotations

import torch

from convscope.network.device import model_device
from convscope.network.layers import LayerInfo
from convscope.network.load import Network
from convscope.project import project_hits, projection_to_image
from convscope.render.patch import crop
from convscope.scan.gather import Chunk
from convscope.views.base import Picture


class ProjectionView:
    """Projects every hit of a chunk in batches (see :func:`convscope.project.project_hits`).

    Args:
        network: the model and its preprocessing.
        rule: ``"deconvnet"`` or ``"guided"``.

    Each layer's crop classes are checked once against the full image and remembered
    for the layer's later chunks.
    """

    name = "projection"
    per_hit = True

    def __init__(self, network: Network, rule: str) -> None:
        self.network = network
        self.rule = rule
        self._crop_checks: dict[str, dict] = {}

    def __call__(self, layer: LayerInfo, chunk: Chunk) -> list[list[Picture]]:
        flat = chunk.flat()
        if not flat:
            return [[] for _ in chunk.units]
        model = self.network.model
        device = model_device(model)
        long = lambda values: torch.tensor(values, dtype=torch.long, device=device)  # noqa: E731
        signals = project_hits(
            model,
            layer.name,
            self.network.model_input(chunk.stacked()),
            long([h.unit for h in flat]),
            long([h.row for h in flat]),
            long([h.col for h in flat]),
            self.rule,
            receptive_field=layer.receptive_field,
            crop_checks=self._crop_checks.setdefault(layer.name, {}),
            image_ids=[h.image for h in flat],
        ).cpu()
        pictures = iter(signals)
        return [[self._picture(next(pictures), hit.box) for hit in hits] for hits in chunk.hits]

    @staticmethod
    def _picture(signal: torch.Tensor, box) -> Picture:  # noqa: ANN001
        """``signal`` ``(3, H, W)`` on the whole input, cut to ``box`` and normalised for display."""
        part, inside = crop(signal.permute(1, 2, 0).numpy(), box, 0.0)
        return Picture(projection_to_image(torch.from_numpy(part).permute(2, 0, 1)), inside)
