"""Running top-k per unit: the strongest hits seen so far, in bounded memory.

Memory is ``units x k`` per layer whatever the number of images. Ties are broken
by image order: an earlier image ranks first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

#: Finds the positions ``(M,)`` of the candidates ``(rows (M,), units (M,))`` of a batch.
Locate = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TopK(NamedTuple):
    """The hits of every unit of one layer, strongest first.

    Attributes:
        values: ``(units, k)`` activations; ``-inf`` where a unit has fewer hits.
        images: ``(units, k)`` image indices; ``-1`` where there is no hit.
        positions: ``(units, k)`` flat positions ``row * cols + col``.
    """

    values: torch.Tensor
    images: torch.Tensor
    positions: torch.Tensor


class RunningTopK:
    """Keeps, for each of ``units`` units, the ``k`` largest values added so far.

    Each :meth:`add` brings one value per (image, unit), typically the image's
    strongest activation of that unit and where it was, so a unit's hits come from
    ``k`` different images. Images must be added in increasing index order for
    ties to break by image order.

    Example:
        >>> topk = RunningTopK(units=2, k=2)
        >>> topk.add(torch.tensor([[1.0, 5.0], [3.0, 5.0], [2.0, 0.0]]),
        ...          images=torch.tensor([0, 1, 2]), positions=torch.zeros(3, 2, dtype=torch.long))
        >>> topk.result().images.tolist()
        [[1, 2], [0, 1]]
    """

    def __init__(self, units: int, k: int, device: torch.device | str = "cpu") -> None:
        self.units = units
        self.k = k
        self._values = torch.full((units, k), float("-inf"), device=device)
        self._images = torch.full((units, k), -1, dtype=torch.long, device=device)
        self._positions = torch.zeros((units, k), dtype=torch.long, device=device)

    def add(self, values: torch.Tensor, images: torch.Tensor, positions: torch.Tensor | Locate) -> None:
        """Offer new candidates.

        Args:
            values: ``(N, units)`` one activation per image and unit; NaN and ``+-inf``
                count as ``-inf``, which is never a hit (image ``-1``).
            images: ``(N,)`` the images' indices, increasing.
            positions: ``(N, units)`` where in the image each value was (flat index), or a
                function ``(rows (M,), units (M,)) -> (M,)`` that finds them for the candidates
                that make it into the top k only (finding every position costs a pass as long
                as the max itself).
        """
        if values.numel() == 0:
            return
        values = torch.nan_to_num(values.float(), nan=float("-inf"), posinf=float("-inf"), neginf=float("-inf"))
        n = values.shape[0]
        all_values = torch.cat([self._values, values.t()], dim=1)
        all_images = torch.cat([self._images, images.view(1, n).expand(self.units, n).to(self._images)], dim=1)
        # A stable sort keeps the earlier image first among equal values.
        order = torch.sort(all_values, dim=1, descending=True, stable=True).indices[:, : self.k]
        self._values = all_values.gather(1, order)
        self._images = all_images.gather(1, order)
        if callable(positions):
            fresh = order >= self.k  # candidates of this batch that made it
            kept = self._positions.gather(1, order.clamp(max=self.k - 1))
            unit, slot = fresh.nonzero(as_tuple=True)
            kept[unit, slot] = positions(order[unit, slot] - self.k, unit).to(kept)
            self._positions = kept
        else:
            all_positions = torch.cat([self._positions, positions.t().to(self._positions)], dim=1)
            self._positions = all_positions.gather(1, order)
        self._images.masked_fill_(self._values == float("-inf"), -1)  # nothing finite: no hit

    def merge(self, other: TopK) -> None:
        """Absorb the hits of another shard of images (e.g. another process's).

        The result is what one pass over both shards would have kept: the ``k`` largest
        values, ties broken by the lower image index, whichever shard came first.
        """
        values = torch.cat([self._values, other.values.to(self._values)], dim=1)
        images = torch.cat([self._images, other.images.to(self._images)], dim=1)
        positions = torch.cat([self._positions, other.positions.to(self._positions)], dim=1)
        # Lower image first, then a stable sort by value: ties keep the lower image first.
        # An empty slot (image -1) is always -inf and sorts after every real hit.
        by_image = torch.sort(torch.where(images < 0, torch.iinfo(torch.long).max, images), dim=1, stable=True).indices
        by_value = torch.sort(values.gather(1, by_image), dim=1, descending=True, stable=True).indices
        order = by_image.gather(1, by_value)[:, : self.k]
        self._values, self._images, self._positions = values.gather(1, order), images.gather(1, order), positions.gather(1, order)
        self._images.masked_fill_(self._values == float("-inf"), -1)

    def result(self) -> TopK:
        """The current hits, strongest first (copies on the CPU)."""
        return TopK(self._values.cpu().clone(), self._images.cpu().clone(), self._positions.cpu().clone())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"values": self._values.cpu(), "images": self._images.cpu(), "positions": self._positions.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["values"].shape != (self.units, self.k):
            raise ValueError(f"state holds {tuple(state['values'].shape)} hits, expected {(self.units, self.k)}")
        device = self._values.device
        self._values = state["values"].to(device)
        self._images = state["images"].to(device)
        self._positions = state["positions"].to(device)
