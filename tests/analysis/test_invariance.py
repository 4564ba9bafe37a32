"""Invariance sweeps (Zeiler & Fergus Figure 5): hand-built models with known answers, bad input, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from convscope.analysis.invariance import feature_layers, shift_consistency, sweep_curves
from convscope.analysis.invariance_inputs import load_frame
from convscope.analysis.invariance_run import run_invariance
from convscope.analysis.transforms import Sweep, default_sweeps, max_shift, rotate, scale, translate
from convscope.cli import main
from convscope.errors import ConvscopeError
from convscope.network.load import Network
from convscope.network.preprocess import Preprocess

IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


class CircularNet(nn.Module):
    """A circular-padded conv, global average pooling and a linear head: translation-invariant under circular shifts."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 3, padding=1, padding_mode="circular")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flat(self.pool(torch.relu(self.conv(x)))))


def _network(model: nn.Module, size: int = 16) -> Network:
    return Network(model.eval(), "test", Preprocess(input_size=(size, size), resize=None, **IDENTITY))


def _dot(size: int, row: int, col: int) -> torch.Tensor:
    x = torch.zeros(3, size, size)
    x[:, row, col] = 1
    return x


def _where(x: torch.Tensor) -> tuple[int, int]:
    return divmod(int(x[0].argmax()), x.shape[-1])


def test_circular_model_has_zero_late_distance_under_circular_shifts() -> None:
    network = _network(CircularNet())
    assert feature_layers(network) == ("conv", "conv")  # the only default layer
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    sweep = type("Circular", (Sweep,), {"apply": lambda self, x, v, fill: torch.roll(x, int(v), dims=1)})("translation", (1.0, 5.0, 11.0))
    curves = sweep_curves(network, image, sweep, label=0)
    assert max(curves.late) < 1e-5  # pooled features do not move
    assert min(curves.first) > 0.1  # the map itself does
    assert np.allclose(curves.probability, curves.probability[0], atol=1e-6)


@pytest.mark.parametrize("d", [-3, 2, 5])
def test_translate_moves_a_dot_by_d_rows(d: int) -> None:
    assert _where(translate(_dot(11, 5, 4), d, (0, 0, 0))) == (5 + d, 4)


def test_translate_fills_with_the_mean_colour() -> None:
    out = translate(torch.zeros(3, 6, 6), 2, (0.1, 0.2, 0.3))
    assert torch.allclose(out[:, :2], torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1).expand(3, 2, 6))
    assert out[:, 2:].abs().max() == 0


def test_rotate_90_turns_a_dot_counter_clockwise() -> None:
    assert _where(rotate(_dot(11, 5, 8), 90, (0, 0, 0))) == (2, 5)  # right of the centre -> above it
    assert _where(rotate(_dot(11, 2, 5), 90, (0, 0, 0))) == (5, 2)  # above -> left
    assert _where(rotate(_dot(11, 5, 8), 180, (0, 0, 0))) == (5, 2)


def test_scale_2_doubles_the_distance_from_the_centre() -> None:
    image = torch.zeros(3, 21, 21)
    image[:, 7:10, 12:15] = 1  # a 3x3 blob centred at (8, 13): (-2, +3) from the centre (10, 10)
    out = scale(image, 2.0, (0, 0, 0))
    rows, cols = torch.meshgrid(torch.arange(21.0), torch.arange(21.0), indexing="ij")
    weight = out[0] / out[0].sum()
    assert float((weight * rows).sum()) == pytest.approx(6.0, abs=1e-4)
    assert float((weight * cols).sum()) == pytest.approx(16.0, abs=1e-4)


def test_default_sweeps_scale_the_papers_reach_to_the_input() -> None:
    assert max_shift((224, 224)) == 60 and max_shift((32, 32)) == 9
    translation, zoom, turn = default_sweeps((32, 32))
    assert translation.values[0] == -9 and translation.values[-1] == 9 and 0.0 in translation.values
    assert zoom.values == (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8) and len(turn.values) == 36


class BrightSpot(nn.Module):
    """Unit 0 of ``conv`` is the red channel (1x1 conv); its spatial max is the brightest red pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 1
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


def test_unit_curve_of_a_hand_built_unit() -> None:
    network = _network(BrightSpot(), 11)
    image = _dot(11, 5, 5) * 0.8
    curves = sweep_curves(network, image, Sweep("translation", (0.0, 3.0, 6.0)), unit=("conv", 0))
    assert curves.unit == pytest.approx((0.8, 0.8, 0.0))  # shifted off the 11-px image at 6 rows: the fill (0)


def test_shift_consistency_of_a_constant_model_is_one() -> None:
    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean(dim=(2, 3)) * 0 + torch.tensor([0.0, 1.0])

    score = shift_consistency(_network(Constant()), torch.rand(3, 16, 16), 4, pairs=10, generator=torch.Generator().manual_seed(0))
    assert score == 1.0


def test_an_image_smaller_than_the_sweep_is_one_error_naming_it(tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(small)
    with pytest.raises(ConvscopeError, match="small.png.*smaller than the translation sweep"):
        load_frame(_network(CircularNet(), 32), small, 9)


def test_a_non_image_file_is_one_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ConvscopeError, match="notes.png"):
        run_invariance(_network(CircularNet()), [bad, bad], progress=False)


def test_cli_end_to_end_on_a_tiny_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tiny_models import write_images

    write_images(tmp_path / "images", 6, size=24, classes=("0", "1", "2"))
    out = tmp_path / "inv"
    argv = ["invariance", "tiny_models:tiny_alexnet", str(tmp_path / "images"), "--input-size", "16", "--out", str(out), "--count", "3", "--unit", "features.0:1", "-q", "--pairs", "4"]
    assert main(argv) == 0
    record = json.loads((out / "invariance.json").read_text())
    assert record["first_layer"] == "features.0" and len(record["images"]) == 3
    assert [c["kind"] for c in record["images"][0]["curves"]] == ["translation", "scale", "rotation"]
    assert record["images"][0]["label"] == 0 and record["images"][0]["curves"][0]["probability"] is not None
    picture = np.asarray(Image.open(out / "invariance.png"))
    assert picture.ndim == 3 and picture.shape[1] > 1000  # four columns
    assert main(argv) == 1 and "exists" in capsys.readouterr().err  # refused without --force
    assert main([*argv, "--force"]) == 0


def test_the_whole_job_is_deterministic(tmp_path: Path) -> None:
    from tiny_models import tiny_alexnet, write_images

    write_images(tmp_path, 2, size=20)
    network = _network(tiny_alexnet(), 16)
    first, second = (run_invariance(network, tmp_path, count=2, unit=("features.3", 0), pairs=5, progress=False).to_dict() for _ in range(2))
    assert first == second and first["late_layer"] == "features.3" and first["images"][0]["curves"][0]["unit"] is not None
