"""The test-images volume's images-only stamp lines (issue 25 item 5): a remote worker has the
images but never the labels, so it cannot compute the labelled lines of ``MANIFEST.sha256``; the
load step also writes ``images`` and ``public-images`` (`server.worker.images_digest` of the copies
on the volume), and a remote worker with the Kubernetes runner checks those and ``preflight``
against its own images (`verify_images_stamp`). Pure files, no engine.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from server.worker.evaluation import EvaluationSet
from server.worker.images_digest import images_digest
from server.worker.inputs import ImagesOnly
from server.worker.test_set import (
    STAMP_FILE,
    Stamp,
    TestSetMismatch,
    load_volume,
    verify_images_stamp,
    verify_stamp,
)

N_PREFLIGHT = 4


def images_only_copy(benchmark: Path, root: Path) -> Path:
    """What a custodian's remote worker has: the benchmark's images, no label file."""
    shutil.copytree(benchmark / "images", root / "images")
    return root


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory, synthetic_benchmark: Path) -> Path:
    target = tmp_path_factory.mktemp("volume")
    load_volume(synthetic_benchmark, target, N_PREFLIGHT)
    return target


def test_the_load_step_writes_the_images_digest_of_its_copies(
    volume: Path, synthetic_benchmark: Path
) -> None:
    stamp = Stamp.parse((volume / STAMP_FILE).read_text())
    digest = images_digest(synthetic_benchmark)  # what the server computes and checks at lease
    assert digest.public is not None
    assert (stamp.images, stamp.public_images) == (digest.images, digest.public)
    assert (volume / STAMP_FILE).read_text().splitlines()[-2:] == [
        f"{digest.images}  images",
        f"{digest.public}  public-images",
    ]


def test_a_remote_worker_accepts_the_volume_of_its_images(
    volume: Path, synthetic_benchmark: Path, tmp_path: Path
) -> None:
    inputs = ImagesOnly.prepare(
        images_only_copy(synthetic_benchmark, tmp_path / "b"), tmp_path / "w", N_PREFLIGHT
    )
    verify_images_stamp(volume / STAMP_FILE, inputs)


def test_a_private_only_volume_has_no_public_images_line_and_is_accepted(
    tmp_path: Path, private_only_benchmark: Path
) -> None:
    stamp = load_volume(private_only_benchmark, tmp_path / "v", N_PREFLIGHT)
    assert stamp.images == images_digest(private_only_benchmark).images and stamp.public_images == "-"
    inputs = ImagesOnly.prepare(
        images_only_copy(private_only_benchmark, tmp_path / "b"), tmp_path / "w", N_PREFLIGHT
    )
    verify_images_stamp(tmp_path / "v" / STAMP_FILE, inputs)


@pytest.mark.parametrize(
    ("split", "named"),
    [("test", ": images, public-images, preflight differ"), ("private", ": images differ")],
)
def test_a_worker_whose_images_differ_from_the_volume_is_refused_naming_the_lines(
    volume: Path, synthetic_benchmark: Path, tmp_path: Path, split: str, named: str
) -> None:
    """An edited image on the worker's side (the server refuses it at lease too) or, equally, on
    the volume's: the models would not read the images the worker proved."""
    copy = images_only_copy(synthetic_benchmark, tmp_path / "b")
    image = sorted((copy / "images" / "preprocessed" / split).iterdir())[0]
    image.write_bytes(image.read_bytes() + b"\0")
    inputs = ImagesOnly.prepare(copy, tmp_path / "w", N_PREFLIGHT)
    with pytest.raises(TestSetMismatch, match=named):
        verify_images_stamp(volume / STAMP_FILE, inputs)


def test_a_volume_loaded_for_another_preflight_size_is_refused(
    volume: Path, synthetic_benchmark: Path, tmp_path: Path
) -> None:
    """The preflight predictions are checked against the worker's names: a different
    CSAWM_PREFLIGHT_IMAGES would fail every run's preflight as the model's fault."""
    inputs = ImagesOnly.prepare(images_only_copy(synthetic_benchmark, tmp_path / "b"), tmp_path / "w", 2)
    with pytest.raises(TestSetMismatch, match=r": preflight differ .*CSAWM_PREFLIGHT_IMAGES"):
        verify_images_stamp(volume / STAMP_FILE, inputs)


def test_an_old_stamp_is_refused_for_remote_workers_and_accepted_for_database_workers(
    volume: Path, synthetic_benchmark: Path, tmp_path: Path
) -> None:
    old = tmp_path / STAMP_FILE
    old.write_text("".join(line + "\n" for line in (volume / STAMP_FILE).read_text().splitlines()[:5]))
    evaluation = EvaluationSet.prepare(synthetic_benchmark, tmp_path / "db-worker", N_PREFLIGHT)
    verify_stamp(old, evaluation)  # a database worker: unchanged
    inputs = ImagesOnly.prepare(
        images_only_copy(synthetic_benchmark, tmp_path / "b"), tmp_path / "w", N_PREFLIGHT
    )
    with pytest.raises(TestSetMismatch, match=r"has no images line .*reload the volume"):
        verify_images_stamp(old, inputs)


@pytest.mark.parametrize(
    ("keep", "message"),
    [("images", "images line without the other"), ("public-images", "public-images line without the other")],
)
def test_half_of_the_images_lines_is_malformed(volume: Path, tmp_path: Path, keep: str, message: str) -> None:
    lines = (volume / STAMP_FILE).read_text().splitlines()
    kept = [line for line in lines if line.split("  ")[1] not in {"images", "public-images"} - {keep}]
    (tmp_path / STAMP_FILE).write_text("\n".join(kept) + "\n")
    with pytest.raises(TestSetMismatch, match=message):
        Stamp.parse((tmp_path / STAMP_FILE).read_text())


def test_a_remote_worker_without_the_setting_is_not_trusted(
    volume: Path, synthetic_benchmark: Path, tmp_path: Path
) -> None:
    inputs = ImagesOnly.prepare(
        images_only_copy(synthetic_benchmark, tmp_path / "b"), tmp_path / "w", N_PREFLIGHT
    )
    with pytest.raises(TestSetMismatch, match="CSAWM_K8S_TEST_SET_DIGEST_FILE is not set"):
        verify_images_stamp(None, inputs)
