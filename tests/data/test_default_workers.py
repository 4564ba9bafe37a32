"""How many loader workers a scan gets when the user names none."""

from __future__ import annotations

import os

import pytest
import torch

from convscope.data import default_workers


@pytest.mark.parametrize(
    ("cpus", "processes", "expected"),
    [(16, 1, 8), (16, 2, 7), (16, 4, 3), (16, 8, 1), (16, 16, 1), (2, 1, 1), (1, 1, 1), (64, 1, 8)],
)
def test_a_gpu_gets_its_share_of_the_cpus_one_kept_for_the_process(monkeypatch, cpus: int, processes: int, expected: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert default_workers(torch.device("cuda", 0), processes) == expected


def test_a_cpu_scan_decodes_in_its_own_process() -> None:
    assert default_workers(torch.device("cpu"), 1) == 0
