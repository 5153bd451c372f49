"""The collector's log frame: how ``predictions.csv`` travels from the Pod to the runner.

The trusted collector prints one frame to its stdout; the runner reads only that container's log
and parses it here. Layout (lines; the body is base64 because container logs are text)::

    CSAWM-COLLECTOR/1 BEGIN {"status": "ok", "length": 1234, "sha256": "<hex>"}
    <base64 of the file, 76 characters a line>
    CSAWM-COLLECTOR/1 END

``status`` is ``ok``, ``missing`` (no file) or ``rejected`` (a link, not a regular file, too large),
the last two with a ``message`` and no body. Lines outside the frame (say, a Python warning on
stderr, which shares the log) are ignored; anything wrong inside it is a `FrameError`, because a
frame that does not add up (truncated by log rotation, altered) must never reach scoring.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Literal

MAGIC = "CSAWM-COLLECTOR/1"
BEGIN = f"{MAGIC} BEGIN "
END = f"{MAGIC} END"
LINE_WIDTH = 76

Status = Literal["ok", "missing", "rejected"]
_STATUSES = ("ok", "missing", "rejected")


class FrameError(ValueError):
    """The collector's log holds no valid frame; the message says what is wrong."""


@dataclass(frozen=True)
class Frame:
    """A decoded frame. `data` is the file's bytes for ``ok``, otherwise None."""

    status: Status
    data: bytes | None
    message: str


def encode_frame(status: Status, data: bytes | None = None, message: str = "") -> str:
    """The frame text for a result (ends with a newline)."""
    if status not in _STATUSES:
        raise ValueError(f"unknown frame status {status!r}")
    if (status == "ok") != (data is not None):
        raise ValueError("a frame carries data exactly when its status is 'ok'")
    header: dict[str, object] = {"status": status}
    lines: list[str] = []
    if data is not None:
        header["length"] = len(data)
        header["sha256"] = hashlib.sha256(data).hexdigest()
        encoded = base64.b64encode(data).decode("ascii")
        lines = [encoded[i : i + LINE_WIDTH] for i in range(0, len(encoded), LINE_WIDTH)]
    else:
        header["message"] = message
    return "\n".join([BEGIN + json.dumps(header, sort_keys=True), *lines, END]) + "\n"


def parse_frame(log: bytes, *, max_bytes: int) -> Frame:
    """Find and check the one frame in a collector log.

    Checks: exactly one BEGIN and one END line after it; a JSON header with a known status; for
    ``ok``, strict base64 whose decoded length equals ``length`` (at most `max_bytes`) and whose
    sha256 equals ``sha256``. Raises nothing but `FrameError`, whatever `log` holds: the executor
    reports it as ``output_invalid``, never as an infrastructure fault (issue 19).
    """
    try:
        text = log.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FrameError(f"collector log is not ASCII (byte {exc.start})") from None
    lines = text.splitlines()
    begins = [i for i, line in enumerate(lines) if line.startswith(BEGIN)]
    ends = [i for i, line in enumerate(lines) if line == END]
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise FrameError(
            f"collector log has {len(begins)} BEGIN and {len(ends)} END lines; expected one of each, in order"
        )
    start, stop = begins[0], ends[0]
    try:
        header = json.loads(lines[start][len(BEGIN) :])
    except json.JSONDecodeError as exc:
        raise FrameError(f"collector frame header is not JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # a number too long to convert, nesting too deep
        raise FrameError(f"collector frame header cannot be read: {exc.__class__.__name__}") from None
    if not isinstance(header, dict) or header.get("status") not in _STATUSES:
        raise FrameError(f"collector frame header has no known status: {lines[start][len(BEGIN) :]!r}")
    status: Status = header["status"]
    body = "".join(lines[start + 1 : stop])
    if status != "ok":
        if body:
            raise FrameError(f"collector frame with status {status!r} carries a body")
        return Frame(status=status, data=None, message=str(header.get("message", "")))
    length, digest = header.get("length"), header.get("sha256")
    if not isinstance(length, int) or isinstance(length, bool) or not isinstance(digest, str):
        raise FrameError("collector frame header lacks an integer 'length' and a 'sha256'")
    if length > max_bytes:
        raise FrameError(f"collector frame announces {length} bytes, over the cap of {max_bytes}")
    try:
        data = base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise FrameError(f"collector frame body is not valid base64: {exc}") from None
    if len(data) != length:
        raise FrameError(f"collector frame body has {len(data)} bytes, the header says {length}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise FrameError(f"collector frame sha256 mismatch: header {digest}, body {actual}")
    return Frame(status="ok", data=data, message="")
