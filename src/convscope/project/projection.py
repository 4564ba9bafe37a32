"""Projections of hits back to the input: deconvnet and guided backprop, batched.

The projection of a hit is the backward signal of the single activation
``y[unit, row, col]`` of a layer, seeded with 1 (every other activation of the
layer zeroed), carried to the model input through ReLUs changed by the rule
(see :mod:`convscope.project.rules`). Both rules are positively homogeneous, so
the Zeiler & Fergus seed (the activation value ``a > 0`` itself) gives ``a``
times this picture: the same image after :func:`projection_to_image`.

Every hit is its own sample of a batch, so many hits share one backward pass.
With a receptive field, each hit runs on a crop of its image (see
:mod:`convscope.project.crop`); the worst case of every crop class is checked
against the full image (value and picture), and a class that differs falls back
to the full image. A check counts only when the full image's projection is not all
zeros (see :func:`_verify_crops`), so a dead unit cannot vouch for a class.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import nn

from convscope.errors import ConvscopeError, LayerError
from convscope.network.device import model_device
from convscope.network.geometry import ReceptiveField, UnitFields
from convscope.network.layers import NCHW, to_nchw
from convscope.network.modes import eval_mode, frozen
from convscope.project.crop import Crop, plan_crop
from convscope.project.rules import Rule, check_rule, modified_relus
from convscope.hooks import capture, get_module, run_until_captured

logger = logging.getLogger(__name__)

#: A crop is trusted when it matches the full image to this fraction of the picture's max.
CROP_TOLERANCE = 1e-4


class _Projector:
    """Runs ``model`` to ``layer`` and back for a batch; lives inside the rule and capture contexts."""

    def __init__(self, model: nn.Module, layer: str, dims: tuple[int, int, int] = NCHW) -> None:
        self.model = model
        self.layer = layer
        self.dims = dims
        self.output: torch.Tensor | None = None

    def store(self, name: str, output: torch.Tensor) -> None:
        self.output = output

    def layer_output(self, x: torch.Tensor) -> torch.Tensor:
        self.output = None
        run_until_captured(self.model, x)
        if self.output is None:
            raise LayerError(
                f"layer {self.layer!r} did not run in the forward pass",
                hint="pick a layer that the model's forward uses; `convscope layers MODEL` lists them",
            )
        if self.output.dim() != 4:
            raise LayerError(
                f"layer {self.layer!r} gives a {self.output.dim()}-d output, not (N, C, H, W)",
                hint="projections need a convolutional layer (units with rows and cols)",
            )
        return to_nchw(self.output, self.dims)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        y = self.layer_output(x)
        if not y.requires_grad:
            raise LayerError(
                f"layer {self.layer!r} does not depend on the input through autograd",
                hint="make sure the model does not run under torch.no_grad() or detach its input",
            )
        return x, y

    def backprop(
        self, x: torch.Tensor, units: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pictures ``(B, 3, h, w)`` and activations ``(B,)`` of hits ``(units, rows, cols)`` on ``x``."""
        x, y = self._forward(x)
        index = (torch.arange(len(x), device=x.device), units, rows, cols)
        seed = torch.zeros_like(y)
        seed[index] = 1.0
        (grad,) = torch.autograd.grad(y, x, seed)
        return grad.detach(), y.detach()[index]

    def backprop_shared(self, x: torch.Tensor, hits: Sequence[Sequence[tuple[int, int, int]]]) -> list[list[torch.Tensor]]:
        """Pictures ``(3, h, w)`` of several hits ``(unit, row, col)`` per input of ``x``.

        One forward pass serves all the hits of an input: the j-th backward pass
        seeds the j-th hit of every input that has one (inputs are independent in
        eval mode, so each picture is exactly its own hit's).
        """
        x, y = self._forward(x)
        out: list[list[torch.Tensor]] = [[] for _ in hits]
        rounds = max(len(h) for h in hits)
        for j in range(rounds):
            seeded = [b for b, h in enumerate(hits) if j < len(h)]
            seed = torch.zeros_like(y)
            for b in seeded:
                seed[(b, *hits[b][j])] = 1.0
            (grad,) = torch.autograd.grad(y, x, seed, retain_graph=j < rounds - 1)
            for b in seeded:
                out[b].append(grad[b].detach())
        return out


def _check_hits(
    shape: Sequence[int], units: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, layer: str
) -> None:
    for name, values, limit in (("unit", units, shape[1]), ("row", rows, shape[2]), ("col", cols, shape[3])):
        if len(values) and (int(values.min()) < 0 or int(values.max()) >= limit):
            raise LayerError(
                f"a hit's {name} is out of range for layer {layer!r} of shape {tuple(shape[1:])}",
                hint="the hits must come from a scan of this layer on inputs of this size",
            )


def _full(height: int, width: int, row: int, col: int) -> Crop:
    return Crop(0, 0, height, width, row, col)


def _cut(inputs: torch.Tensor, idx: Sequence[int], crops: Sequence[Crop]) -> torch.Tensor:
    return torch.stack([inputs[i, :, c.top : c.top + c.height, c.left : c.left + c.width] for i, c in zip(idx, crops)])


def project_hits(
    model: nn.Module,
    layer: str,
    inputs: torch.Tensor,
    units: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    rule: Rule,
    *,
    receptive_field: ReceptiveField | UnitFields | None = None,
    batch_size: int = 64,
    crop_checks: dict[tuple, bool] | None = None,
    image_ids: Sequence[int] | None = None,
    dims: tuple[int, int, int] = NCHW,
) -> torch.Tensor:
    """Deconvnet or guided-backprop projections of hits, one picture per hit.

    Args:
        model: the network; left with its own train/eval flags and no hooks.
        layer: dotted module name (``features.3``).
        inputs: ``(N, 3, H, W)`` normalised model inputs, one per hit (repeat an
            image for several hits on it).
        units: ``(N,)`` integer, each hit's unit (channel) in the layer output.
        rows: ``(N,)`` integer, each hit's row in the layer output.
        cols: ``(N,)`` integer, each hit's column in the layer output.
        rule: ``"deconvnet"`` (Zeiler & Fergus) or ``"guided"`` (Springenberg et al.).
        receptive_field: the layer's field, or its units' fields (``UnitFields``, as
            :func:`~convscope.network.geometry.receptive_fields` and ``LayerInfo.fields``
            give them: each hit uses its unit's); given, each hit runs on a crop of its
            input (faster, same result); ``None`` runs every hit on the full input.
        batch_size: hits per forward/backward pass.
        crop_checks: a dict kept by the caller across calls for the same model,
            layer and input size: each crop class is then decided against the
            full image once (by a check with a non-zero reference), not once per call.
        image_ids: ``(N,)`` which image each input is (equal ids: equal inputs);
            hits on the same image and crop then share one forward pass.
        dims: the tensor dims of the layer output's units, rows and cols
            (``LayerInfo.dims``; ``(3, 1, 2)`` for a channels-last layer).

    Returns:
        ``(N, 3, H, W)`` projections on ``inputs``' device, zero outside each hit's box.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        >>> x = torch.randn(2, 3, 8, 8)
        >>> p = project_hits(model, "2", x, torch.tensor([0, 1]), torch.tensor([1, 3]),
        ...                  torch.tensor([2, 0]), "deconvnet")
        >>> p.shape
        torch.Size([2, 3, 8, 8])
    """
    check_rule(rule)
    units, rows, cols = (torch.as_tensor(t, dtype=torch.long).flatten() for t in (units, rows, cols))
    if inputs.dim() != 4 or not (len(inputs) == len(units) == len(rows) == len(cols)):
        raise ConvscopeError(
            f"inputs {tuple(inputs.shape)} and {len(units)} units, {len(rows)} rows, {len(cols)} cols do not match",
            hint="pass one (3, H, W) input and one unit, row and col per hit",
        )
    if batch_size < 1:
        raise ConvscopeError(f"batch_size must be at least 1, not {batch_size}", hint="use e.g. batch_size=64")
    get_module(model, layer)
    if isinstance(receptive_field, UnitFields):
        if receptive_field.uniform is None:
            return _per_field(model, layer, inputs, units, rows, cols, rule, receptive_field, batch_size, crop_checks, image_ids, dims)
        receptive_field = receptive_field.uniform
    device = model_device(model, inputs.device)
    x_all = inputs.to(device, torch.float32)
    units, rows, cols = units.to(device), rows.to(device), cols.to(device)
    out = torch.zeros_like(x_all)
    if len(x_all) == 0:
        return out.to(inputs.device)
    height, width = x_all.shape[-2:]
    projector = _Projector(model, layer, dims)
    with eval_mode(model), frozen(model), modified_relus(model, rule), capture(model, [layer], projector.store, stop_after_last=True):
        with torch.no_grad():
            shape = projector.layer_output(x_all[:1]).shape
        _check_hits(shape, units, rows, cols, layer)
        r_list, c_list = rows.tolist(), cols.tolist()
        if receptive_field is None:
            crops = [_full(height, width, r, c) for r, c in zip(r_list, c_list)]
        else:
            crops = [plan_crop(receptive_field, r, c, height, width) for r, c in zip(r_list, c_list)]
            _verify_crops(projector, x_all, units, rows, cols, crops, receptive_field, batch_size, crop_checks)
        # Hits on the same image and crop share one forward pass.
        ids = list(image_ids) if image_ids is not None else list(range(len(x_all)))
        shared: dict[tuple, list[int]] = defaultdict(list)
        for i, crop in enumerate(crops):
            shared[(ids[i], crop.top, crop.left, crop.height, crop.width)].append(i)
        # Batches of one crop shape and one hit count: every backward pass seeds every row.
        batches: dict[tuple[int, int, int], list[list[int]]] = defaultdict(list)
        for (_, _, _, h, w), members in shared.items():
            batches[(h, w, len(members))].append(members)
        unit_list = units.tolist()
        for groups in batches.values():
            for start in range(0, len(groups), batch_size):
                batch = groups[start : start + batch_size]
                firsts = [members[0] for members in batch]
                pictures = projector.backprop_shared(
                    _cut(x_all, firsts, [crops[i] for i in firsts]),
                    [[(unit_list[i], crops[i].row, crops[i].col) for i in members] for members in batch],
                )
                for members, grads in zip(batch, pictures):
                    for i, grad in zip(members, grads):
                        c = crops[i]
                        out[i, :, c.top : c.top + c.height, c.left : c.left + c.width] = grad
    return out.to(inputs.device)


def _per_field(
    model: nn.Module,
    layer: str,
    inputs: torch.Tensor,
    units: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    rule: Rule,
    fields: UnitFields,
    batch_size: int,
    crop_checks: dict[tuple, bool] | None,
    image_ids: Sequence[int] | None,
    dims: tuple[int, int, int],
) -> torch.Tensor:
    """:func:`project_hits` of a layer whose units see different fields: one call per run of
    units sharing a field (each with its own crop verdicts in ``crop_checks``)."""
    out = torch.zeros(inputs.shape, dtype=torch.float32, device=inputs.device)
    covered = torch.zeros(len(units), dtype=torch.bool, device=units.device)
    for start, stop, field in fields.ranges:
        mine = ((units >= start) & (units < stop)).nonzero().flatten()
        if len(mine) == 0:
            continue
        covered[mine] = True
        checks = None if crop_checks is None else crop_checks.setdefault(("field", field), {})  # type: ignore[assignment]
        ids = [image_ids[i] for i in mine.tolist()] if image_ids is not None else mine.tolist()
        out[mine.to(out.device)] = project_hits(
            model, layer, inputs[mine.to(inputs.device)], units[mine], rows[mine], cols[mine], rule,
            receptive_field=field, batch_size=batch_size, crop_checks=checks, image_ids=ids, dims=dims,
        )
    if not bool(covered.all()):
        unit = int(units[~covered][0])
        raise LayerError(f"unit {unit} is not one of the {fields.units} units of layer {layer!r}", hint="pick units the layer has")
    return out


def _worst(crops: list[Crop], members: list[int], along_rows: bool, edge_near: bool, edge_far: bool) -> int:
    """The member whose target is nearest a cut (non-image) edge of the crop along one axis."""
    pos = (lambda i: crops[i].row) if along_rows else (lambda i: crops[i].col)
    if edge_near and not edge_far:
        return max(members, key=pos)
    if edge_far and not edge_near:
        return min(members, key=pos)
    return members[0]


def _verify_crops(
    projector: _Projector,
    x_all: torch.Tensor,
    units: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    crops: list[Crop],
    rf: ReceptiveField,
    batch_size: int,
    known: dict[tuple, bool] | None,
) -> None:
    """Check every crop class against the full image; replace the classes that differ.

    A class is a crop shape together with which of its four sides are image
    edges. Inside a class, the crop's wrong padding can only reach a target from
    a cut side, so the target nearest a cut side is the worst case: one check of
    that position (value and picture) clears the class. A check counts only when
    its reference, the projection on the full image, is not all zeros (a dead
    unit or a zero gradient would agree with any crop): the position is then
    checked with the next hit's image and unit of the class, in rounds of 1, 2,
    4, ... hits, until a reference is non-zero. A class whose checks all have
    non-zero references that agree within :data:`CROP_TOLERANCE` of their
    magnitude is trusted; one that differs runs on the full image. A class whose
    every reference is zero is not decided: its hits run on the full image (always
    right) and it stays unchecked in ``known``, so later hits can decide it.
    The checks run batched; ``known`` remembers the verdicts of classes decided
    before (True: the crop is trusted).
    """
    known = {} if known is None else known
    height, width = x_all.shape[-2:]
    classes: dict[tuple, list[int]] = defaultdict(list)
    for i, c in enumerate(crops):
        if (c.height, c.width) != (height, width):
            classes[(c.height, c.width, *_edges(c, height, width))].append(i)
    pending: dict[tuple, tuple[int, int, Crop, list[int]]] = {}  # class -> worst position, its crop, hits left
    for key, members in classes.items():
        if key in known:
            continue
        _, _, top_edge, left_edge, bottom_edge, right_edge = key
        row = int(rows[_worst(crops, members, True, top_edge, bottom_edge)])
        col = int(cols[_worst(crops, members, False, left_edge, right_edge)])
        pending[key] = (row, col, plan_crop(rf, row, col, height, width), list(members))
    take = 1
    while pending:
        checks = []  # (class, hit whose image and unit are used, row, col, crop)
        for key, (row, col, crop, left) in pending.items():
            checks += [(key, i, row, col, crop) for i in left[:take]]
            del left[:take]
        verdicts: dict[tuple, list[bool]] = defaultdict(list)
        for (key, *_), outcome in zip(checks, _run_checks(projector, x_all, units, checks, batch_size)):
            if outcome is not None:
                verdicts[key].append(outcome)
        for key in list(pending):
            if verdicts[key]:
                known[key] = all(verdicts[key])
                if not known[key]:
                    logger.info("crop %s differs from the full image; using the full image for its class", pending[key][2])
                del pending[key]
            elif not pending[key][3]:
                logger.info("every reference projection of crop %s is zero; its hits use the full image", pending[key][2])
                del pending[key]
        take *= 2
    for key, members in classes.items():
        if not known.get(key, False):
            for j in members:
                crops[j] = _full(height, width, int(rows[j]), int(cols[j]))


def _run_checks(
    projector: _Projector, x_all: torch.Tensor, units: torch.Tensor, checks: list[tuple], batch_size: int
) -> list[bool | None]:
    """Per check ``(class, hit, row, col, crop)``: True if the crop gives the full image's value and
    picture, False if not, None if both pictures are all zeros (the check proves nothing)."""
    device = x_all.device
    outcomes: list[bool | None] = []
    for start in range(0, len(checks), batch_size):
        chunk = checks[start : start + batch_size]
        idx = [check[1] for check in chunk]
        full, full_value = projector.backprop(
            x_all[idx],
            units[idx],
            torch.tensor([check[2] for check in chunk], device=device),
            torch.tensor([check[3] for check in chunk], device=device),
        )
        by_crop: dict[Crop, list[int]] = defaultdict(list)  # checks on one crop run as one batch
        for k, check in enumerate(chunk):
            by_crop[check[4]].append(k)
        results: dict[int, bool | None] = {}
        for crop, ks in by_crop.items():
            part, part_value = projector.backprop(
                _cut(x_all, [idx[k] for k in ks], [crop] * len(ks)),
                units[[idx[k] for k in ks]],
                torch.full((len(ks),), crop.row, device=device),
                torch.full((len(ks),), crop.col, device=device),
            )
            for j, k in enumerate(ks):
                pasted = torch.zeros_like(full[k])
                pasted[:, crop.top : crop.top + crop.height, crop.left : crop.left + crop.width] = part[j]
                reference = float(full[k].abs().max())
                picture_ok = float((pasted - full[k]).abs().max()) <= CROP_TOLERANCE * reference
                value_ok = float((part_value[j] - full_value[k]).abs()) <= CROP_TOLERANCE * float(full_value[k].abs())
                agree = picture_ok and value_ok
                results[k] = None if agree and reference == 0.0 else agree
        outcomes += [results[k] for k in range(len(chunk))]
    return outcomes


def _edges(c: Crop, height: int, width: int) -> tuple[bool, bool, bool, bool]:
    return c.top == 0, c.left == 0, c.top + c.height == height, c.left + c.width == width
