"""The projection view: each hit's deconvnet or guided-backprop picture, cut to its box."""

from __future__ import annotations


import torch

from convscope.network.device import model_device
from convscope.network.geometry import Box
from convscope.network.layers import NCHW, LayerInfo
from convscope.network.load import Network
from convscope.project import project_hits, projection_to_image
from convscope.render.patch import crop
from convscope.scan.gather import Chunk
from convscope.views.base import PICTURE_SIDE, Picture


class ProjectionView:
    """Projects every hit of a chunk in batches (see :func:`convscope.project.project_hits`).

    Args:
        network: the model and its preprocessing.
        rule: ``"deconvnet"`` or ``"guided"``.

    Hits are projected together per receptive field (a layer whose units come from
    branches with different fields has several), each on a crop of its image just holding
    its box; the crop classes of each field are checked against the full image once per
    chunk, so a chunk's pictures never depend on the chunks before it (pass 2 on many
    processes deals the chunks out, :mod:`convscope.atlas.deal`).
    """

    name = "projection"
    per_hit = True
    in_figure = True

    def __init__(self, network: Network, rule: str) -> None:
        self.network = network
        self.rule = rule

    def __call__(self, layer: LayerInfo, chunk: Chunk) -> list[list[Picture]]:
        pictures: dict[tuple[int, int], Picture] = {}
        device = model_device(self.network.model)
        long = lambda values: torch.tensor(values, dtype=torch.long, device=device)  # noqa: E731
        hits = chunk.flat()
        if not hits:
            return [[] for _ in chunk.hits]
        signals = project_hits(
            self.network.model,
            layer.name,
            self.network.model_input(chunk.stacked(hits)),
            long([h.unit for h in hits]),
            long([h.row for h in hits]),
            long([h.col for h in hits]),
            self.rule,
            receptive_field=layer.fields,
            image_ids=[h.image for h in hits],
            dims=layer.dims or NCHW,
        ).cpu()
        for hit, signal in zip(hits, signals):
            pictures[hit.unit, hit.rank] = _picture(signal, hit.box)
        return [[pictures[hit.unit, hit.rank] for hit in hits] for hits in chunk.hits]


def _picture(signal: torch.Tensor, box: Box) -> Picture:
    """``signal`` ``(3, H, W)`` on the whole input, cut to ``box`` and normalised for display."""
    part, inside = crop(signal.permute(1, 2, 0).numpy(), box, 0.0, max_side=PICTURE_SIDE)
    return Picture(projection_to_image(torch.from_numpy(part).permute(2, 0, 1)), inside)
