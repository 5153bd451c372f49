"""`csawm serve`: the API (and the web pages, when installed) with an embedded worker by default."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from server.cli._server_common import fail, settings_or_exit


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default CSAWM_HOST).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default CSAWM_PORT).")] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not run the embedded worker.")] = False,
) -> None:
    """Run the evaluation server. An embedded SQLite database is upgraded to the latest schema first."""
    import uvicorn

    from server.app import create_app

    settings = settings_or_exit()
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if overrides:
        settings = settings.model_copy(update=overrides)
    embedded = settings.embedded_worker and not no_worker
    if embedded and settings.benchmark_dir is None:
        typer.echo(
            "warning: CSAWM_BENCHMARK_DIR is not set, so the embedded worker is not started and "
            "submissions stay queued (generate one with `csawm synth DIR`)",
            err=True,
        )
        embedded = False
    if embedded:
        _check_benchmark(settings.benchmark_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, embedded_worker=embedded)
    # SIGTERM / Ctrl-C: uvicorn stops accepting, gives open requests GRACEFUL_S, then the app's
    # lifespan hands the embedded worker's run back (server.worker.loop.Worker.stop): out in < 15 s.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_S,
    )


GRACEFUL_S = 4


def _check_benchmark(path: object) -> None:
    from pathlib import Path

    from server.benchmark.dataset import Benchmark, BenchmarkError

    try:
        Benchmark.open(Path(str(path)))
    except BenchmarkError as exc:
        raise fail(f"CSAWM_BENCHMARK_DIR: {exc}") from None
