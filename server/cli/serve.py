"""`csawm serve`: the API (and the web pages, when installed) with an embedded worker by default."""

from __future__ import annotations

import copy
import logging
from typing import Annotated, Any

import typer

from server.cli import fail
from server.cli._server_common import settings_or_exit
from server.core.security import RedactTokens
from server.core.settings import Settings, SettingsError


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Bind address (default CSAWM_HOST).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default CSAWM_PORT).")] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="Do not run the embedded worker.")] = False,
) -> None:
    """Run the evaluation server. An embedded SQLite database is upgraded to the latest schema first."""
    import uvicorn

    from server.app import create_app

    settings = settings_or_exit()
    overrides = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
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
    if embedded and settings.benchmark_dir is not None:
        from server.benchmark.dataset import Benchmark, BenchmarkError

        try:
            Benchmark.open(settings.benchmark_dir)
        except BenchmarkError as exc:
            raise fail(f"CSAWM_BENCHMARK_DIR: {exc}") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactTokens())
    try:
        app = create_app(settings, embedded_worker=embedded)  # reads CSAWM_DUA_FILE
    except SettingsError as exc:
        raise fail(str(exc)) from None
    # SIGTERM / Ctrl-C: uvicorn stops accepting, gives open requests GRACEFUL_S, then the app's
    # lifespan hands the embedded worker's run back (server.worker.loop.Worker.stop): out in < 15 s.
    uvicorn.run(app, **uvicorn_options(settings), timeout_graceful_shutdown=GRACEFUL_S)


GRACEFUL_S = 4


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves the app (issue 12).

    Proxy headers (``X-Forwarded-Proto``, ``X-Forwarded-For``) are honoured only from the addresses
    in ``CSAWM_FORWARDED_ALLOW_IPS``; then the scheme the web pages see is the client's, so the
    origin check of form posts and the ``Secure`` cookie flag follow it. Unset, no proxy is trusted.
    Tokens are redacted from the access and error logs.

    HTTP is uvicorn's httptools protocol with the slow-client deadlines and connection caps of
    `server.core.slow_clients` (issue 19 item 7); WebSocket upgrades are off (no route uses them,
    and an upgraded connection would leave those rules).
    """
    from uvicorn.config import LOGGING_CONFIG

    from server.core.slow_clients import protocol_class

    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config.setdefault("filters", {})["redact_tokens"] = {"()": "server.core.security.RedactTokens"}
    for handler in log_config["handlers"].values():
        handler.setdefault("filters", []).append("redact_tokens")
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "log_config": log_config,
        "proxy_headers": settings.forwarded_allow_ips is not None,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "http": protocol_class(settings),
        "ws": "none",
    }
