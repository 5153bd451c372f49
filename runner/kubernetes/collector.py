"""The trusted collector: ``python -m runner.kubernetes.collector`` (docs/design.md, Runners).

It runs as the Pod's main container, from the server's own image, after the untrusted model (the
init container) has exited 0. It reads ``<output-dir>/predictions.csv`` with the same hostile-output
rules as the Docker backend (`runner.output.read_predictions_file`: ``O_NOFOLLOW | O_NONBLOCK``, a
regular file only, checked on the opened descriptor, at most ``--max-bytes`` read) and prints one
frame (`runner.kubernetes.framing`) to stdout, which becomes this container's log: the only thing
the runner reads as a result.

A missing or rejected file is a *result* (exit 0, frame status ``missing``/``rejected`` with the
reason); only a broken invocation exits non-zero, which the runner reports as ``infra_error``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from runner.kubernetes.framing import encode_frame
from runner.output import read_predictions_file
from runner.spec import ErrorCode

DEFAULT_MAX_BYTES = 4 * 1024**2


def collect(output_dir: Path, max_bytes: int, out: TextIO) -> None:
    """Read the predictions safely and write their frame to `out`."""
    read = read_predictions_file(output_dir, max_bytes=max_bytes)
    if read.data is not None:
        out.write(encode_frame("ok", read.data))
    elif read.error_code == ErrorCode.OUTPUT_MISSING:
        out.write(encode_frame("missing", None, read.message))
    else:
        out.write(encode_frame("rejected", None, read.message))
    out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runner.kubernetes.collector",
        description="Print the model's predictions.csv, framed and hashed, to stdout.",
    )
    default_dir = Path(os.environ.get("CSAWM_OUTPUT_DIR", "/output"))
    parser.add_argument("--output-dir", type=Path, default=default_dir)
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    args = parser.parse_args(argv)
    if args.max_bytes <= 0:
        parser.error(f"--max-bytes must be positive, got {args.max_bytes}")
    collect(args.output_dir, args.max_bytes, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
