"""``GET /api/v1/test-set/shape`` (anyone): the hidden set's shape and the hidden run's limits.

What ``csawm check --robust`` needs to run an image as the hidden run will (docs/submitting.md):
how many private and public images the hidden run mounts, their size and bit depth, their name
patterns, and the time, memory, CPU and GPU limits. The rule (`server.benchmark.shape`): figures of
the whole set only, never one image's name, size, digest or label, so the answer carries nothing a
model could not already be told. ``test_set`` is null when this server holds no test set
(``CSAWM_BENCHMARK_DIR`` unset: remote workers hold it) or cannot read it.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from fastapi import APIRouter
from pydantic import BaseModel

from server.benchmark.dataset import Benchmark, BenchmarkError
from server.benchmark.shape import HiddenSetShape, measure
from server.core.deps import SettingsDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


class NamePatternsOut(BaseModel):
    private: str | None
    public: str | None


class HiddenSetOut(BaseModel):
    private_images: int
    public_images: int
    width: int
    height: int
    bit_depth: int
    name_patterns: NamePatternsOut


class RunLimitsOut(BaseModel):
    timeout_s: float
    memory_bytes: int
    cpus: float
    gpus: int


class ShapeOut(BaseModel):
    test_set: HiddenSetOut | None
    limits: RunLimitsOut


def _stamp(root: Path) -> int:
    """Changes when the operator replaces the test set (its label files or image folders)."""
    images = root / "images" / "preprocessed"
    return sum(
        p.stat().st_mtime_ns for p in (root / "labels", images / "private", images / "test") if p.exists()
    )


@functools.lru_cache(maxsize=4)
def _measured(root: Path, stamp: int) -> HiddenSetShape | None:
    """Measured once per test set (an anonymous request never makes the server read ~1,000 files)."""
    try:
        bench = Benchmark.open(root)
        private = [bench.private_images / n for n in bench.read_private().filenames]
        public_table = bench.read_public()
        public = (
            []
            if public_table is None or bench.public_images is None
            else [bench.public_images / n for n in public_table.filenames]
        )
        return measure(private, public)
    except (BenchmarkError, OSError, ValueError) as exc:
        log.warning("the test set's shape is not published: %s", exc)
        return None


def hidden_set_shape(root: Path | None) -> HiddenSetShape | None:
    """The shape of the test set under `root`, or None without one (or one that cannot be read)."""
    if root is None:
        return None
    try:
        stamp = _stamp(root)
    except OSError:
        return None
    return _measured(root, stamp)


@router.get("/api/v1/test-set/shape", response_model=ShapeOut)
def shape_route(settings: SettingsDep) -> ShapeOut:
    """The hidden set's shape (counts, size, bit depth, name patterns) and the hidden run's limits."""
    shape = hidden_set_shape(settings.benchmark_dir)
    run = settings.run
    return ShapeOut(
        test_set=None if shape is None else HiddenSetOut(
            private_images=shape.private_images,
            public_images=shape.public_images,
            width=shape.width,
            height=shape.height,
            bit_depth=shape.bit_depth,
            name_patterns=NamePatternsOut(private=shape.private_pattern, public=shape.public_pattern),
        ),
        limits=RunLimitsOut(
            timeout_s=run.timeout.total_seconds(), memory_bytes=run.memory, cpus=run.cpus, gpus=run.gpus
        ),
    )  # fmt: skip
