"""`csawm worker`: a standalone worker process (several may run against one PostgreSQL database)."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Annotated

import typer

from server.cli._server_common import fail, open_database, settings_or_exit


def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Process queued runs, then exit when none is left.")
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="Worker name in leases (default host:pid:rand).")
    ] = None,
) -> None:
    """Lease runs from the queue and execute them until stopped.

    SIGTERM or SIGINT: stop the current run's container, hand the run back to the queue (no attempt
    burned, nothing charged; the next worker resumes it), then exit.
    """
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

        def _stop(signum: int, frame: FrameType | None) -> None:
            loop.request_stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
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
