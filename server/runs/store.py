"""Hidden-run predictions, stored content-addressed: ``DATA_DIR/predictions/<sha256>.csv``.

They are kept after the run ends (the run's working folders are not), so a scorer crash is
re-scored rather than re-run, and ``csawm admin rescore`` can score a run again under a new scorer
or test set. The file's name is its hash; `load` checks it, so a file changed on disk is noticed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class PredictionsMissing(LookupError):
    """The stored predictions are gone or do not match their hash."""


def predictions_path(data_dir: Path, sha256: str) -> Path:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return data_dir / "predictions" / f"{sha256}.csv"


def save(data_dir: Path, data: bytes) -> str:
    """Store `data` (atomically, mode 0600) and return its sha256."""
    digest = hashlib.sha256(data).hexdigest()
    path = predictions_path(data_dir, digest)
    if path.is_file():
        return digest
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def load(data_dir: Path, sha256: str) -> bytes:
    """The stored bytes of `sha256`; `PredictionsMissing` when absent or altered."""
    path = predictions_path(data_dir, sha256)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PredictionsMissing(f"stored predictions {sha256[:12]} are missing") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise PredictionsMissing(f"stored predictions {sha256[:12]} do not match their hash")
    return data
