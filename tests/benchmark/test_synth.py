"""The synthetic generator: CSAW-M layout, determinism, atomic writing, argument checks."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from server.benchmark.annotators import N_LEVELS
from server.benchmark.dataset import Benchmark
from server.benchmark.synth import ProgressCallback, SynthError, SynthSummary, generate, parse_resolution
from server.scoring.labels import COLUMNS, LabelLayout, read_labels


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def small(
    outdir: Path,
    seed: int = 3,
    *,
    n_train: int = 10,
    n_public: int = 16,
    n_private: int = 12,
    resolution: tuple[int, int] = (32, 26),
    force: bool = False,
    progress: ProgressCallback | None = None,
    workers: int = 1,
) -> SynthSummary:
    return generate(
        outdir,
        seed=seed,
        n_train=n_train,
        n_public=n_public,
        n_private=n_private,
        resolution=resolution,
        force=force,
        progress=progress,
        workers=workers,
    )


# --- layout -------------------------------------------------------------------------------------


def test_folder_and_file_layout(synthetic_benchmark: Path) -> None:
    root = synthetic_benchmark
    assert sorted(p.name for p in (root / "labels").iterdir()) == [
        "CSAW-M_test.csv",
        "CSAW-M_test_private.csv",
        "CSAW-M_train.csv",
    ]
    for split, n in (("train", 48), ("test", 64), ("private", 60)):
        folder = root / "images" / "preprocessed" / split
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{split}_{i}.png" for i in range(1, n + 1))
    assert sorted(p.name for p in root.iterdir()) == ["images", "labels", "synthetic"]
    assert (root / "synthetic" / "latent.csv").is_file()
    assert Benchmark.open(root).public_images == root / "images" / "preprocessed" / "test"


def test_images_are_8_bit_grey_of_the_asked_size(synthetic_benchmark: Path) -> None:
    for split in ("train", "test", "private"):
        with Image.open(synthetic_benchmark / "images" / "preprocessed" / split / f"{split}_1.png") as image:
            assert image.format == "PNG"
            assert image.mode == "L"
            assert image.size == (52, 64)  # PIL gives (width, height); the resolution is 64x52


def test_label_files_have_the_exact_columns_and_dicom_constants(synthetic_benchmark: Path) -> None:
    files = {
        "CSAW-M_test.csv": LabelLayout.PUBLIC,
        "CSAW-M_test_private.csv": LabelLayout.PRIVATE,
        "CSAW-M_train.csv": LabelLayout.TRAIN,
    }
    for name, layout in files.items():
        with (synthetic_benchmark / "labels" / name).open(newline="") as f:
            rows = list(csv.reader(f, delimiter=";"))
        assert tuple(rows[0]) == COLUMNS[layout]
        header = rows[0]
        for row in rows[1:]:
            cell = dict(zip(header, row, strict=True))
            assert cell["Dicom_window_center"] == "2047"
            assert cell["Dicom_window_width"] == "4096"
            assert cell["Dicom_photometric_interpretation"] == "MONOCHROME2"


def test_public_levels_are_array_split_bins_and_label_the_median(synthetic_benchmark: Path) -> None:
    public = read_labels(synthetic_benchmark / "labels" / "CSAW-M_test.csv")
    assert public.experts is not None and public.label is not None
    expected = [len(chunk) for chunk in np.array_split(np.arange(64), N_LEVELS)]
    for k in range(5):
        counts = np.bincount(public.experts[:, k].astype(int), minlength=N_LEVELS + 1)[1:]
        assert counts.tolist() == expected
    assert np.array_equal(public.label, np.median(public.experts, axis=1).astype(int))


def test_private_positions_come_from_a_longer_sort(synthetic_benchmark: Path) -> None:
    private = read_labels(synthetic_benchmark / "labels" / "CSAW-M_test_private.csv")
    assert private.experts is not None
    n = len(private)
    n_extra = round(19 / 475 * n)  # annotators.EXTRA_SORTED_SHARE
    for k in range(5):
        positions = private.experts[:, k].astype(int)
        assert len(set(positions.tolist())) == n  # a strict sort: no ties
        assert positions.min() >= 1 and positions.max() <= n + n_extra
        gaps = set(range(1, positions.max() + 1)) - set(positions.tolist())
        assert gaps  # dropped images leave holes
    assert private.experts.max() > n  # values above the row count


def test_training_labels_are_levels(synthetic_benchmark: Path) -> None:
    train = read_labels(synthetic_benchmark / "labels" / "CSAW-M_train.csv")
    assert train.label is not None
    assert set(train.label.tolist()) <= set(range(1, 9))
    assert len(set(train.label.tolist())) >= 5


def test_latent_file_covers_every_image(synthetic_benchmark: Path) -> None:
    lines = (synthetic_benchmark / "synthetic" / "latent.csv").read_text().splitlines()
    assert lines[0] == "Filename;Latent_masking"
    values = dict(line.split(";") for line in lines[1:])
    assert len(values) == 48 + 64 + 60
    assert {"train_1.png", "test_64.png", "private_60.png"} <= values.keys()
    assert all(0.0 < float(v) < 1.0 for v in values.values())


def test_no_training_split_when_n_train_is_zero(tmp_path: Path) -> None:
    small(tmp_path / "out", n_train=0)
    bench = Benchmark.open(tmp_path / "out")
    assert bench.train_images is None and bench.train_labels is None
    assert not (tmp_path / "out" / "images" / "preprocessed" / "train").exists()


# --- determinism --------------------------------------------------------------------------------


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    small(tmp_path / "a", seed=5)
    small(tmp_path / "b", seed=5)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_other_seed_other_data(tmp_path: Path) -> None:
    small(tmp_path / "a", seed=5)
    small(tmp_path / "b", seed=6)
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert a.keys() == b.keys()
    assert a["labels/CSAW-M_test.csv"] != b["labels/CSAW-M_test.csv"]
    assert a["images/preprocessed/private/private_1.png"] != b["images/preprocessed/private/private_1.png"]


def test_labels_do_not_depend_on_resolution_or_training_size(tmp_path: Path) -> None:
    small(tmp_path / "a", seed=5)
    small(tmp_path / "b", seed=5, resolution=(40, 32), n_train=3)
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert a["labels/CSAW-M_test_private.csv"] == b["labels/CSAW-M_test_private.csv"]
    assert a["labels/CSAW-M_test.csv"] == b["labels/CSAW-M_test.csv"]


def test_worker_processes_give_the_same_images(tmp_path: Path) -> None:
    small(tmp_path / "serial", seed=8)
    small(tmp_path / "parallel", seed=8, workers=2)
    assert tree(tmp_path / "serial") == tree(tmp_path / "parallel")


# --- refusing and atomic writing ----------------------------------------------------------------


def test_refuses_a_non_empty_outdir_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SynthError, match="not empty; pass --force"):
        small(out)
    assert tree(out) == {"keep.txt": b"mine"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_force_replaces_and_an_empty_outdir_is_fine(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    small(out)
    (out / "labels" / "extra.txt").write_text("stale")
    small(out, force=True)
    assert not (out / "labels" / "extra.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing left aside


def test_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    def fail_midway(done: int, total: int) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        small(tmp_path / "new", progress=fail_midway)
    assert list(tmp_path.iterdir()) == []


def test_failure_with_force_keeps_the_old_dataset(tmp_path: Path) -> None:
    out = tmp_path / "out"
    small(out, seed=1)
    before = tree(out)

    def fail_midway(done: int, total: int) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        small(out, seed=2, force=True, progress=fail_midway)
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_outdir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SynthError, match="not a directory"):
        small(tmp_path / "file")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_public": 7}, "n_public must be >= 8"),
        ({"n_private": 0}, "n_private must be >= 8"),
        ({"n_train": -1}, "n_train must be >= 0"),
        ({"resolution": (8, 26)}, "each side must be in 16..4096"),
    ],
)
def test_bad_arguments(tmp_path: Path, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SynthError, match=message):
        small(tmp_path / "out", **overrides)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "expected"), [("632x512", (632, 512)), ("64X52", (64, 52)), (" 32 x 26", (32, 26))]
)
def test_parse_resolution(text: str, expected: tuple[int, int]) -> None:
    assert parse_resolution(text) == expected


@pytest.mark.parametrize("text", ["632", "632x", "axb", "632x512x3", "-5x10", "10x99999"])
def test_parse_resolution_refuses(text: str) -> None:
    with pytest.raises(SynthError):
        parse_resolution(text)
