"""The test sets a worker runs models on, prepared once per worker process.

* hidden input: every private image (+ every public image when the benchmark has the public set, for
  the pooled clinical view), copied once into ``DATA_DIR/inputs/hidden-<manifest digest>``;
* preflight input: the first `n` public images by file name, or, without a public set, `n`
  synthetic grey images of the private images' size (seeded noise: nothing of the hidden set);
* the test-set manifest digest (private images + labels) for the reproducibility record.

Folders are built under a temporary name and renamed into place, so a crash never leaves a
half-written input that a later run would trust.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from runner.io_contract import prepare_input
from server.benchmark.dataset import Benchmark
from server.benchmark.labels import LabelTable
from server.benchmark.manifest import build_manifest

SYNTHETIC_PREFIX = "preflight_"


@dataclass(frozen=True)
class EvaluationSet:
    private: LabelTable
    public: LabelTable | None
    hidden_filenames: tuple[str, ...]
    hidden_input: Path
    preflight_filenames: tuple[str, ...]
    preflight_input: Path
    preflight_source: str  # "public" | "synthetic"
    manifest_digest: str
    public_manifest_digest: str | None

    @classmethod
    def prepare(cls, benchmark_dir: Path, data_dir: Path, n_preflight: int) -> EvaluationSet:
        bench = Benchmark.open(benchmark_dir)
        private = bench.read_private()
        public = bench.read_public()
        manifest = build_manifest(bench.private_images, bench.private_labels, private.filenames).digest()
        public_manifest = None
        sources = [bench.private_images / name for name in private.filenames]
        if public is not None and bench.public_images is not None and bench.public_labels is not None:
            public_manifest = build_manifest(
                bench.public_images, bench.public_labels, public.filenames
            ).digest()
            sources += [bench.public_images / name for name in public.filenames]
        inputs = data_dir / "inputs"
        key = manifest[:16] + (f"-{public_manifest[:8]}" if public_manifest else "")
        hidden = _materialise(inputs / f"hidden-{key}", sources)
        if public is not None and bench.public_images is not None:
            names = sorted(public.filenames)[:n_preflight]
            preflight = _materialise(
                inputs / f"preflight-public-{key}-{len(names)}", [bench.public_images / n for n in names]
            )
            source = "public"
        else:
            names, preflight = _synthetic_preflight(
                inputs, bench.private_images / private.filenames[0], n_preflight
            )
            source = "synthetic"
        return cls(
            private=private,
            public=public,
            hidden_filenames=tuple(p.name for p in sources),
            hidden_input=hidden,
            preflight_filenames=tuple(names),
            preflight_input=preflight,
            preflight_source=source,
            manifest_digest=manifest,
            public_manifest_digest=public_manifest,
        )


def _materialise(target: Path, images: list[Path]) -> Path:
    if (target / "manifest.csv").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        prepare_input(staging / "input", images)
        staging.chmod(0o755)
        (staging / "input").rename(target)
    except FileExistsError:
        pass  # another worker finished the same folder first
    except OSError:
        if not (target / "manifest.csv").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _synthetic_preflight(inputs: Path, like: Path, n: int) -> tuple[list[str], Path]:
    with Image.open(like) as img:
        width, height = img.size
    target = inputs / f"preflight-synthetic-{width}x{height}-{n}"
    names = [f"{SYNTHETIC_PREFIX}{i:04d}.png" for i in range(1, n + 1)]
    if (target / "manifest.csv").is_file():
        return names, target
    inputs.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=inputs))
    try:
        rng = np.random.default_rng(0)
        paths = []
        for name in names:
            pixels = rng.integers(0, 256, size=(height, width), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(scratch / name)
            paths.append(scratch / name)
        return names, _materialise(target, paths)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
