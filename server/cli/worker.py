"""`csawm worker`: a standalone worker process (several may run against one PostgreSQL database),
or with ``--server URL`` a remote worker that reaches the server over HTTPS only (issue 25)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import Annotated

import typer

from server.cli import fail
from server.cli._server_common import open_database, settings_or_exit
from server.core.settings import Settings

EXIT_REFUSED = 3  # the token is missing or refused (docs/cli.md)


def _stop_on_signals(request_stop: Callable[[], None]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: request_stop())


def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Process queued runs, then exit when none is left.")
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="Worker name in leases (default host:pid:rand).")
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="A remote worker: lease runs from this server's worker API (token in "
            "CSAWM_WORKER_TOKEN); no database.",
        ),
    ] = None,
) -> None:
    """Lease runs from the queue and execute them until stopped.

    SIGTERM or SIGINT: stop the current run's container, hand the run back to the queue (no attempt
    burned, nothing charged; the next worker resumes it), then exit.
    """
    if server is not None:
        if once:
            raise fail("--once is for database workers; a remote worker runs until stopped")
        remote(settings_or_exit(), server, name)
        return
    from server.benchmark.dataset import BenchmarkError
    from server.core import migrate
    from server.notifications.dispatcher import Dispatcher
    from server.worker.loop import Worker, build_runner

    settings = settings_or_exit()
    if settings.benchmark_dir is None:
        raise fail("CSAWM_BENCHMARK_DIR is not set: a worker needs the test set to run models on")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with open_database(settings) as db:
        if not migrate.is_up_to_date(db.engine):
            raise fail("the database schema is not at the latest migration; run `csawm db upgrade`")
        loop = Worker(settings, db, build_runner(settings), name=name)
        try:
            loop.prepare_test_set()  # fail fast on a broken benchmark
        except BenchmarkError as exc:
            raise fail(f"CSAWM_BENCHMARK_DIR: {exc}") from None
        _stop_on_signals(loop.request_stop)
        typer.echo(f"worker {loop.name} started", err=True)
        # The notification dispatcher (CSAWM_EMBEDDED_DISPATCHER) sends what the runs' endings enqueue.
        dispatcher = Dispatcher(settings, db) if settings.embedded_dispatcher and not once else None
        if dispatcher is not None:
            dispatcher.start_thread()
        try:
            if once:
                while loop.run_once():
                    pass
            else:
                loop.run_forever()
        finally:
            if dispatcher is not None:
                dispatcher.stop()


def remote(settings: Settings, url: str, name: str | None) -> None:
    """``csawm worker --server URL``: the stages through the worker API (docs/remote-workers.md).
    Exit 0 after SIGTERM (the run handed back), 2 when the server's test set differs (or, with the
    Kubernetes runner, the test-images volume's stamp from this worker's images), 3 when the
    token is missing or refused; an unreachable server is retried, never an exit."""
    import importlib.metadata
    import os
    from pathlib import Path

    from server.remote_worker.client import TestSetDiffers, TokenRefused, WorkerApi
    from server.remote_worker.transport import TlsConfig, Transport, TransportError
    from server.remote_worker.worker import RemoteWorker
    from server.worker.inputs import ImagesOnly
    from server.worker.loop import build_runner, worker_id
    from server.worker.test_set import TestSetMismatch, verify_images_stamp

    token = os.environ.get("CSAWM_WORKER_TOKEN", "").strip()
    if not token:
        raise fail("CSAWM_WORKER_TOKEN is not set: `csawm admin create-worker NAME` prints one", EXIT_REFUSED)
    if settings.benchmark_dir is None:
        raise fail("CSAWM_BENCHMARK_DIR is not set: a worker needs the test images to run models on")

    def path_of(variable: str) -> Path | None:
        value = os.environ.get(variable, "").strip()
        return Path(value) if value else None

    tls = TlsConfig(
        ca=path_of("CSAWM_SERVER_CA"), cert=path_of("CSAWM_WORKER_CERT"), key=path_of("CSAWM_WORKER_KEY")
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        inputs = ImagesOnly.prepare(settings.benchmark_dir, settings.data_dir, settings.run.preflight_images)
    except (OSError, ValueError) as exc:
        raise fail(f"CSAWM_BENCHMARK_DIR: {exc}") from None
    runner = build_runner(settings)
    if not runner.mounts_local_inputs:  # the Kubernetes runner: its Pods mount the loaded volume
        try:
            verify_images_stamp(settings.k8s.test_set_digest_file, inputs)
        except TestSetMismatch as exc:
            raise fail(str(exc)) from None
    try:
        transport = Transport(url, token, tls)
    except (TransportError, OSError) as exc:
        raise fail(str(exc)) from None
    with transport:
        version = importlib.metadata.version("csawm-leaderboard")[:64]
        api = WorkerApi(transport, name or worker_id(), version, inputs.digest)
        loop = RemoteWorker(settings, api, runner, inputs)
        _stop_on_signals(loop.request_stop)
        typer.echo(f"remote worker {api.instance} of {transport.url} started", err=True)
        try:
            loop.run_forever()
        except TestSetDiffers as exc:
            raise fail(f"the test set differs from the server's: {exc}") from None
        except TokenRefused as exc:
            raise fail(str(exc), EXIT_REFUSED) from None
    typer.echo(f"remote worker {api.instance} stopped", err=True)
