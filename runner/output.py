"""Reading a model's output without trusting it.

The output directory was writable by the model, so everything in it is hostile: the prediction
file may be a symlink (to ``/etc/shadow``, into ``/input``), a FIFO that blocks a reader forever, a
directory, or 200 MB of garbage. `read_predictions_file` opens it with ``O_NOFOLLOW | O_NONBLOCK``
(a link fails with ``ELOOP``, a FIFO does not block), checks with ``fstat`` on the *opened*
descriptor that it is a regular file (no check-then-open race), refuses it by size before reading,
and never reads more than the cap even if the file grows meanwhile. `output_usage` measures the
directory while the model runs, without following links, so the runner can stop a model that
floods the host disk.

Every way the file can be wrong ends as an `OutputRead` with ``output_invalid`` or ``output_missing``
(a model fault), never as an exception: an error here must not read as an infrastructure fault that
is retried and refunded (issue 19).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from runner.spec import ErrorCode

PREDICTIONS_FILE = "predictions.csv"
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class OutputRead:
    """The raw bytes of ``predictions.csv``, or why there are none.

    `error_code` is ``output_missing`` or ``output_invalid`` when `data` is None.
    """

    data: bytes | None
    error_code: ErrorCode | None
    message: str


def _mib(n: int) -> str:
    return f"{n / 1024**2:.1f} MiB"


def _invalid(problem: str) -> OutputRead:
    """``output_invalid``, the message naming the file: ``/output/predictions.csv <problem>``."""
    return OutputRead(None, ErrorCode.OUTPUT_INVALID, f"/output/{PREDICTIONS_FILE} {problem}")


def read_predictions_file(output_dir: Path, *, max_bytes: int) -> OutputRead:
    """Read ``output_dir/predictions.csv`` safely.

    ``output_dir`` itself is created by the runner (the model cannot replace it: the mount point is
    the container's, the host directory's parent is not mounted), so only the file is checked.

    Returns
    -------
    OutputRead
        ``output_missing`` when there is no file; ``output_invalid`` for a link, a non-regular
        file, a file over `max_bytes` (not read), or one that cannot be read. Never raises.
    """
    path = output_dir / PREDICTIONS_FILE
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return OutputRead(None, ErrorCode.OUTPUT_MISSING, f"The model wrote no /output/{PREDICTIONS_FILE}.")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _invalid("is a symbolic link; it must be a regular file (links are not followed).")
        return _invalid(f"cannot be opened: {exc.strerror}.")
    try:
        return _read_open(fd, max_bytes)
    except OSError as exc:
        return _invalid(f"cannot be read: {exc.strerror}.")
    finally:
        os.close(fd)


def _read_open(fd: int, max_bytes: int) -> OutputRead:
    """The opened file's bytes, checked on the descriptor (regular, within `max_bytes`)."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        return _invalid(f"is {kind}; it must be a regular file.")
    if st.st_size > max_bytes:
        return _invalid(f"is {_mib(st.st_size)}, over the limit of {_mib(max_bytes)}.")
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:  # grew after fstat
            return _invalid(f"is over the limit of {_mib(max_bytes)}.")
    data = b"".join(chunks)
    if not data:
        return _invalid("is empty.")
    return OutputRead(data, None, f"Read {len(data)} bytes of /output/{PREDICTIONS_FILE}.")


@dataclass(frozen=True)
class OutputUsage:
    """Bytes and entries under the output directory (links counted, never followed)."""

    bytes: int
    entries: int
    truncated: bool  # stopped counting at the entry cap


def output_usage(output_dir: Path, *, max_entries: int = 10_000) -> OutputUsage:
    """Total allocated bytes (``st_blocks * 512``, so sparse files count as what they use) and
    the number of entries under `output_dir`, walking at most `max_entries` entries."""
    total = 0
    entries = 0
    stack = [str(output_dir)]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as it:
                for entry in it:
                    entries += 1
                    if entries > max_entries:
                        return OutputUsage(total, entries, True)
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
        except OSError:
            continue
    return OutputUsage(total, entries, False)
