"""An interrupted scan resumes where it was saved and ends with the same hits."""

import json

import pytest
import torch
from torch import nn

from convscope.cli import main
from convscope.scan.scan import ScanState, scan
from tiny_models import write_images


def batches(count: int, size: int, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, count, size):
        n = min(size, count - start)
        pixels = torch.randint(0, 256, (n, 3, 12, 12), dtype=torch.uint8, generator=g)
        ok = torch.ones(n, dtype=torch.bool)
        ok[0] = start != 4  # one unreadable image, to carry `failed` across the resume
        out.append((pixels, torch.arange(start, start + n), ok, ["" if good else "broken" for good in ok]))
    return out


def test_resumed_scan_equals_an_uninterrupted_one(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 4, 3))
    layers, data = [("0", 5), ("2", 4)], batches(20, 4)
    whole = scan(model, layers, data, lambda p: p.float() / 255, k=3, signature_images=6, progress=False)

    saved = []
    state = ScanState(layers, 3, 6, torch.device("cpu"))

    def interrupted():
        yield from data[:3]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan(model, layers, interrupted(), lambda p: p.float() / 255, k=3, signature_images=6, progress=False,
             state=state, checkpoint=lambda s: (torch.save(s.state_dict(), tmp_path / "s.pt"), saved.append(s.seen)),
             checkpoint_every=8)  # fmt: skip
    assert saved == [8]  # saved after the second batch, not after the third
    resumed = ScanState(layers, 3, 6, torch.device("cpu"))
    resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert resumed.seen == 8
    again = scan(model, layers, data[2:], lambda p: p.float() / 255, k=3, signature_images=6, progress=False, state=resumed)
    for name, _ in layers:
        a, b = whole.layers[name], again.layers[name]
        assert torch.equal(a.topk.images, b.topk.images) and torch.equal(a.topk.positions, b.topk.positions)
        assert torch.allclose(a.mean, b.mean) and torch.equal(a.signature, b.signature)
    assert again.image_count == whole.image_count == 19 and again.failed == whole.failed == ((4, "broken"),)


def test_cli_resumes_after_ctrl_c_and_cleans_up(tmp_path, monkeypatch, capsys):
    import convscope.pipeline as pipeline

    write_images(tmp_path / "images", 12, classes=("a", "b"))
    args = ["atlas", "tiny_models:ColourNet", str(tmp_path / "images"), "--input-size", "16", "-q", "--batch-size", "2"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    monkeypatch.setattr(pipeline, "CHECKPOINT_EVERY", 4)
    real_loader = pipeline.make_loader
    consumed = []

    def interrupted_loader(dataset, **kwargs):
        for batch in real_loader(dataset, **kwargs):
            if len(consumed) == 5:
                raise KeyboardInterrupt
            consumed.append(batch)
            yield batch

    monkeypatch.setattr(pipeline, "make_loader", interrupted_loader)
    assert main([*args, "--out", str(tmp_path / "atlas")]) == 130
    state_file = tmp_path / ".atlas.scan.pt"
    assert state_file.is_file() and not (tmp_path / "atlas").exists()
    monkeypatch.setattr(pipeline, "make_loader", real_loader)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "atlas")]) == 0
    assert "resuming an interrupted scan at image 8 of 12" in capsys.readouterr().err
    assert not state_file.exists()
    plain = json.loads((tmp_path / "plain/layers/conv/hits.json").read_text())
    assert json.loads((tmp_path / "atlas/layers/conv/hits.json").read_text()) == plain


def test_a_state_from_another_scan_is_ignored(tmp_path, capsys):
    write_images(tmp_path / "images", 6)
    (tmp_path / ".atlas.scan.pt").write_bytes(b"not a scan state")
    args = ["atlas", "tiny_models:ColourNet", str(tmp_path / "images"), "--input-size", "16", "-q", "--out", str(tmp_path / "atlas")]
    assert main(args) == 0
    assert "resuming" not in capsys.readouterr().err
