"""Test-set manifest: which images and which labels a run was evaluated on, provably.

A manifest lists every evaluated image with the sha256 of its bytes (sorted by file name) and the
sha256 of the label file. Its :meth:`TestSetManifest.digest` is the sha256 of a canonical JSON
encoding::

    {"images":[["private_1.png","<sha256 hex>"],...],"labels_sha256":"<sha256 hex>"}

(keys sorted, no whitespace, UTF-8, ``ensure_ascii``). Two runs with the same digest saw the same
bytes; a changed pixel, a renamed image or an edited label cell changes it. The manifest stores
hashes only, never labels, so it can be shown to submitters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.benchmark.dataset import BenchmarkError

MANIFEST_VERSION = 1
_BLOCK = 1024 * 1024


@dataclass(frozen=True)
class TestSetManifest:
    """Image file names with their sha256, sorted by file name, and the labels' sha256."""

    __test__ = False  # not a pytest test class, despite the name

    images: tuple[tuple[str, str], ...]
    labels_sha256: str

    @property
    def filenames(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.images)

    def canonical_json(self) -> bytes:
        """The bytes :meth:`digest` hashes (module docstring)."""
        body = {"images": [[name, sha] for name, sha in self.images], "labels_sha256": self.labels_sha256}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")

    def digest(self) -> str:
        """sha256 hex of :meth:`canonical_json`."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the manifest with its count and digest)."""
        return {
            "version": MANIFEST_VERSION,
            "n_images": len(self.images),
            "images": [[name, sha] for name, sha in self.images],
            "labels_sha256": self.labels_sha256,
            "digest": self.digest(),
        }


def sha256_file(path: Path) -> str:
    """sha256 hex of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def build_manifest(images_dir: Path, labels_path: Path, filenames: Sequence[str]) -> TestSetManifest:
    """Hash the listed images in ``images_dir`` and the label file.

    Parameters
    ----------
    images_dir : Path
        Folder holding the images.
    labels_path : Path
        The label file the run is scored against.
    filenames : sequence of str
        The evaluated images (usually ``LabelTable.filenames``); any order, no duplicates.

    Raises
    ------
    BenchmarkError
        A duplicate or non-plain file name, or an image or the label file that is missing or not a
        regular file.
    """
    images_dir = Path(images_dir)
    seen: set[str] = set()
    for name in filenames:
        if name in seen:
            raise BenchmarkError(f"duplicate image {name!r} in the manifest list")
        if not name or "/" in name or "\\" in name or name in (".", ".."):
            raise BenchmarkError(f"{name!r} is not a plain image file name")
        seen.add(name)
    if not Path(labels_path).is_file():
        raise BenchmarkError(f"label file {labels_path} does not exist")
    images: list[tuple[str, str]] = []
    for name in sorted(seen):
        path = images_dir / name
        if not path.is_file():
            raise BenchmarkError(f"image {name} is missing from {images_dir}")
        images.append((name, sha256_file(path)))
    return TestSetManifest(images=tuple(images), labels_sha256=sha256_file(Path(labels_path)))
