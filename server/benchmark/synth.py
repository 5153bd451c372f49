"""Synthetic CSAW-M: a dataset root in the real layout, generated from a seed (``csawm synth``).

Output (the real CSAW-M layout, evaluation facts §2.1)::

    OUTDIR/images/preprocessed/train/train_<i>.png      8-bit grey PNG, H x W (default 632 x 512)
    OUTDIR/images/preprocessed/test/test_<i>.png        public test set
    OUTDIR/images/preprocessed/private/private_<i>.png  hidden test set
    OUTDIR/labels/CSAW-M_train.csv                      training layout (one expert's level)
    OUTDIR/labels/CSAW-M_test.csv                       public layout (Label = median of 5 levels)
    OUTDIR/labels/CSAW-M_test_private.csv               private layout (raw sort positions)
    OUTDIR/synthetic/latent.csv                         NOT part of CSAW-M, see below

``synthetic/latent.csv`` (``Filename;Latent_masking``, every image of every split) is the synthetic
ground truth the labels were simulated from; tests use it as an oracle. It is not part of the CSAW-M
layout: :class:`server.benchmark.dataset.Benchmark` ignores it, the runner mounts only
``images/preprocessed/<split>`` into model containers, and it must never be mounted there.

How the data arise (each step documented in its module):

1. :mod:`server.benchmark.cohort`: one woman per image with a latent masking ``m``; image features,
   LIBRA-like density, laterality and clinical endpoints follow from it.
2. :mod:`server.benchmark.annotators`: five simulated radiologists sort the public images (cut into
   8 ``numpy.array_split`` bins: levels; ``Label`` = median), sort the private images within a list
   with extra images later dropped (raw positions), and place each training image into one
   randomly chosen expert's bins.
3. :mod:`server.benchmark.images`: one preprocessed-looking PNG per woman.

Determinism: every random draw comes from ``numpy.random.SeedSequence(seed, spawn_key=...)`` with a
fixed key per purpose (per split for the cohorts, per expert for the annotations, per image for the
pixels), so the labels do not depend on the resolution, the public and private sets do not depend on
``n_train``, and images do not depend on how many worker processes draw them.

Writing is atomic: everything goes to a hidden temporary folder next to ``OUTDIR`` that is renamed
into place at the end (an existing ``OUTDIR`` is replaced only with ``force``), so a failure leaves
nothing partial behind.
"""

from __future__ import annotations

import csv
import enum
import io
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.benchmark import annotators
from server.benchmark.cohort import (
    PRIVATE_PREVALENCE,
    PUBLIC_PREVALENCE,
    TRAIN_PREVALENCE,
    Cohort,
    SplitPrevalence,
    draw_cohort,
    draw_masking,
)
from server.benchmark.images import Anatomy, ImageRenderer, write_png
from server.scoring.labels import COLUMNS, FILE_NAMES, LabelLayout

DEFAULT_RESOLUTION = (632, 512)
MIN_SIDE, MAX_SIDE = 16, 4096
MIN_TEST_IMAGES = 8
WINDOW_CENTER, WINDOW_WIDTH, PHOTOMETRIC = 2047, 4096, "MONOCHROME2"
LATENT_FILE = Path("synthetic") / "latent.csv"
_PARALLEL_MIN_IMAGES = 1000
_CHUNK = 200

ProgressCallback = Callable[[int, int], None]


class SynthError(ValueError):
    """Bad generator arguments or an output folder that may not be written."""


class Split(enum.StrEnum):
    """A CSAW-M split: its image folder and file-name prefix are the value."""

    TRAIN = "train"
    TEST = "test"
    PRIVATE = "private"


_LAYOUT = {Split.TRAIN: LabelLayout.TRAIN, Split.TEST: LabelLayout.PUBLIC, Split.PRIVATE: LabelLayout.PRIVATE}
_PREVALENCE: dict[Split, SplitPrevalence] = {
    Split.TRAIN: TRAIN_PREVALENCE,
    Split.TEST: PUBLIC_PREVALENCE,
    Split.PRIVATE: PRIVATE_PREVALENCE,
}
_SPLIT_CODE = {Split.TRAIN: 0, Split.TEST: 1, Split.PRIVATE: 2}
# spawn_key heads of the random streams; never reorder (it would change every dataset).
_COHORT_STREAM, _EXTRA_STREAM, _LOOK_STREAM, _ASSIGN_STREAM, _PLACE_STREAM, _IMAGE_STREAM = range(1, 7)


@dataclass(frozen=True)
class SplitLabels:
    """One simulated split: its women and the label columns that go into its CSV.

    ``experts`` holds levels 1..8 (test) or raw sort positions (private); ``annotator`` (train) is
    the index of the expert who placed each image (kept for tests; not a CSAW-M column).
    """

    split: Split
    filenames: tuple[str, ...]
    cohort: Cohort
    label: np.ndarray | None = None
    experts: np.ndarray | None = None
    annotator: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.filenames)


@dataclass(frozen=True)
class SyntheticLabels:
    """The label side of a synthetic dataset (no pixels)."""

    seed: int
    splits: dict[Split, SplitLabels]


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def simulate_labels(*, seed: int, n_train: int, n_public: int, n_private: int) -> SyntheticLabels:
    """Simulate the women and the five experts' annotations for all three splits."""
    _check_sizes(n_train, n_public, n_private)
    cohorts = {
        split: draw_cohort(_rng(seed, _COHORT_STREAM, _SPLIT_CODE[split]), n, _PREVALENCE[split])
        for split, n in ((Split.TRAIN, n_train), (Split.TEST, n_public), (Split.PRIVATE, n_private))
    }
    extra_rng = _rng(seed, _EXTRA_STREAM)
    n_extra = round(annotators.EXTRA_SORTED_SHARE * n_private)
    extra_masking = draw_masking(extra_rng, n_extra)
    extra_deviation = extra_rng.standard_normal(n_extra)

    public, private, train = cohorts[Split.TEST], cohorts[Split.PRIVATE], cohorts[Split.TRAIN]
    public_levels = np.empty((n_public, annotators.N_EXPERTS), dtype=np.int64)
    private_positions = np.empty((n_private, annotators.N_EXPERTS), dtype=np.int64)
    train_levels = np.empty((n_train, annotators.N_EXPERTS), dtype=np.int64)
    for k, expert in enumerate(annotators.EXPERTS):
        look = _rng(seed, _LOOK_STREAM, k)
        seen_public = annotators.perceive(expert, public.masking, public.density_deviation, look)
        public_levels[:, k] = annotators.levels_from_positions(annotators.sort_positions(seen_public))
        seen_private = annotators.perceive(expert, private.masking, private.density_deviation, look)
        seen_extra = annotators.perceive(expert, extra_masking, extra_deviation, look)
        private_positions[:, k] = annotators.private_positions(seen_private, seen_extra)
        seen_train = annotators.perceive(
            expert, train.masking, train.density_deviation, look, shift=expert.train_shift
        )
        train_levels[:, k] = annotators.place_in_bins(
            seen_train, seen_public, public_levels[:, k], _rng(seed, _PLACE_STREAM, k)
        )
    annotator = _rng(seed, _ASSIGN_STREAM).integers(0, annotators.N_EXPERTS, size=n_train)

    def names(split: Split, n: int) -> tuple[str, ...]:
        return tuple(f"{split.value}_{i}.png" for i in range(1, n + 1))

    return SyntheticLabels(
        seed=seed,
        splits={
            Split.TRAIN: SplitLabels(
                Split.TRAIN,
                names(Split.TRAIN, n_train),
                train,
                label=train_levels[np.arange(n_train), annotator],
                annotator=annotator,
            ),
            Split.TEST: SplitLabels(
                Split.TEST,
                names(Split.TEST, n_public),
                public,
                label=np.median(public_levels, axis=1).astype(np.int64),
                experts=public_levels,
            ),
            Split.PRIVATE: SplitLabels(
                Split.PRIVATE, names(Split.PRIVATE, n_private), private, experts=private_positions
            ),
        },
    )


def label_csv(labels: SplitLabels) -> str:
    """The split's CSAW-M label file as text (``;``-separated, the exact columns of its layout)."""
    layout = _LAYOUT[labels.split]
    c = labels.cohort
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(COLUMNS[layout])
    for i, name in enumerate(labels.filenames):
        row: list[str] = [name]
        if labels.label is not None:
            row.append(str(int(labels.label[i])))
        if labels.experts is not None:
            row.extend(str(int(v)) for v in labels.experts[i])
        row.extend(
            str(int(flag[i]))
            for flag in (c.if_cancer, c.if_interval_cancer, c.if_large_invasive_cancer, c.if_composite)
        )
        row.extend([c.laterality[i], str(WINDOW_CENTER), str(WINDOW_WIDTH), PHOTOMETRIC])
        row.extend(
            f"{float(v[i]):.4f}" for v in (c.libra_percent_density, c.libra_dense_area, c.libra_breast_area)
        )
        writer.writerow(row)
    return out.getvalue()


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate` wrote, for the CLI and for logs."""

    root: Path
    seed: int
    resolution: tuple[int, int]
    counts: dict[str, dict[str, int]]
    private_max_position: int
    seconds: float
    images_per_second: float
    workers: int

    def lines(self) -> list[str]:
        """Short human summary."""
        h, w = self.resolution
        out = [f"wrote synthetic CSAW-M to {self.root} (seed {self.seed}, {h}x{w})"]
        for split, c in self.counts.items():
            out.append(
                f"  {split:<8}{c['images']:>6} images  cancer {c['cancer']:>5}  interval {c['interval']:>4}"
                f"  large invasive {c['large_invasive']:>4}  composite {c['composite']:>4}"
            )
        if "private" in self.counts:
            out.append(
                f"  private Expert_k positions go up to {self.private_max_position} "
                f"for {self.counts['private']['images']} rows"
            )
        out.append(
            f"  {self.seconds:.1f} s, {self.images_per_second:.0f} images/s ({self.workers} worker(s))"
        )
        out.append(f"  synthetic ground truth (not CSAW-M; never mount it into models): {LATENT_FILE}")
        return out


def parse_resolution(text: str) -> tuple[int, int]:
    """``"632x512"`` -> ``(632, 512)`` (height x width)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise SynthError(f"resolution {text!r} is not HxW, e.g. 632x512")
    height, width = int(parts[0]), int(parts[1])
    _check_resolution((height, width))
    return height, width


def _check_resolution(resolution: tuple[int, int]) -> None:
    for side in resolution:
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise SynthError(
                f"resolution {resolution[0]}x{resolution[1]}: each side must be in {MIN_SIDE}..{MAX_SIDE}"
            )


def _check_sizes(n_train: int, n_public: int, n_private: int) -> None:
    if n_train < 0:
        raise SynthError(f"n_train must be >= 0, got {n_train}")
    for name, n in (("n_public", n_public), ("n_private", n_private)):
        if n < MIN_TEST_IMAGES:
            raise SynthError(f"{name} must be >= {MIN_TEST_IMAGES} (8 expert bins), got {n}")


def generate(
    outdir: Path,
    *,
    seed: int = 0,
    n_train: int = 9523,
    n_public: int = 497,
    n_private: int = 475,
    resolution: tuple[int, int] = DEFAULT_RESOLUTION,
    force: bool = False,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> SynthSummary:
    """Write a synthetic CSAW-M dataset root to ``outdir`` (module docstring for the layout).

    Parameters
    ----------
    outdir : Path
        Must not exist or be empty, unless ``force`` (then it is replaced, atomically).
    seed : int
        Same seed and sizes give byte-identical files.
    n_train, n_public, n_private : int
        Images per split; the test sets need at least 8 (one per expert bin). ``n_train = 0``
        writes no training folder or file.
    resolution : (int, int)
        Height x width of every PNG.
    workers : int, optional
        Processes rendering images; default: up to 8 CPUs for 1,000 images or more, else 1.
    progress : callable, optional
        Called as ``progress(images_done, images_total)`` while rendering.

    Raises
    ------
    SynthError
        Bad sizes or resolution, or ``outdir`` not empty without ``force``.
    """
    started = time.perf_counter()
    outdir = Path(outdir)
    check_arguments(
        outdir, n_train=n_train, n_public=n_public, n_private=n_private, resolution=resolution, force=force
    )
    labels = simulate_labels(seed=seed, n_train=n_train, n_public=n_public, n_private=n_private)
    total = n_train + n_public + n_private
    n_workers = workers if workers is not None else _default_workers(total)
    if n_workers < 1:
        raise SynthError(f"workers must be >= 1, got {n_workers}")

    outdir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.tmp-", dir=outdir.parent))
    try:
        os.chmod(staging, 0o755)  # mkdtemp makes 0700; model containers run as another uid
        _write_labels(staging, labels)
        _render_all(staging, labels, seed=seed, resolution=resolution, workers=n_workers, progress=progress)
        _swap_into_place(staging, outdir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    seconds = time.perf_counter() - started
    counts = {
        split.value: {
            "images": len(s),
            "cancer": int(s.cohort.if_cancer.sum()),
            "interval": int(s.cohort.if_interval_cancer.sum()),
            "large_invasive": int(s.cohort.if_large_invasive_cancer.sum()),
            "composite": int(s.cohort.if_composite.sum()),
        }
        for split, s in labels.splits.items()
        if len(s)
    }
    private = labels.splits[Split.PRIVATE].experts
    assert private is not None
    return SynthSummary(
        root=outdir,
        seed=seed,
        resolution=resolution,
        counts=counts,
        private_max_position=int(private.max()),
        seconds=seconds,
        images_per_second=total / seconds if seconds > 0 else float("inf"),
        workers=n_workers,
    )


def check_arguments(
    outdir: Path, *, n_train: int, n_public: int, n_private: int, resolution: tuple[int, int], force: bool
) -> None:
    """Everything :func:`generate` refuses up front, as a :class:`SynthError` (nothing is written)."""
    _check_resolution(resolution)
    _check_sizes(n_train, n_public, n_private)
    _check_outdir(Path(outdir), force=force)


def _default_workers(n_images: int) -> int:
    if n_images < _PARALLEL_MIN_IMAGES:
        return 1
    return max(1, min(8, os.cpu_count() or 1))


def _check_outdir(outdir: Path, *, force: bool) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise SynthError(f"{outdir} exists and is not a directory")
    if outdir.is_dir() and any(outdir.iterdir()) and not force:
        raise SynthError(f"{outdir} is not empty; pass --force to replace it")


def _write_labels(root: Path, labels: SyntheticLabels) -> None:
    (root / "labels").mkdir()
    for split, split_labels in labels.splits.items():
        if len(split_labels) == 0:
            continue
        path = root / "labels" / FILE_NAMES[_LAYOUT[split]]
        path.write_text(label_csv(split_labels), encoding="utf-8", newline="")
    (root / LATENT_FILE.parent).mkdir()
    lines = ["Filename;Latent_masking"]
    for split_labels in labels.splits.values():
        lines.extend(
            f"{name};{m:.6f}"
            for name, m in zip(split_labels.filenames, split_labels.cohort.masking, strict=True)
        )
    (root / LATENT_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / LATENT_FILE.parent / "README.txt").write_text(
        "Synthetic ground truth of a generated CSAW-M dataset (csawm synth).\n"
        "latent.csv: the latent masking potential each image was simulated from (0..1).\n"
        "Not part of the CSAW-M layout; never mount this folder into model containers.\n",
        encoding="utf-8",
    )


@dataclass(frozen=True)
class _Chunk:
    folder: Path
    split_code: int
    start: int  # index in the split of the first image
    anatomies: tuple[Anatomy, ...]


def _render_all(
    root: Path,
    labels: SyntheticLabels,
    *,
    seed: int,
    resolution: tuple[int, int],
    workers: int,
    progress: ProgressCallback | None,
) -> None:
    chunks: list[_Chunk] = []
    for split, split_labels in labels.splits.items():
        if len(split_labels) == 0:
            continue
        folder = root / "images" / "preprocessed" / split.value
        folder.mkdir(parents=True)
        c = split_labels.cohort
        anatomies = tuple(
            Anatomy(float(d), float(k), float(a))
            for d, k, a in zip(c.dense_fraction, c.contrast, c.breast_area_cm2, strict=True)
        )
        for start in range(0, len(anatomies), _CHUNK):
            chunks.append(_Chunk(folder, _SPLIT_CODE[split], start, anatomies[start : start + _CHUNK]))
    total = sum(len(ch.anatomies) for ch in chunks)
    done = 0
    if workers == 1:
        for chunk in chunks:
            done += _render_chunk(chunk, seed, resolution)
            if progress is not None:
                progress(done, total)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a possibly threaded server process
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        futures = [pool.submit(_render_chunk, chunk, seed, resolution) for chunk in chunks]
        for future in as_completed(futures):
            done += future.result()
            if progress is not None:
                progress(done, total)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # stop queued chunks before the cleanup
        raise
    pool.shutdown(wait=True)


def _render_chunk(chunk: _Chunk, seed: int, resolution: tuple[int, int]) -> int:
    """Render and write one run of consecutive images of a split; returns how many."""
    renderer = ImageRenderer(*resolution)
    for i, anatomy in enumerate(chunk.anatomies, start=chunk.start):
        image = renderer.render(anatomy, _rng(seed, _IMAGE_STREAM, chunk.split_code, i))
        write_png(image, chunk.folder / f"{chunk.folder.name}_{i + 1}.png")
    return len(chunk.anatomies)


def _swap_into_place(staging: Path, outdir: Path) -> None:
    """Rename ``staging`` to ``outdir``; an existing ``outdir`` is moved aside first, then removed."""
    if outdir.exists() and not any(outdir.iterdir()):
        outdir.rmdir()
    if not outdir.exists():
        staging.rename(outdir)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.old-", dir=outdir.parent))
    aside.rmdir()
    outdir.rename(aside)
    try:
        staging.rename(outdir)
    except BaseException:
        aside.rename(outdir)
        raise
    shutil.rmtree(aside, ignore_errors=True)
