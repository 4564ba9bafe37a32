"""An interrupted scan resumes where it was saved and ends with the same hits."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from convscope.cli import main
from convscope.scan.scan import ScanState, scan
from convscope.atlas.format import read_hits
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


SAMPLE = torch.tensor([1, 5, 9, 14, 19])  # signature images on both sides of the interruption


def test_resumed_scan_equals_an_uninterrupted_one(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Conv2d(5, 4, 3))
    layers, data = [("0", 5), ("2", 4)], batches(20, 4)
    whole = scan(model, layers, data, lambda p: p.float() / 255, k=3, signature=SAMPLE, progress=False)

    saved = []
    state = ScanState(layers, 3, SAMPLE, torch.device("cpu"))

    def interrupted():
        yield from data[:3]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan(model, layers, interrupted(), lambda p: p.float() / 255, k=3, signature=SAMPLE, progress=False,
             state=state, checkpoint=lambda s: (torch.save(s.state_dict(), tmp_path / "s.pt"), saved.append(s.seen)),
             checkpoint_every=8)  # fmt: skip
    assert saved == [8]  # saved after the second batch, not after the third
    resumed = ScanState(layers, 3, SAMPLE, torch.device("cpu"))
    resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert resumed.seen == 8
    again = scan(model, layers, data[2:], lambda p: p.float() / 255, k=3, signature=SAMPLE, progress=False, state=resumed)
    for name, _ in layers:
        a, b = whole.layers[name], again.layers[name]
        assert torch.equal(a.topk.images, b.topk.images) and torch.equal(a.topk.positions, b.topk.positions)
        assert torch.allclose(a.mean, b.mean) and torch.equal(a.signature, b.signature)
        assert torch.equal(a.bottom.images, b.bottom.images) and torch.equal(a.bottom_min, b.bottom_min)
        assert np.array_equal(a.distribution.quantiles, b.distribution.quantiles)
        assert np.array_equal(a.moments.firing_rate, b.moments.firing_rate)
    assert again.image_count == whole.image_count == 19 and again.failed == whole.failed == ((4, "broken"),)


def test_cli_resumes_after_ctrl_c_and_cleans_up(tmp_path, monkeypatch, capsys):
    from convscope.scan import job as pipeline  # where pass 1 loads its batches and saves its state

    write_images(tmp_path / "images", 12, classes=("a", "b"))
    args = ["atlas", "tiny_models:ColourNet", str(tmp_path / "images"), "--input-size", "16", "-q", "--batch-size", "2"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    monkeypatch.setattr(pipeline, "CHECKPOINT_EVERY", 4)
    real_loader = pipeline.frame_batches
    consumed = []

    def interrupted_loader(*args, **kwargs):
        for batch in real_loader(*args, **kwargs):
            if len(consumed) == 5:
                raise KeyboardInterrupt
            consumed.append(batch)
            yield batch

    monkeypatch.setattr(pipeline, "frame_batches", interrupted_loader)
    assert main([*args, "--out", str(tmp_path / "atlas")]) == 130
    state_file = tmp_path / ".atlas.scan.pt"
    assert state_file.is_file() and not (tmp_path / "atlas").exists()
    monkeypatch.setattr(pipeline, "frame_batches", real_loader)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "atlas")]) == 0
    assert "resuming an interrupted scan at image 8 of 12" in capsys.readouterr().err
    assert not state_file.exists()
    plain = read_hits(tmp_path / "plain", "conv")
    assert read_hits(tmp_path / "atlas", "conv") == plain


def test_a_state_from_another_scan_is_ignored(tmp_path, capsys):
    write_images(tmp_path / "images", 6)
    (tmp_path / ".atlas.scan.pt").write_bytes(b"not a scan state")
    args = ["atlas", "tiny_models:ColourNet", str(tmp_path / "images"), "--input-size", "16", "-q", "--out", str(tmp_path / "atlas")]
    assert main(args) == 0
    assert "resuming" not in capsys.readouterr().err


# --- Resume only the same job: parameters, image sizes and times; --no-resume; the Ctrl-C message ---

COLOUR = ["atlas", "tiny_models:ColourNet", "--input-size", "16", "-q", "--batch-size", "2"]


def interrupt_after(monkeypatch, batches: int, every: int = 4) -> None:
    """Make the next scan save its state every ``every`` images and raise Ctrl-C after ``batches`` batches."""
    from convscope.scan import job as pipeline  # where pass 1 loads its batches and saves its state

    real_loader = pipeline.frame_batches
    monkeypatch.setattr(pipeline, "CHECKPOINT_EVERY", every)

    def interrupted_loader(*args, **kwargs):
        for count, batch in enumerate(real_loader(*args, **kwargs)):
            if count == batches:
                monkeypatch.setattr(pipeline, "frame_batches", real_loader)  # the next run is not interrupted
                raise KeyboardInterrupt
            yield batch

    monkeypatch.setattr(pipeline, "frame_batches", interrupted_loader)


def test_model_digest_sees_parameters_buffers_and_dtypes():
    from convscope.scan.resume import model_digest

    def make():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))

    a, b = make(), make()  # unseeded: two different random initialisations
    assert model_digest(a) != model_digest(b)
    b.load_state_dict(a.state_dict())
    assert model_digest(a) == model_digest(b)
    with torch.no_grad():
        b[1].running_mean[2] += 1e-6  # a buffer, not a parameter
    assert model_digest(a) != model_digest(b)
    b.load_state_dict(a.state_dict())
    assert model_digest(a) != model_digest(b.double())
    assert model_digest(torch.jit.script(a)) == model_digest(a)  # a TorchScript copy holds the same state


def test_two_random_initialisations_of_one_factory_do_not_resume_each_other(tmp_path, monkeypatch, capsys):
    body = "from torch import nn\nimport torch\n\ndef make():\n    {seed}return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))\n"
    (tmp_path / "random.py").write_text(body.format(seed=""))  # unseeded: another model on every call
    (tmp_path / "seeded.py").write_text(body.format(seed="torch.manual_seed(0)\n    "))
    write_images(tmp_path / "images", 12)
    for name, resumes in (("seeded", True), ("random", False)):  # the seeded factory is the control
        args = ["atlas", f"{tmp_path / name}.py:make", str(tmp_path / "images"), "--input-size", "16", "-q",
                "--batch-size", "2", "--out", str(tmp_path / name)]  # fmt: skip
        interrupt_after(monkeypatch, 5)
        assert main(args) == 130
        assert (tmp_path / f".{name}.scan.pt").is_file()
        capsys.readouterr()
        assert main(args) == 0
        assert ("resuming an interrupted scan at image 8 of 12" in capsys.readouterr().err) == resumes, name
        assert not (tmp_path / f".{name}.scan.pt").exists()


@pytest.mark.parametrize("change", ["mtime", "size"])
def test_an_image_touched_or_resized_invalidates_the_saved_state(tmp_path, monkeypatch, capsys, change):
    import os
    import shutil

    paths = write_images(tmp_path / "images", 12)
    args = [*COLOUR, str(tmp_path / "images"), "--out", str(tmp_path / "atlas")]
    state_file, kept = tmp_path / ".atlas.scan.pt", tmp_path / "kept.pt"
    interrupt_after(monkeypatch, 5)
    assert main(args) == 130 and state_file.is_file()
    shutil.copy(state_file, kept)
    image = paths[3]  # an image the interrupted run had already scanned
    original, stat = image.read_bytes(), image.stat()
    if change == "mtime":
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    else:
        write_images(tmp_path / "other", 1, size=20)[0].replace(image)
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert image.stat().st_size != stat.st_size and image.stat().st_mtime_ns == stat.st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert "resuming" not in capsys.readouterr().err
    # Control: the same file back, with its time, and the same saved state resume.
    image.write_bytes(original)
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    shutil.copy(kept, state_file)
    assert main(args) == 0
    assert "resuming an interrupted scan at image 8 of 12" in capsys.readouterr().err


def test_no_resume_ignores_and_removes_a_saved_state(tmp_path, monkeypatch, capsys):
    write_images(tmp_path / "images", 12)
    args = [*COLOUR, str(tmp_path / "images"), "--out", str(tmp_path / "atlas")]
    state_file = tmp_path / ".atlas.scan.pt"
    assert main([*args[:-1], str(tmp_path / "plain")]) == 0
    interrupt_after(monkeypatch, 5)
    assert main(args) == 130 and state_file.is_file()
    interrupt_after(monkeypatch, 1)  # interrupted again before its first save
    capsys.readouterr()
    assert main([*args, "--no-resume"]) == 130
    err = capsys.readouterr().err
    assert "resuming" not in err and "no scan state was saved" in err and "resumes" not in err
    assert not state_file.exists()  # the old state is gone: the next run starts afresh
    interrupt_after(monkeypatch, 5)
    assert main(args) == 130 and state_file.is_file()
    assert main([*args, "--no-resume"]) == 0
    assert "resuming" not in capsys.readouterr().err and not state_file.exists()
    plain = read_hits(tmp_path / "plain", "conv")
    assert read_hits(tmp_path / "atlas", "conv") == plain


def test_ctrl_c_promises_a_resume_only_when_a_state_was_saved(tmp_path, monkeypatch, capsys):
    write_images(tmp_path / "images", 12)
    args = [*COLOUR, str(tmp_path / "images"), "--out", str(tmp_path / "atlas")]
    interrupt_after(monkeypatch, 1)  # before the first save (every 4 images = 2 batches)
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "no atlas was written" in err
    assert "no scan state was saved yet, so the same command starts the scan again" in err and "resumes" not in err
    interrupt_after(monkeypatch, 3)  # after the first save
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "the same command again resumes the scan from its last save" in err and "no scan state" not in err
    interrupt_after(monkeypatch, 4)
    assert main([*args, "--no-resume"]) == 130
    assert "the same command without --no-resume resumes the scan" in capsys.readouterr().err


LAZY_HEAD = '''import torch
from torch import nn


class WithAux(nn.Module):
    """A trunk and an auxiliary head (nn.LazyLinear) that runs only in training, as Inception's does."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.aux = nn.LazyLinear(2)

    def forward(self, x):
        y = self.features(x)
        return self.aux(y.flatten(1)) if self.training else y


def make():
    return WithAux()
'''


def test_a_lazy_module_that_never_ran_is_fingerprinted_not_a_crash(tmp_path, capsys):
    from convscope.scan.resume import model_digest

    (tmp_path / "aux.py").write_text(LAZY_HEAD)
    write_images(tmp_path / "images", 4)
    args = ["atlas", f"{tmp_path / 'aux.py'}:make", str(tmp_path / "images"), "--input-size", "12", "-q", "--out", str(tmp_path / "a")]
    assert main(args) == 0, capsys.readouterr().err
    assert [layer["name"] for layer in json.loads((tmp_path / "a" / "manifest.json").read_text())["layers"]] == ["features"]

    def lazy() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))

    model = lazy()
    before = model_digest(model)
    assert before == model_digest(lazy())
    model(torch.zeros(1, 3, 5, 5))  # initialises the lazy layer: its state, so the fingerprint, changes
    assert model_digest(model) != before
