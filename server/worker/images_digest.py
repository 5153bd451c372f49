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


def _lines(split: str, folder: Path) -> list[str]:
    return [f"{split}/{p.name}\t{sha256_file(p)}\n" for p in sorted(folder.iterdir()) if p.is_file()]


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()


def images_digest(benchmark_dir: Path) -> ImagesDigest:
    """The digests of ``benchmark_dir``'s images (module docstring). Raises `FileNotFoundError`
    when the private image folder is missing: a worker without the hidden images has no test set."""
    root = Path(benchmark_dir) / IMAGES_DIR
    private = root / SPLIT_FOLDERS[LabelLayout.PRIVATE]
    if not private.is_dir():
        raise FileNotFoundError(f"{private} is missing: no hidden test images")
    lines = _lines("private", private)
    public_dir = root / SPLIT_FOLDERS[LabelLayout.PUBLIC]
    public = _lines("public", public_dir) if public_dir.is_dir() else None
    return ImagesDigest(
        images=_digest(lines + (public or [])), public=None if public is None else _digest(public)
    )
