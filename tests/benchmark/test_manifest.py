"""Test-set manifests: stable digests that change with any image or label byte."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from server.benchmark.dataset import Benchmark, BenchmarkError
from server.benchmark.manifest import TestSetManifest, build_manifest


def manifest_from_json(data: dict[str, Any]) -> TestSetManifest:
    """Inverse of :meth:`TestSetManifest.to_json`; a stored digest that does not match is an error."""
    images = tuple((str(name), str(sha)) for name, sha in data["images"])
    manifest = TestSetManifest(images=images, labels_sha256=str(data["labels_sha256"]))
    stored = data.get("digest")
    if stored is not None and stored != manifest.digest():
        raise ValueError(f"manifest digest {stored} does not match its content ({manifest.digest()})")
    return manifest


@pytest.fixture
def root_copy(synthetic_benchmark: Path, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(synthetic_benchmark, root)
    return root


def private_manifest(root: Path) -> TestSetManifest:
    bench = Benchmark.open(root)
    table = bench.read_private()
    return build_manifest(bench.private_images, bench.private_labels, table.filenames)


def test_manifest_lists_every_image_sorted_with_its_sha256(synthetic_benchmark: Path) -> None:
    manifest = private_manifest(synthetic_benchmark)
    names = [name for name, _ in manifest.images]
    assert names == sorted(f"private_{i}.png" for i in range(1, 61))
    images = synthetic_benchmark / "images" / "preprocessed" / "private"
    for name, sha in manifest.images[:3]:
        assert sha == hashlib.sha256((images / name).read_bytes()).hexdigest()
    labels = synthetic_benchmark / "labels" / "CSAW-M_test_private.csv"
    assert manifest.labels_sha256 == hashlib.sha256(labels.read_bytes()).hexdigest()


def test_digest_is_sha256_of_the_canonical_json(synthetic_benchmark: Path) -> None:
    manifest = private_manifest(synthetic_benchmark)
    body = {"images": [list(pair) for pair in manifest.images], "labels_sha256": manifest.labels_sha256}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    assert manifest.canonical_json() == canonical
    assert manifest.digest() == hashlib.sha256(canonical).hexdigest()


def test_digest_does_not_depend_on_the_order_given(synthetic_benchmark: Path) -> None:
    bench = Benchmark.open(synthetic_benchmark)
    names = list(bench.read_private().filenames)
    forward = build_manifest(bench.private_images, bench.private_labels, names)
    backward = build_manifest(bench.private_images, bench.private_labels, names[::-1])
    assert forward == backward and forward.digest() == backward.digest()


def test_changed_pixel_changes_the_digest(root_copy: Path) -> None:
    before = private_manifest(root_copy)
    image = root_copy / "images" / "preprocessed" / "private" / "private_3.png"
    data = bytearray(image.read_bytes())
    data[-20] ^= 0xFF
    image.write_bytes(bytes(data))
    after = private_manifest(root_copy)
    assert after.digest() != before.digest()
    changed = [a for a, b in zip(after.images, before.images, strict=True) if a != b]
    assert [name for name, _ in changed] == ["private_3.png"]


def test_changed_label_changes_the_digest(root_copy: Path) -> None:
    before = private_manifest(root_copy)
    labels = root_copy / "labels" / "CSAW-M_test_private.csv"
    labels.write_text(labels.read_text().replace("MONOCHROME2", "MONOCHROME1", 1))
    after = private_manifest(root_copy)
    assert after.images == before.images
    assert after.labels_sha256 != before.labels_sha256 and after.digest() != before.digest()


def test_json_round_trip_checks_the_digest(synthetic_benchmark: Path) -> None:
    manifest = private_manifest(synthetic_benchmark)
    data = json.loads(json.dumps(manifest.to_json()))
    assert data["n_images"] == 60 and data["digest"] == manifest.digest()
    assert manifest_from_json(data) == manifest
    data["images"][0][1] = "0" * 64
    with pytest.raises(ValueError, match="does not match"):
        manifest_from_json(data)


def test_missing_image_duplicate_and_unsafe_names_are_refused(synthetic_benchmark: Path) -> None:
    bench = Benchmark.open(synthetic_benchmark)
    with pytest.raises(BenchmarkError, match=r"private_999.png is missing"):
        build_manifest(bench.private_images, bench.private_labels, ["private_1.png", "private_999.png"])
    with pytest.raises(BenchmarkError, match=r"duplicate image 'private_1.png'"):
        build_manifest(bench.private_images, bench.private_labels, ["private_1.png", "private_1.png"])
    with pytest.raises(BenchmarkError, match="not a plain image file name"):
        build_manifest(bench.private_images, bench.private_labels, ["../labels/CSAW-M_test.csv"])
    with pytest.raises(BenchmarkError, match=r"label file .* does not exist"):
        build_manifest(bench.private_images, bench.private_images / "none.csv", ["private_1.png"])
