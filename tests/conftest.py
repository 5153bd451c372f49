"""Fixtures shared by every test area.

``synthetic_benchmark``: a small synthetic CSAW-M dataset root (server/benchmark/synth.py), generated
once per test session under pytest's temporary directory: 48 training, 64 public and 60 private
images at 64x52, seed 7. Treat it as read-only; tests that modify files copy it first.
``private_only_benchmark``: a copy of it without the public split (images and labels).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from server.benchmark.synth import generate

# The hidden stage's end is held to a one-minute grid by default (server.worker.stages.hold_to_grid);
# tests run their models without it, except tests/server/worker/test_end_grid.py, which sets it.
os.environ.setdefault("CSAWM_HIDDEN_END_GRID", "0")


@pytest.fixture(scope="session")
def synthetic_benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a generated dataset root in the CSAW-M layout (see the module docstring)."""
    root = tmp_path_factory.mktemp("csawm") / "synthetic"
    generate(root, seed=7, n_train=48, n_public=64, n_private=60, resolution=(64, 52), workers=1)
    return root


@pytest.fixture(scope="session")
def private_only_benchmark(tmp_path_factory: pytest.TempPathFactory, synthetic_benchmark: Path) -> Path:
    """The synthetic benchmark without its public split: no public set to mount or score on."""
    root = tmp_path_factory.mktemp("csawm-private-only") / "synthetic"
    shutil.copytree(synthetic_benchmark, root)
    shutil.rmtree(root / "images" / "preprocessed" / "test")
    (root / "labels" / "CSAW-M_test.csv").unlink()
    return root
