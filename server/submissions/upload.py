"""Receiving an archive: the request body streamed to disk with a size cap and a running SHA-256.

Memory stays flat whatever the size: each chunk is hashed and written, never accumulated. The cap is
enforced twice: a declared ``Content-Length`` above it is refused before a byte is read, and the
running count stops the stream the moment it passes the cap. A partial file never survives an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.requests import ClientDisconnect

from server.core.errors import BadRequest, PayloadTooLarge


@dataclass(frozen=True)
class ReceivedArchive:
    path: Path
    sha256: str
    size: int


def _human(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


async def receive_archive(request: Request, upload_dir: Path, max_bytes: int) -> ReceivedArchive:
    """Stream the body of `request` into a new file under `upload_dir`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(f"invalid Content-Length {declared!r}")
        if int(declared) > max_bytes:
            raise PayloadTooLarge(
                f"archive of {_human(int(declared))} exceeds the upload limit of {_human(max_bytes)}",
                limit_bytes=max_bytes,
            )
    upload_dir.mkdir(parents=True, exist_ok=True)
    path = upload_dir / f"incoming-{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    size = 0
    ok = False
    try:
        with open(path, "wb") as out:
            async for chunk in request.stream():
                if not chunk:
                    continue
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"archive exceeds the upload limit of {_human(max_bytes)}; upload stopped",
                        limit_bytes=max_bytes,
                    )
                digest.update(chunk)
                out.write(chunk)
        if declared is not None and size != int(declared):
            raise BadRequest(f"upload truncated: received {size} of {declared} bytes")
        if size == 0:
            raise BadRequest("empty upload: send a `docker save` archive as the request body")
        ok = True
        return ReceivedArchive(path=path, sha256=digest.hexdigest(), size=size)
    except ClientDisconnect:
        raise BadRequest(f"upload interrupted after {size} bytes") from None
    finally:
        if not ok:
            path.unlink(missing_ok=True)


def discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
