"""The test sets a worker runs models on, prepared once per worker process.

* hidden input: every private image (+ every public image when the benchmark has the public set, for
  the pooled clinical view), copied once into ``DATA_DIR/inputs/hidden-<manifest digest>``;
* public input: the public images only, ``DATA_DIR/inputs/public-<manifest digests>``: the
  hidden input of a development phase (issue 19: a phase scored on the public set never mounts a
  private image, or its report would be a channel out of them);
* preflight input: the first `n` public images by file name, or, without a public set, `n`
  synthetic grey images of the private images' size (seeded noise: nothing of the hidden set);
* the test-set manifest digest (private images + labels) for the reproducibility record;
* `scored_on`: the set a run is mounted and scored on, by its phase's test set (issue 15): the
  private set, or, for a development phase, the public set and the public input.

Folders are built under a temporary name and renamed into place, so a crash never leaves a
half-written input that a later run would trust.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from runner.io_contract import prepare_input
from server.benchmark.dataset import Benchmark
from server.benchmark.manifest import build_manifest
from server.scoring.labels import LabelTable

SYNTHETIC_PREFIX = "preflight_"
TEST_SETS = ("private", "public")
# The inputs' names: their folders on the Kubernetes test-images volume (server.worker.test_set).
PREFLIGHT_INPUT = "preflight"
HIDDEN_INPUT = "hidden"
PUBLIC_INPUT = "public"


class NoPublicTestSet(LookupError):
    """A development phase scores on the public set, and this benchmark has none with labels."""


@dataclass(frozen=True)
class EvaluationSet:
    """The images a model runs on and the labels it is scored against.

    ``private`` is the evaluated label table and ``manifest_digest`` its manifest: the private set
    as prepared, or the public set in the view `scored_on("public")` returns. ``hidden_input`` is
    the folder the hidden stage mounts (named ``hidden_input_name`` on the Kubernetes volume), and
    ``hidden_private_images`` how many private images it holds: all of them, or none in that view.
    """

    private: LabelTable
    public: LabelTable | None
    hidden_filenames: tuple[str, ...]
    hidden_input: Path
    preflight_filenames: tuple[str, ...]
    preflight_input: Path
    preflight_source: str  # "public" | "synthetic"
    manifest_digest: str
    public_manifest_digest: str | None
    public_input: Path | None
    hidden_input_name: str
    hidden_private_images: int

    @classmethod
    def prepare(cls, benchmark_dir: Path, data_dir: Path, n_preflight: int) -> EvaluationSet:
        bench = Benchmark.open(benchmark_dir)
        private = bench.read_private()
        public = bench.read_public()
        manifest = build_manifest(bench.private_images, bench.private_labels, private.filenames).digest()
        public_manifest, public_paths = None, None
        if public is not None and bench.public_images is not None and bench.public_labels is not None:
            public_manifest = build_manifest(
                bench.public_images, bench.public_labels, public.filenames
            ).digest()
            public_paths = [bench.public_images / name for name in public.filenames]
        key = manifest[:16] + (f"-{public_manifest[:8]}" if public_manifest else "")
        sources = [bench.private_images / name for name in private.filenames] + (public_paths or [])
        hidden, public_input, names, preflight, source = materialise_inputs(
            data_dir / "inputs", key, f"public-{key}", sources, public_paths, n_preflight
        )
        return cls(
            private=private,
            public=public,
            hidden_filenames=tuple(p.name for p in sources),
            hidden_input=hidden,
            preflight_filenames=names,
            preflight_input=preflight,
            preflight_source=source,
            manifest_digest=manifest,
            public_manifest_digest=public_manifest,
            public_input=public_input,
            hidden_input_name=HIDDEN_INPUT,
            hidden_private_images=len(private.filenames),
        )

    def scored_on(self, test_set: str) -> EvaluationSet:
        """This set as a run of a phase scoring on `test_set` sees it: what its hidden stage mounts
        and what its predictions are scored against.

        ``"private"``: unchanged (every private image mounted, plus the public ones; the masking
        metrics on the private labels, the clinical view on public and private pooled).
        ``"public"`` (a development phase): the hidden stage mounts the public input, the public
        images only, and no private image (issue 19: its full report on the public labels would
        otherwise carry out what a model reads from the private ones); the public labels are the
        evaluated set, with the public manifest digest recorded (so a development run is never
        paired with a private one for ties or the Ladder), and the clinical view on the public rows
        alone. Raises `NoPublicTestSet` when the benchmark has no public set.
        """
        if test_set == "private":
            return self
        if test_set != "public":
            raise ValueError(f"test set must be one of {TEST_SETS}, not {test_set!r}")
        if self.public is None or self.public_manifest_digest is None or self.public_input is None:
            raise NoPublicTestSet(
                "this phase scores on the public test set, and the benchmark has no public labels "
                "(labels/CSAW-M_test_public.csv with its images)"
            )
        return replace(
            self, private=self.public, public=None, manifest_digest=self.public_manifest_digest,
            public_manifest_digest=None, hidden_filenames=self.public.filenames,
            hidden_input=self.public_input, hidden_input_name=PUBLIC_INPUT, hidden_private_images=0,
        )  # fmt: skip

    def hidden_input_for(self, test_set: str) -> tuple[Path, str]:
        """The hidden stage's input folder and volume name for `test_set` (`scored_on`)."""
        view = self.scored_on(test_set)
        return view.hidden_input, view.hidden_input_name


def materialise_inputs(
    inputs: Path, key: str, preflight_key: str, hidden: list[Path], public: list[Path] | None, n: int
) -> tuple[Path, Path | None, tuple[str, ...], Path, str]:
    """The inputs under `inputs` (module docstring): ``hidden-<key>`` (the `hidden` images),
    ``public-<key>`` (the `public` images; None without them) and the preflight input, the first
    `n` public images by name in ``preflight-<preflight_key>-<n>`` or `n` synthetic images of the
    first hidden image's size; with the preflight's names and its source."""
    hidden_input = _materialise(inputs / f"hidden-{key}", hidden)
    if public is None:
        names, preflight = _synthetic_preflight(inputs, hidden[0], n)
        return hidden_input, None, tuple(names), preflight, "synthetic"
    public_input = _materialise(inputs / f"public-{key}", public)
    chosen = sorted(public, key=lambda path: path.name)[:n]
    preflight = _materialise(inputs / f"preflight-{preflight_key}-{len(chosen)}", chosen)
    return hidden_input, public_input, tuple(p.name for p in chosen), preflight, "public"


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
