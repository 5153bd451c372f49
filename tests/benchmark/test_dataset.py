"""Dataset roots: the CSAW-M layout is found, incomplete roots and missing images are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.benchmark.dataset import Benchmark, BenchmarkError, read_split
from server.scoring.labels import LabelLayout


@pytest.fixture
def root_copy(synthetic_benchmark: Path, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(synthetic_benchmark, root)
    return root


def test_open_finds_every_split(synthetic_benchmark: Path) -> None:
    bench = Benchmark.open(synthetic_benchmark)
    assert bench.root == synthetic_benchmark
    assert bench.private_images == synthetic_benchmark / "images" / "preprocessed" / "private"
    assert bench.private_labels == synthetic_benchmark / "labels" / "CSAW-M_test_private.csv"
    assert bench.public_images == synthetic_benchmark / "images" / "preprocessed" / "test"
    assert bench.public_labels == synthetic_benchmark / "labels" / "CSAW-M_test.csv"
    assert bench.train_images == synthetic_benchmark / "images" / "preprocessed" / "train"
    assert bench.train_labels == synthetic_benchmark / "labels" / "CSAW-M_train.csv"


def test_read_splits(synthetic_benchmark: Path) -> None:
    bench = Benchmark.open(synthetic_benchmark)
    private = bench.read_private()
    public = bench.read_public()
    assert bench.train_images is not None and bench.train_labels is not None
    train = read_split(bench.train_images, bench.train_labels, LabelLayout.TRAIN)
    assert private.layout is LabelLayout.PRIVATE and len(private) == 60
    assert public is not None and public.layout is LabelLayout.PUBLIC and len(public) == 64
    assert train.layout is LabelLayout.TRAIN and len(train) == 48


def test_optional_splits_may_be_absent(root_copy: Path) -> None:
    shutil.rmtree(root_copy / "images" / "preprocessed" / "test")
    (root_copy / "labels" / "CSAW-M_test.csv").unlink()
    shutil.rmtree(root_copy / "images" / "preprocessed" / "train")
    (root_copy / "labels" / "CSAW-M_train.csv").unlink()
    bench = Benchmark.open(root_copy)
    assert bench.public_images is None and bench.public_labels is None
    assert bench.train_images is None and bench.train_labels is None
    assert bench.read_public() is None


def test_half_a_split_is_refused(root_copy: Path) -> None:
    (root_copy / "labels" / "CSAW-M_test.csv").unlink()
    with pytest.raises(BenchmarkError, match=r"incomplete test split.*CSAW-M_test.csv does not"):
        Benchmark.open(root_copy)


def test_missing_private_labels(root_copy: Path) -> None:
    (root_copy / "labels" / "CSAW-M_test_private.csv").unlink()
    with pytest.raises(BenchmarkError, match="incomplete private split"):
        Benchmark.open(root_copy)


def test_root_without_hidden_set(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="no hidden test set"):
        Benchmark.open(tmp_path)


def test_root_that_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="not a directory"):
        Benchmark.open(tmp_path / "nowhere")


def test_missing_image_is_named(root_copy: Path) -> None:
    (root_copy / "images" / "preprocessed" / "private" / "private_7.png").unlink()
    bench = Benchmark.open(root_copy)
    with pytest.raises(BenchmarkError, match=r"1 image.*private_7.png"):
        bench.read_private()


def test_bad_label_file_becomes_a_benchmark_error_naming_the_file(root_copy: Path) -> None:
    labels = root_copy / "labels" / "CSAW-M_test_private.csv"
    labels.write_text(labels.read_text().replace(";", ","))
    with pytest.raises(BenchmarkError, match=r"CSAW-M_test_private.csv.*';'-separated"):
        Benchmark.open(root_copy).read_private()


def test_read_split_checks_the_layout(synthetic_benchmark: Path) -> None:
    bench = Benchmark.open(synthetic_benchmark)
    with pytest.raises(BenchmarkError, match="public-layout file"):
        read_split(bench.private_images, bench.public_labels or Path(), LabelLayout.PRIVATE)
