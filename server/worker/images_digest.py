"""The images-only digest of a test set: what a remote worker proves it runs models on (issue 25).

The manifest digest (`server.benchmark.manifest`) also covers the label file, which a remote worker
does not have (labels never leave the server). This digest covers the images alone:

    sha256 over the lines ``<split>/<name>\\t<sha256 of the file's bytes>\\n``, sorted,

for every regular file in the benchmark's private image folder (split ``private``) and, when the
benchmark has one, its public image folder (split ``public``). `public` is the same digest over the
public images alone: the whole input of a development phase. Server and worker compute both from
their own copies; the server refuses a worker whose digests differ (409 ``test_set_mismatch``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from server.benchmark.dataset import IMAGES_DIR, SPLIT_FOLDERS
from server.benchmark.manifest import sha256_file
from server.scoring.labels import LabelLayout


@dataclass(frozen=True)
class ImagesDigest:
    images: str  # private and public images together
    public: str | None  # the public images alone; None when the benchmark has none


def files_of(folder: Path) -> list[Path]:
    """The regular files of `folder`, by name."""
    return [p for p in sorted(folder.iterdir()) if p.is_file()]


def _lines(split: str, files: list[Path]) -> list[str]:
    return [f"{split}/{p.name}\t{sha256_file(p)}\n" for p in files]


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()


def images_digest(benchmark_dir: Path) -> ImagesDigest:
    """The digests of ``benchmark_dir``'s images (module docstring). Raises `FileNotFoundError`
    when the private image folder is missing: a worker without the hidden images has no test set."""
    root = Path(benchmark_dir) / IMAGES_DIR
    private = root / SPLIT_FOLDERS[LabelLayout.PRIVATE]
    if not private.is_dir():
        raise FileNotFoundError(f"{private} is missing: no hidden test images")
    public_dir = root / SPLIT_FOLDERS[LabelLayout.PUBLIC]
    return digest_files(files_of(private), files_of(public_dir) if public_dir.is_dir() else None)


def digest_files(private: list[Path], public: list[Path] | None) -> ImagesDigest:
    """The digests of these image files, wherever they lie (the load step hashes its copies on the
    Kubernetes volume, `server.worker.test_set.load_volume`); `public` None: no public set."""
    lines = _lines("private", private)
    public_lines = None if public is None else _lines("public", public)
    return ImagesDigest(
        images=_digest(lines + (public_lines or [])),
        public=None if public_lines is None else _digest(public_lines),
    )
