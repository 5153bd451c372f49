"""``csawm synth OUTDIR``: write a synthetic CSAW-M dataset root (see server/benchmark/synth.py).

Refuses a non-empty OUTDIR unless ``--force``; writes into a temporary folder renamed into place at
the end, so an interrupted or failed run leaves nothing partial. Exit code 2 for bad arguments.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from server.benchmark.synth import (
    DEFAULT_RESOLUTION,
    SynthError,
    check_arguments,
    generate,
    parse_resolution,
)
from server.cli import fail

_DEFAULT_RESOLUTION_TEXT = f"{DEFAULT_RESOLUTION[0]}x{DEFAULT_RESOLUTION[1]}"


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def synth(
    outdir: Annotated[Path, typer.Argument(help="Dataset root to create (must not exist or be empty)")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes")] = 0,
    n_train: Annotated[int, typer.Option("--n-train", help="Training images")] = 9523,
    n_public: Annotated[int, typer.Option("--n-public", help="Public test images (>= 8)")] = 497,
    n_private: Annotated[int, typer.Option("--n-private", help="Private test images (>= 8)")] = 475,
    resolution: Annotated[
        str, typer.Option("--resolution", help="Image size HxW (height x width)")
    ] = _DEFAULT_RESOLUTION_TEXT,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty OUTDIR")] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Rendering processes (default: automatic)")
    ] = None,
) -> None:
    """Generate a synthetic CSAW-M dataset (images, label files, synthetic ground truth)."""
    # A plain SIGTERM would skip the cleanup of the temporary folder; make it unwind like Ctrl-C.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        size = parse_resolution(resolution)
        check_arguments(
            outdir, n_train=n_train, n_public=n_public, n_private=n_private, resolution=size, force=force
        )
        tty = sys.stderr.isatty()  # a bar on a terminal only
        columns = (TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, transient=True, console=Console(stderr=True), disable=not tty) as bar:
            task = bar.add_task("images", total=n_train + n_public + n_private)
            summary = generate(
                outdir,
                seed=seed,
                n_train=n_train,
                n_public=n_public,
                n_private=n_private,
                resolution=size,
                force=force,
                workers=workers,
                progress=(lambda done, _total: bar.update(task, completed=done)) if tty else None,
            )
    except SynthError as exc:
        raise fail(str(exc)) from None
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    for line in summary.lines():
        typer.echo(line)
