"""project_hits takes a layer's per-unit fields (UnitFields, what receptive_fields and LayerInfo give).

Oracle: the same projections without a field, every hit on the whole input (no crop), which is
exact by construction; with the fields, each hit runs on a crop planned from its own unit's field.
"""

from __future__ import annotations

import pytest
import torch

from convscope.errors import LayerError
from convscope.network.geometry import UnitFields, receptive_fields
from convscope.project import project_hits
from network.test_unit_fields import Fire


@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
def test_unit_fields_give_the_full_input_projections(rule):
    torch.manual_seed(0)
    model = Fire().eval()
    fields = receptive_fields(model, ["out"], (31, 31))["out"]
    assert isinstance(fields, UnitFields) and fields.uniform is None  # the 1x1 and 3x3 branches differ
    x = torch.randn(6, 3, 31, 31)
    units = torch.tensor([0, 3, 4, 8, 2, 6])  # both branches
    found = {}
    handle = model.out.register_forward_hook(lambda m, i, o: found.__setitem__("out", o.detach()))
    try:
        model(x)
    finally:
        handle.remove()
    peaks = [int(found["out"][i, u].flatten().argmax()) for i, u in enumerate(units.tolist())]  # live positions
    rows = torch.tensor([p // 15 for p in peaks])
    cols = torch.tensor([p % 15 for p in peaks])
    cropped = project_hits(model, "out", x, units, rows, cols, rule, receptive_field=fields)
    full = project_hits(model, "out", x, units, rows, cols, rule)
    live = full.abs().sum(dim=(1, 2, 3)).gt(0)  # a zero reference would agree with anything
    assert int(live[units < 4].sum()) >= 2 and int(live[units >= 4].sum()) >= 2  # pictures in both branches
    torch.testing.assert_close(cropped, full, rtol=1e-5, atol=1e-6)
    # A unit of one branch never borrows the other branch's field: the 1x1 branch sees 3x3 pixels.
    support = cropped[int(live.nonzero()[0])].abs().sum(dim=0).nonzero()
    assert (support.max(dim=0).values - support.min(dim=0).values + 1).tolist() == [3, 3]


def test_a_unit_past_the_fields_is_refused():
    model = Fire().eval()
    fields = receptive_fields(model, ["out"], (15, 15))["out"]
    with pytest.raises(LayerError, match="unit 9"):
        project_hits(model, "out", torch.randn(1, 3, 15, 15), [9], [0], [0], "guided", receptive_field=fields)
