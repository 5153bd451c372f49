"""Hand-made hostile clients (issue 12) and a way to measure what they cost the server's memory.

Used by the regression tests (tests/server/core/test_memory_attacks.py) and by
benchmarks/bench_hostile.py, against a server running in its own process on loopback.

Each attack speaks HTTP/1.1 on a raw socket, so it can send what a well-behaved client library
would not: a chunked body of hundreds of megabytes, a trickle, a body after the server has answered.
A reader thread collects the answer while the body is still being sent, so an early refusal (401,
413) is seen even when the server then closes the connection.
"""

from __future__ import annotations

import contextlib
import gzip
import select
import socket
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

MiB = 1024**2


@dataclass
class Answer:
    status: int | None  # None when the server closed without a status line
    head: bytes
    sent: int  # body bytes the server accepted before it stopped reading


def _reader(sock: socket.socket, into: bytearray, done: threading.Event) -> None:
    try:
        while len(into) < 65536 and (data := sock.recv(65536)):
            into.extend(data)
            if b"\r\n\r\n" in into and into.startswith(b"HTTP/"):
                break
    except OSError:
        pass
    finally:
        done.set()


def post_chunked(
    url: str, path: str, headers: dict[str, str], chunks: Iterable[bytes], *, timeout: float = 60
) -> Answer:
    """POST `chunks` with ``Transfer-Encoding: chunked``; stop sending once the server answers."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    head = bytearray()
    done = threading.Event()
    sent = 0
    try:
        lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Transfer-Encoding: chunked"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        threading.Thread(target=_reader, args=(sock, head, done), daemon=True).start()
        for chunk in chunks:
            if done.is_set():
                break
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except OSError:
                break
            sent += len(chunk)
        else:
            with contextlib.suppress(OSError):
                sock.sendall(b"0\r\n\r\n")
        done.wait(timeout)
    finally:
        sock.close()
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
    return Answer(status=status, head=bytes(head), sent=sent)


def zeros(total: int, chunk: int = MiB) -> Iterator[bytes]:
    block = bytes(chunk)
    left = total
    while left > 0:
        yield block[: min(chunk, left)]
        left -= chunk


def json_like(total: int) -> Iterator[bytes]:
    """A JSON document of `total` bytes: one string, sent a mebibyte at a time."""
    yield b'{"name": "'
    yield from (b"a" * len(c) for c in zeros(total))
    yield b'"}'


def write_long_name_bomb(path: Path, name_bytes: int) -> None:
    """A small ``.tar.gz`` whose one GNU long-name header holds `name_bytes` (issue 12, row 2):
    ``tarfile`` reads such an extension whole before any per-member check. Written in steps, so
    the test process never holds the name either."""
    extension = tarfile.TarInfo("././@LongLink")
    extension.type = tarfile.GNUTYPE_LONGNAME
    extension.size = name_bytes + 1
    member = tarfile.TarInfo("model")
    with gzip.open(path, "wb", compresslevel=6) as out:
        out.write(extension.tobuf(format=tarfile.GNU_FORMAT))
        for chunk in zeros(name_bytes):
            out.write(b"a" * len(chunk))
        out.write(b"\0" * (512 - name_bytes % 512))
        out.write(member.tobuf(format=tarfile.GNU_FORMAT))
        out.write(bytes(1024))


def file_chunks(path: Path, chunk: int = MiB) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while data := fh.read(chunk):
            yield data


# -- the server's memory ------------------------------------------------------------------------------


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


class PeakMemory:
    """The growth of a process's peak resident memory over a block.

    Entering resets the kernel's high-water mark (``echo 5 > /proc/PID/clear_refs``, Linux >= 4.0)
    and notes the current RSS; `growth` is the high-water mark since then minus that RSS, so a
    peak between two samples cannot be missed.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = 0
        self.peak = 0

    def __enter__(self) -> PeakMemory:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.before = _status_kib(self.pid, "VmRSS") * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = _status_kib(self.pid, "VmHWM") * 1024

    @property
    def growth(self) -> int:
        return max(self.peak - self.before, 0)


@dataclass
class Closed:
    """How a trickled connection ended (`trickle`)."""

    answer: bytes  # what the server sent
    after_s: float | None  # seconds from the first byte sent to the server's close; None: still open


def trickle(
    socks: list[socket.socket], first: bytes, piece: bytes, every_s: float, limit_s: float
) -> list[Closed]:
    """Send `first` on each socket, then `piece` every `every_s` seconds on each one still open,
    reading whatever the server answers, until it has closed them all or `limit_s` has passed
    (issue 19: a slow client). Closes every socket before returning."""
    start = time.monotonic()
    for sock in socks:
        sock.sendall(first)
    answers = {sock: b"" for sock in socks}
    closed: dict[socket.socket, float] = {}
    next_piece = start + every_s
    while len(closed) < len(socks) and time.monotonic() - start < limit_s:
        open_socks = [s for s in socks if s not in closed]
        wait = min(next_piece, start + limit_s) - time.monotonic()
        ready, _, _ = select.select(open_socks, [], [], max(0.0, wait))
        for sock in ready:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if data:
                answers[sock] += data
            else:
                closed[sock] = time.monotonic() - start
        if time.monotonic() >= next_piece:
            next_piece += every_s
            for sock in open_socks:
                if sock not in closed:
                    with contextlib.suppress(OSError):  # closed by the server: the next recv says so
                        sock.sendall(piece)
    for sock in socks:
        sock.close()
    return [Closed(answers[s], closed.get(s)) for s in socks]


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (head and a Content-Length body) from `sock`."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length and (chunk := sock.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def declare_and_wait(
    url: str, token: str, declared: int, content_type: str = "application/x-tar"
) -> tuple[bytes, float]:
    """POST the head of a submission that declares `declared` bytes and send no body: the answer
    and the seconds it took. A refusal before the body comes at once; an endpoint that read the
    body would wait for bytes that never come (issue 22: the pause and the compute budget)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(
            f"POST /api/v1/submissions?name=m HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {declared}\r\n\r\n".encode()
        )
        answer = read_response(sock)
        return answer, time.monotonic() - started


def upload_while(url: str, token: str, data: bytes, meanwhile: Callable[[], None]) -> bytes:
    """POST `data` as the archive of submission ``m``, calling `meanwhile` once the upload was
    admitted and its body is streaming (after its first KiB); the answer (issue 22: what a pause or a
    run's end does to an upload already under way)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            "POST /api/v1/submissions?name=m HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/x-tar\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
        )
        sock.sendall(data[:1000])
        time.sleep(0.5)  # admitted: the body is being read
        meanwhile()
        sock.sendall(data[1000:])
        return read_response(sock)
