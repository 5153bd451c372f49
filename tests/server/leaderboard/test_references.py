"""The test set's own leaderboard rows are cached per label digest and follow the label files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from srvtest.app import make_settings

from server.benchmark.synth import generate
from server.leaderboard.references import ReferenceCache


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("refs") / "synthetic"
    generate(root, seed=8, n_train=0, n_public=16, n_private=48, resolution=(16, 16), workers=1)
    return root


@pytest.fixture
def bench(generated: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(generated, tmp_path / "bench"))


def _labels(root: Path) -> Path:
    return root / "labels" / "CSAW-M_test_private.csv"


def test_rows_are_cached_until_the_label_file_changes(bench: Path, tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=bench, bootstrap_resamples=100)
    cache = ReferenceCache()
    first = cache.get(settings)
    assert first is not None and first.clinical["population"] == "pooled"
    assert set(first.experts) == {f"Expert_{k}" for k in range(1, 6)}
    assert cache.get(settings) is first  # unchanged files: the same object, nothing recomputed

    lines = _labels(bench).read_text().splitlines()
    header, row = lines[0].split(";"), lines[1].split(";")
    column = header.index("Libra_breast_area")
    row[column] = str(float(row[column]) + 1.0)
    # A trailing blank line (which the reader skips) changes the size too, so the stat check sees
    # the edit even where the file system's clock is coarse.
    _labels(bench).write_text("\n".join([lines[0], ";".join(row), *lines[2:]]) + "\n\n")
    second = cache.get(settings)
    assert second is not None and second.labels_sha256 != first.labels_sha256
    assert second.experts == first.experts  # the experts do not read the LIBRA columns


def test_a_broken_label_file_gives_no_rows_instead_of_an_error(
    bench: Path, tmp_path: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, sqlite_url, benchmark_dir=bench, bootstrap_resamples=100)
    _labels(bench).write_text("Filename;Label\nx.png;1\n")
    cache = ReferenceCache()
    assert cache.get(settings) is None
    assert "test-set rows unavailable" in caplog.text
    assert cache.get(settings) is None  # logged once per change of the files
    assert caplog.text.count("test-set rows unavailable") == 1


def test_no_benchmark_dir_means_no_rows(tmp_path: Path, sqlite_url: str) -> None:
    assert ReferenceCache().get(make_settings(tmp_path, sqlite_url)) is None
