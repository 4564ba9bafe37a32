"""Scanning on many processes gives the atlas one process gives, byte for byte.

In-process: shards scanned apart and merged equal one pass (hits against a brute-force sort,
statistics bit for bit). Across processes: ``torchrun`` with 1, 2 and 3 gloo processes over
uneven shards with planted exact ties writes identical atlases; a rank that fails fails the
whole run with one message and writes nothing; the same command then resumes every rank.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from convscope.atlas.records import expand, parse_data_script
from convscope.scan.distributed import shard
from convscope.scan.scan import ScanState, scan
from convscope.scan.topk import RunningTopK
from tiny_models import write_images

MODEL = '''
import os
import torch
from torch import nn


class Net(nn.Module):
    """Two seeded convs (conv2 has 130 units: three chunks of pass 2). Raises on the rank
    CONVSCOPE_TEST_FAIL names ("rank:calls"): after that many forward passes, or, with
    "rank:grad", on a forward pass whose input needs a gradient (pass 2's projections and
    feature visualisations, never the scan)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.relu, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 130, 3, stride=2)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        rank, _, after = os.environ.get("CONVSCOPE_TEST_FAIL", "::").partition(":")
        if rank == os.environ.get("RANK") and (x.requires_grad if after == "grad" else self.calls > int(after)):
            raise RuntimeError("planted failure")
        return self.conv2(self.relu(self.conv1(x)))


def make():
    return Net()
'''


def test_shards_are_contiguous_whole_batches_covering_every_image_once() -> None:
    for images, batch, world in [(27, 4, 3), (29, 4, 3), (5, 4, 3), (100, 7, 4), (1, 1, 2)]:
        parts = [shard(images, batch, rank, world) for rank in range(world)]
        covered = [i for p in parts for i in range(p.start, p.stop)]
        assert covered == list(range(images))
        assert all(p.start % batch == 0 for p in parts)
        sizes = [-(-(p.stop - p.start) // batch) for p in parts]
        assert max(sizes) - min(sizes) <= 1  # as even as whole batches allow


def test_merged_topk_equals_a_brute_force_sort_with_ties() -> None:
    rng = np.random.default_rng(0)
    values = torch.from_numpy(rng.integers(0, 4, size=(40, 3)).astype(np.float32))  # many exact ties
    values[5, 1] = float("nan")
    k = 6
    parts = []
    for lo, hi in [(0, 12), (12, 13), (13, 40)]:
        topk = RunningTopK(3, k)
        for start in range(lo, hi, 5):
            stop = min(start + 5, hi)
            topk.add(values[start:stop], torch.arange(start, stop), torch.zeros(stop - start, 3, dtype=torch.long) + torch.arange(start, stop)[:, None])
        parts.append(topk)
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part.result())
    result = merged.result()
    for unit in range(3):
        finite = [(float(values[i, unit]), i) for i in range(40) if torch.isfinite(values[i, unit])]
        expected = sorted(finite, key=lambda pair: (-pair[0], pair[1]))[:k]
        assert result.images[unit].tolist() == [i for _, i in expected]
        assert result.values[unit].tolist() == [v for v, _ in expected]
        assert result.positions[unit].tolist() == [i for _, i in expected]  # the position travels with its hit


def test_shards_scanned_apart_and_merged_equal_one_pass() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3))
    rng = np.random.default_rng(1)
    pixels = torch.from_numpy(rng.integers(0, 256, size=(23, 3, 10, 10), dtype=np.uint8))
    pixels[17] = pixels[2]  # exact ties across a shard boundary
    labels = (np.arange(23) % 3).tolist()
    layers, batch, k = [("0", 4), ("2", 3)], 4, 5
    sample = torch.tensor([1, 2, 9, 17, 22])

    def batches(lo: int, hi: int):
        for start in range(lo, hi, batch):
            stop = min(start + batch, hi)
            ok = torch.ones(stop - start, dtype=torch.bool)
            ok[0] = start != 8  # one unreadable image
            yield pixels[start:stop], torch.arange(start, stop), ok, ["" if good else "broken" for good in ok]

    def run(lo: int, hi: int) -> ScanState:
        state = ScanState(layers, k, sample, torch.device("cpu"), labels, 3)
        state.seen, state.block_size, state.block = lo, batch, lo // batch  # what scan.job does for a shard
        scan(model, layers, batches(lo, hi), lambda p: p.float() / 255, k=k, progress=False, state=state)
        return state

    whole = run(0, 23).result()
    for world in (3, 4):  # with 4, the last shard is the short last batch alone
        parts = [run(s.start, s.stop) for s in (shard(23, batch, rank, world) for rank in range(world))]
        for part in parts[1:]:
            parts[0].merge(part)
        _same_scan(parts[0].result(), whole, layers)


def _same_scan(merged, whole, layers) -> None:
    assert merged.image_count == whole.image_count == 22 and merged.failed == whole.failed == ((8, "broken"),)
    for name, _ in layers:
        a, b = merged.layers[name], whole.layers[name]
        for kept in ("topk", "bottom"):
            for field in ("values", "images", "positions"):
                assert torch.equal(getattr(getattr(a, kept), field), getattr(getattr(b, kept), field)), (name, kept, field)
        assert torch.equal(a.signature, b.signature) and torch.equal(a.bottom_min, b.bottom_min)
        for x, y in [(a.moments.mean, b.moments.mean), (a.moments.std, b.moments.std), (a.class_means.means, b.class_means.means),
                     (a.distribution.quantiles, b.distribution.quantiles), (a.distribution.counts, b.distribution.counts)]:  # fmt: skip
            assert np.array_equal(x, y, equal_nan=True), name  # bit for bit, not to rounding


# --- torchrun: real processes over gloo ---


def _torchrun(processes: int, args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "convscope", *args]
    environment = {**os.environ, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


def _atlas_files(atlas: Path) -> dict[str, bytes]:
    """Every file of an atlas, the manifest without its time stamp."""
    files = {str(p.relative_to(atlas)): p.read_bytes() for p in sorted(atlas.rglob("*")) if p.is_file()}
    manifest = json.loads(files.pop("manifest.json"))
    del manifest["created"]
    files["manifest.json"] = json.dumps(manifest, sort_keys=True).encode()
    files.pop("viewer/data/manifest.js")  # the manifest again, with its time stamp
    return files


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("distributed")
    (root / "net.py").write_text(MODEL)
    write_images(root / "images", 29, classes=("a", "b", "c"))
    shutil.copy(root / "images/a/img000.png", root / "images/c/img100.png")  # planted exact ties, in other shards
    shutil.copy(root / "images/a/img000.png", root / "images/b/img101.png")
    args = ["atlas", f"{root / 'net.py'}:make", str(root / "images"), "--input-size", "16", "--batch-size", "4", "-q"]
    return root, args


#: Pass 2 with every view (projections, occlusion maps, feature visualisations) and every figure (grids, mosaics).
PASS2 = ["--projection", "deconvnet", "--occlusion", "--featurevis", "3", "--grids"]


@pytest.mark.slow
def test_one_two_and_three_processes_write_the_same_atlas(job) -> None:
    root, args = job
    atlases = {}
    for processes in (1, 2, 3):  # 31 images in batches of 4: 8 batches dealt 4+4 and 2+3+3; 4 chunks of units dealt 2+2 and 2+1+1
        # torchrun gives each process one thread only when it starts several; feature
        # visualisations differ in their last bits with the thread count (see the README)
        run = _torchrun(processes, [*args, *PASS2, "--out", str(root / f"p{processes}")], env={"OMP_NUM_THREADS": "1"})
        assert run.returncode == 0, run.stderr[-3000:]
        atlases[processes] = _atlas_files(root / f"p{processes}")
        assert not list(root.glob(f".p{processes}.scan*.pt"))  # the state files are gone
    expected = atlases[1]
    tied = [
        (layer, unit["unit"])
        for layer in ("conv1", "conv2")
        for unit in expand(parse_data_script(expected[f"layers/{layer}/hits.js"].decode()))["units"]
        for kept in (unit["hits"], unit["bottom"])
        if len({h["activation"] for h in kept}) < len(kept)
    ]
    assert tied, "the planted copies make exact ties among some unit's hits"
    assert all(any(kind in name for name in expected) for kind in ("projection", "occlusion", "featurevis", "mosaic"))
    for processes in (2, 3):
        got = atlases[processes]
        assert sorted(got) == sorted(expected)
        different = [name for name in expected if got[name] != expected[name]]
        assert not different, (processes, different)


@pytest.mark.slow
@pytest.mark.parametrize("rank", [1, 0])
def test_a_rank_failing_in_pass_2_fails_every_rank_and_writes_nothing(job, rank: int) -> None:
    root, args = job
    out = root / f"pass2-fails-{rank}"
    command = [*args, "--projection", "deconvnet", "--checkpoint-every", "4", "--out", str(out)]
    failed = _torchrun(3, command, env={"CONVSCOPE_TEST_FAIL": f"{rank}:grad"})
    assert failed.returncode != 0
    assert f"writing the atlas failed on rank {rank} of 3 (RuntimeError: planted failure); nothing was written" in failed.stderr, failed.stderr[-3000:]
    assert not out.exists() and not list(root.glob(f".{out.name}*.partial*"))
    assert len(list(root.glob(f".{out.name}.scan.rank*of3.pt"))) == 3  # the finished scan is kept for the rerun
    again = _torchrun(3, command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming" in again.stderr and (out / "manifest.json").exists()
    assert not list(root.glob(f".{out.name}.scan*"))


@pytest.mark.slow
def test_a_failing_rank_fails_the_run_and_the_same_command_resumes(job) -> None:
    root, args = job
    out = ["--out", str(root / "resumed"), "--checkpoint-every", "4"]
    failed = _torchrun(3, [*args, *out], env={"CONVSCOPE_TEST_FAIL": "1:3"})  # rank 1 fails after 3 forward passes (dry runs included)
    assert failed.returncode != 0
    assert "the scan failed on rank 1 of 3 (RuntimeError: planted failure); nothing was written" in failed.stderr
    assert not (root / "resumed").exists() and not list(root.glob(".resumed*.partial*"))
    saved = sorted(p.name for p in root.glob(".resumed.scan.rank*of3.pt"))
    assert saved == [f".resumed.scan.rank{r}of3.pt" for r in range(3)]
    again = _torchrun(3, [*args, *out])
    assert again.returncode == 0, again.stderr[-3000:]
    resumed_at = re.search(r"resuming an interrupted scan at image (\d+) of rank 1's 8\.\.19", again.stderr)
    assert resumed_at and 8 < int(resumed_at.group(1)) < 20, again.stderr[-3000:]  # rank 1 goes on from its save
    assert not list(root.glob(".resumed.scan*"))
    one = subprocess.run([sys.executable, "-m", "convscope", *args, "--out", str(root / "one")], capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    assert _atlas_files(root / "resumed") == _atlas_files(root / "one")  # one process, without torchrun
