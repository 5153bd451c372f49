"""Reading predictions.csv without trusting it (no engine needed: the hostile files are made here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.output import output_usage, read_predictions_file
from runner.spec import ErrorCode


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "output"
    d.mkdir()
    return d


def test_regular_file_is_read(out: Path) -> None:
    (out / "predictions.csv").write_bytes(b"Filename,Final_score\na.png,1\n")
    read = read_predictions_file(out, max_bytes=1024)
    assert read.error_code is None
    assert read.data == b"Filename,Final_score\na.png,1\n"


def test_missing(out: Path) -> None:
    read = read_predictions_file(out, max_bytes=1024)
    assert (read.error_code, read.data) == (ErrorCode.OUTPUT_MISSING, None)


def test_symlink_is_not_followed(out: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("do not read")
    (out / "predictions.csv").symlink_to(secret)
    read = read_predictions_file(out, max_bytes=1024)
    assert read.error_code is ErrorCode.OUTPUT_INVALID
    assert "symbolic link" in read.message
    assert read.data is None


def test_fifo_does_not_block(out: Path) -> None:
    os.mkfifo(out / "predictions.csv")
    read = read_predictions_file(out, max_bytes=1024)
    assert read.error_code is ErrorCode.OUTPUT_INVALID
    assert "not a regular file" in read.message


def test_directory(out: Path) -> None:
    (out / "predictions.csv").mkdir()
    read = read_predictions_file(out, max_bytes=1024)
    assert read.error_code is ErrorCode.OUTPUT_INVALID
    assert "is a directory" in read.message


def test_too_big_is_refused_unread(out: Path) -> None:
    with (out / "predictions.csv").open("wb") as fh:
        fh.truncate(10 * 1024**3)  # sparse 10 GiB: reading it would take minutes
    read = read_predictions_file(out, max_bytes=1024**2)
    assert read.error_code is ErrorCode.OUTPUT_INVALID
    assert "10240.0 MiB, over the limit of 1.0 MiB" in read.message


def test_empty(out: Path) -> None:
    (out / "predictions.csv").write_bytes(b"")
    assert read_predictions_file(out, max_bytes=1024).error_code is ErrorCode.OUTPUT_INVALID


def test_output_usage_counts_allocated_bytes_and_caps_entries(out: Path) -> None:
    (out / "sub").mkdir()
    (out / "sub" / "a.bin").write_bytes(b"x" * 100_000)
    with (out / "sparse.bin").open("wb") as fh:
        fh.truncate(1024**3)  # allocates nothing
    (out / "link").symlink_to("/etc/passwd")
    usage = output_usage(out)
    assert 100_000 <= usage.bytes < 200_000
    assert (usage.entries, usage.truncated) == (4, False)
    assert output_usage(out, max_entries=2).truncated


def test_a_read_error_is_output_invalid_not_an_exception(out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: an exception here would reach the worker as an infrastructure fault (retried, refunded)."""
    import errno

    from runner import output

    (out / "predictions.csv").write_bytes(b"Filename,Final_score\na.png,1\n")

    def failing_read(fd: int, n: int) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(output.os, "read", failing_read)
    read = read_predictions_file(out, max_bytes=1024)
    assert (read.error_code, read.data) == (ErrorCode.OUTPUT_INVALID, None)
    assert "cannot be read" in read.message
