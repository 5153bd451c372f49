"""The collector and its log frame: what leaves the Pod is exactly the model's bytes, or a reason."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from runner.kubernetes.collector import collect
from runner.kubernetes.framing import BEGIN, END, FrameError, encode_frame, parse_frame

ROOT = Path(__file__).resolve().parents[2]
DATA = b"Filename;Final_score\n" + b"".join(b"img%04d.png;%d.5\n" % (i, i % 8) for i in range(475))


def _collect(output: Path, max_bytes: int = 1 << 20) -> str:
    out = io.StringIO()
    collect(output, max_bytes, out)
    return out.getvalue()


def test_round_trip_is_byte_exact(tmp_path: Path) -> None:
    (tmp_path / "predictions.csv").write_bytes(DATA)
    text = _collect(tmp_path)
    frame = parse_frame(text.encode(), max_bytes=1 << 20)
    assert frame.status == "ok" and frame.data == DATA
    header = text.splitlines()[0]
    assert f'"length": {len(DATA)}' in header and hashlib.sha256(DATA).hexdigest() in header
    assert max(len(line) for line in text.splitlines()[1:-1]) <= 76


def test_binary_and_empty_lines_survive(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 3 + b"\r\n\n"
    frame = parse_frame(encode_frame("ok", payload).encode(), max_bytes=4096)
    assert frame.data == payload


@pytest.mark.parametrize(
    ("prepare", "status", "message"),
    [
        (lambda d: None, "missing", "wrote no"),
        (lambda d: (d / "predictions.csv").symlink_to("/etc/hostname"), "rejected", "symbolic link"),
        (lambda d: (d / "predictions.csv").mkdir(), "rejected", "directory"),
        (lambda d: os.mkfifo(d / "predictions.csv"), "rejected", "not a regular file"),
        (lambda d: (d / "predictions.csv").write_bytes(b"x" * 101), "rejected", "over the limit"),
        (lambda d: (d / "predictions.csv").write_bytes(b""), "rejected", "empty"),
    ],
    ids=["missing", "symlink", "directory", "fifo", "too-large", "empty"],
)
def test_hostile_outputs_become_reasons_not_bytes(tmp_path: Path, prepare, status: str, message: str) -> None:  # type: ignore[no-untyped-def]
    prepare(tmp_path)
    frame = parse_frame(_collect(tmp_path, max_bytes=100).encode(), max_bytes=100)
    assert frame.status == status and frame.data is None
    assert message in frame.message


def test_noise_outside_the_frame_is_ignored() -> None:
    log = b"Warning: something on stderr\n" + encode_frame("ok", b"a;b\n").encode() + b"trailing\n"
    assert parse_frame(log, max_bytes=10).data == b"a;b\n"


def _frame_lines(data: bytes = DATA) -> list[str]:
    return encode_frame("ok", data).splitlines()


@pytest.mark.parametrize(
    ("log", "message"),
    [
        ("\n".join(_frame_lines()[:-1]), "expected one of each"),  # truncated (log rotation)
        ("\n".join(_frame_lines() + _frame_lines()), "expected one of each"),  # two frames
        ("\n".join([_frame_lines()[0], *_frame_lines()[2:]]), "bytes, the header says"),  # a line lost
        ("\n".join([_frame_lines()[0], "!!!!", _frame_lines()[-1]]), "not valid base64"),
        (BEGIN + "{not json\n" + END, "not JSON"),
        (BEGIN + '{"status": "maybe"}\n' + END, "no known status"),
        (BEGIN + '{"status": "missing", "message": "m"}\nAAAA\n' + END, "carries a body"),
        (BEGIN + '{"status": "ok", "sha256": "00"}\nAAAA\n' + END, "integer 'length'"),
        ("héllo", "not ASCII"),
    ],
    ids=[
        "truncated",
        "two-frames",
        "line-lost",
        "bad-base64",
        "bad-json",
        "bad-status",
        "body-on-missing",
        "no-length",
        "not-ascii",
    ],
)
def test_broken_frames_are_rejected(log: str, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        parse_frame(log.encode(), max_bytes=1 << 20)


def test_tampered_body_fails_the_hash() -> None:
    lines = _frame_lines(b"Filename;Final_score\nA.png;1\n")
    body = base64.b64decode(lines[1])
    lines[1] = base64.b64encode(body.replace(b"A.png", b"B.png")).decode()
    with pytest.raises(FrameError, match="sha256 mismatch"):
        parse_frame("\n".join(lines).encode(), max_bytes=1 << 20)


def test_announced_size_over_the_cap_is_rejected() -> None:
    with pytest.raises(FrameError, match="over the cap"):
        parse_frame(encode_frame("ok", DATA).encode(), max_bytes=100)


def test_encode_refuses_inconsistent_frames() -> None:
    with pytest.raises(ValueError, match="exactly when"):
        encode_frame("missing", b"data")
    with pytest.raises(ValueError, match="unknown frame status"):
        encode_frame("weird", None)  # type: ignore[arg-type]


def test_module_entry_point_prints_one_frame(tmp_path: Path) -> None:
    """``python -m runner.kubernetes.collector``, as the Pod runs it, using only the standard library
    (``-X importtime`` lists every import: neither the Kubernetes client nor numpy may appear)."""
    (tmp_path / "predictions.csv").write_bytes(DATA)
    code = (
        "import runpy, sys; sys.argv = ['collector', '--output-dir', sys.argv[1], '--max-bytes', '100000'];"
        "runpy.run_module('runner.kubernetes.collector', run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert parse_frame(proc.stdout, max_bytes=100000).data == DATA
    imported = proc.stderr.decode()
    assert "kubernetes" not in imported.replace("runner.kubernetes", "") and "numpy" not in imported


def test_module_entry_point_refuses_bad_arguments(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner.kubernetes.collector",
            "--output-dir",
            str(tmp_path),
            "--max-bytes",
            "0",
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2 and b"--max-bytes must be positive" in proc.stderr


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [BEGIN + '{"status": "ok", "length": 3, "sha256": "x"}', BEGIN + "[" * 5000, END]
            ),
            st.text(max_size=80),
        ),
        max_size=6,
    ).map("\n".join),
    st.binary(max_size=40),
)
@example(BEGIN + "[" * 100_000 + "\n" + END + "\n", b"")
@example(BEGIN + '{"status": "ok", "length": ' + "9" * 5000 + ', "sha256": "x"}\n' + END + "\n", b"")
def test_any_log_gives_a_frame_or_a_frame_error(text: str, noise: bytes) -> None:
    """Issue 19: whatever the collector's log holds, parsing it raises only `FrameError` (the executor
    turns that into ``output_invalid``; anything else would be taken for an infrastructure fault)."""
    for log in (text.encode("utf-8", "surrogatepass"), text.encode("ascii", "ignore") + noise):
        with contextlib.suppress(FrameError):
            parse_frame(log, max_bytes=1024)
