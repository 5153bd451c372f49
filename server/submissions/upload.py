"""Receiving an archive: the request body streamed to disk with a size cap and a running SHA-256.

Memory stays flat whatever the size: each chunk is hashed and written, never accumulated. The cap is
enforced twice: a declared ``Content-Length`` above it is refused before a byte is read, and the
running count stops the stream the moment it passes the cap. A partial file never survives an error.

Slow clients are bounded too (issue 12): a body that sends nothing for ``CSAWM_UPLOAD_IDLE_TIMEOUT``
is dropped with 408, and `UploadSlots` lets a team hold at most ``CSAWM_MAX_CONCURRENT_UPLOADS``
uploads at once in this process (429 beyond), so trickling connections cannot pile up. Upload files
and their directory are private to the server (0600 in a 0700 directory).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import anyio
from fastapi import Request
from starlette.requests import ClientDisconnect

from server.core.errors import BadRequest, PayloadTooLarge, RequestTimeout, TooManyUploads

UPLOAD_RETRY_AFTER_S = 30


@dataclass(frozen=True)
class ReceivedArchive:
    path: Path
    sha256: str
    size: int


class UploadSlots:
    """How many uploads each team has in flight in this process, capped at `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: dict[int, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, team_id: int) -> Iterator[None]:
        """One slot of `team_id` for the duration of the block; `TooManyUploads` when none is free."""
        with self._lock:
            if self._active.get(team_id, 0) >= self.limit:
                raise TooManyUploads(
                    f"your team already has {self.limit} upload(s) in progress "
                    "(CSAWM_MAX_CONCURRENT_UPLOADS); wait for one to finish",
                    headers={"Retry-After": str(UPLOAD_RETRY_AFTER_S)},
                    limit=self.limit,
                )
            self._active[team_id] = self._active.get(team_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._active[team_id] -= 1
                if not self._active[team_id]:
                    del self._active[team_id]


def _human(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB" if n >= 1024**3 else f"{n / 1024**2:.1f} MiB"


async def _chunks(request: Request, idle: timedelta) -> AsyncIterator[bytes]:
    """The body's chunks; `RequestTimeout` when the next one takes longer than `idle` to arrive."""
    stream = request.stream().__aiter__()
    while True:
        try:
            with anyio.fail_after(idle.total_seconds()):
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise RequestTimeout(
                f"the upload sent nothing for {idle.total_seconds():g} s (CSAWM_UPLOAD_IDLE_TIMEOUT); "
                "upload dropped"
            ) from None
        yield chunk


def private_dir(path: Path) -> None:
    """Create `path` (and parents) if needed; make it 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


async def receive_archive(
    request: Request, upload_dir: Path, max_bytes: int, *, idle_timeout: timedelta = timedelta(seconds=60)
) -> ReceivedArchive:
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
    private_dir(upload_dir)
    path = upload_dir / f"incoming-{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    size = 0
    ok = False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            async for chunk in _chunks(request, idle_timeout):
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
