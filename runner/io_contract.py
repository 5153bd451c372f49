"""The model's side of the I/O contract v1 (docs/contract.md), prepared on the host.

``input_dir`` becomes ``/input`` (read-only) in the container::

    images/<Filename>     the PNGs to predict, world-readable copies
    manifest.csv          one column ``Filename``, one row per image, in the given order

Copies, not links: the sandbox uid must be able to read every file whatever the source's owner and
mode, and nothing outside ``input_dir`` may be reachable through it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

MANIFEST_FILE = "manifest.csv"
IMAGES_DIR = "images"
_FORBIDDEN_CHARS = set(",;\"'\n\r\t\x00")


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ValueError(f"image file name {name!r} is not a plain file name")
    bad = _FORBIDDEN_CHARS.intersection(name)
    if bad:
        raise ValueError(f"image file name {name!r} contains {sorted(bad)!r}, which the manifest cannot hold")


def prepare_input(input_dir: Path, images: Sequence[Path]) -> None:
    """Write ``images/<name>`` copies and ``manifest.csv`` into `input_dir` (created if missing).

    Raises
    ------
    ValueError
        When `images` is empty, two images share a file name, a name cannot be written to the
        manifest, `input_dir` already holds a manifest, or a source is not a regular file.
    """
    if not images:
        raise ValueError("no images to prepare: the manifest would be empty")
    names = [p.name for p in images]
    for name in names:
        _check_name(name)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"two images share the file name {name!r}")
        seen.add(name)
    input_dir.mkdir(parents=True, exist_ok=True)
    if (input_dir / MANIFEST_FILE).exists():
        raise ValueError(f"{input_dir} already holds {MANIFEST_FILE}; input directories are prepared once")
    images_dir = input_dir / IMAGES_DIR
    images_dir.mkdir(exist_ok=True)
    for src in images:
        if not src.is_file():
            raise ValueError(f"image {src} is not a regular file")
        dst = images_dir / src.name
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o644)
    manifest = input_dir / MANIFEST_FILE
    manifest.write_text("Filename\n" + "".join(f"{n}\n" for n in names), encoding="utf-8")
    os.chmod(manifest, 0o644)
    os.chmod(images_dir, 0o755)
    os.chmod(input_dir, 0o755)
