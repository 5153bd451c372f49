"""The FastAPI application factory.

Nothing happens at import: `create_app` builds the app, and its lifespan opens the database, applies
migrations to an embedded SQLite, and starts the embedded worker (docs/design.md). Extra routers (the
web pages of ``server.web``) are mounted by passing them in `routers`; by default ``server.web.router``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI

from server.agreements.document import Agreement, load_agreement
from server.core import migrate
from server.core.db import Database
from server.core.deps import get_principal
from server.core.error_handlers import install_error_handlers
from server.core.guard import RequestGuard
from server.core.metrics import Metrics
from server.core.settings import Settings, load_settings
from server.core.state import AppState, Parts

if TYPE_CHECKING:
    from server.notifications.dispatcher import Dispatcher
    from server.worker.loop import Worker


def _routers() -> list[APIRouter]:
    """The API's routers, after the API documentation and the client's wheel (docs/submitting.md)."""
    from server.accounts.router import router as accounts_router
    from server.agreements.router import router as agreements_router
    from server.core.apidocs import router as docs_router
    from server.health import router as health_router
    from server.leaderboard.router import router as leaderboard_router
    from server.leaderboard.router import snapshots_router
    from server.notifications.router import router as notifications_router
    from server.operations.router import router as operations_router
    from server.operations.test_set_shape import router as test_set_shape_router
    from server.phases.router import router as phases_router
    from server.quota.router import router as quota_router
    from server.registrations.router import admin_router as registrations_admin_router
    from server.registrations.router import router as registrations_router
    from server.review.router import router as review_router
    from server.submissions.router import router as submissions_router
    from server.web.downloads import router as downloads_router
    from server.worker_api.router import router as worker_router

    return [
        docs_router,
        downloads_router,
        health_router,
        accounts_router,
        submissions_router,
        quota_router,
        agreements_router,
        leaderboard_router,
        snapshots_router,
        phases_router,
        review_router,
        notifications_router,
        operations_router,
        test_set_shape_router,
        registrations_router,
        registrations_admin_router,
        worker_router,
    ]


def _openapi_with_errors(app: FastAPI) -> None:
    """Replace `app.openapi` by one that completes the generated document (server.core.openapi)."""
    from server.core.openapi import complete
    from server.submissions.schemas import RegistrySubmissionIn

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate(), [RegistrySubmissionIn])
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build_state(settings: Settings, db: Database, agreement: Agreement | None) -> AppState:
    """The app's state with every per-app cache made now, at startup (the worker and the
    dispatcher are started by the lifespan)."""
    from server.leaderboard.cache import BoardCache
    from server.leaderboard.references import ReferenceCache
    from server.leaderboard.snapshots import freeze_revealed
    from server.phases.service import RevealHook
    from server.review.flags import RankCache
    from server.submissions.upload import UploadSlots
    from server.web.admin_rescore import RescoreJobs
    from server.web.cache import PLOT_CACHE_SIZE, PlotCache, plot_key
    from server.web.session import SessionSigner, session_key

    parts = Parts(
        UploadSlots(settings.max_concurrent_uploads),
        ReferenceCache(),  # the test set's reference rows of the leaderboard
        BoardCache(settings.significance_alpha),  # the one leaderboard cache (API, pages, downloads)
        PlotCache(PLOT_CACHE_SIZE),  # the pages' rendered plots
        SessionSigner.from_secret(session_key(settings)),  # the web pages' cookie signer
        RankCache(),  # ranked prediction files of the review flags
        RevealHook(freeze_revealed),  # a reveal freezes the revealed board (server.leaderboard.snapshots)
        RescoreJobs(),  # the re-scoring job started from the web (server.web.admin_rescore)
    )
    if agreement is not None:  # CSAWM_DUA_FILE, read once in create_app
        parts.add(agreement)
    return AppState(
        settings=settings,
        db=db,
        metrics=Metrics(db, alive_within=3 * settings.lease_ttl),  # alive: as /readyz counts it
        plot_key=plot_key(settings),
        parts=parts,
    )


WORKER_STOP_S = 9.0  # the embedded worker's time to hand its run back on shutdown


def create_app(
    settings: Settings | None = None,
    *,
    runner: Any = None,
    embedded_worker: bool | None = None,
    migrate_on_start: bool | None = None,
    routers: Sequence[APIRouter] | None = None,
    dispatcher: bool | None = None,
) -> FastAPI:
    """Build the app.

    Parameters
    ----------
    settings : read from the environment when None. ``CSAWM_DUA_FILE`` is read here, once;
        a file that cannot serve raises `SettingsError` before the app exists.
    runner : the execution backend for the embedded worker; built from ``settings.runner`` when None.
    embedded_worker : start a worker thread in this process (default: ``settings.embedded_worker``).
    migrate_on_start : apply Alembic migrations at startup (default: only for SQLite).
    routers : extra routers mounted at the root (default: ``server.web.router.router`` if present).
    dispatcher : run the notification dispatcher in this process (default: ``settings.embedded_dispatcher``).
    """
    settings = settings or load_settings()
    # Read once, here: a bad CSAWM_DUA_FILE stops the server before it serves (SettingsError).
    agreement = load_agreement(settings.dua_file)
    start_worker = settings.embedded_worker if embedded_worker is None else embedded_worker
    start_dispatcher = settings.embedded_dispatcher if dispatcher is None else dispatcher
    do_migrate = settings.is_sqlite if migrate_on_start is None else migrate_on_start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # DATA_DIR (token hashes, uploads, the session key) is the server's alone: 0700 (an embedded
        # SQLite file is created 0600 by `server.core.db.make_engine`).
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(settings.data_dir, 0o700)
        db = Database.connect(settings.effective_database_url, session_info=settings.session_info)
        if do_migrate:
            migrate.upgrade(db.engine, phase=settings.phase)
        state = build_state(settings, db, agreement)
        app.state.csawm = state
        threads: list[Worker | Dispatcher] = []
        if start_worker:
            from server.worker.loop import Worker, build_runner

            threads.append(Worker(settings, db, runner if runner is not None else build_runner(settings)))
        if start_dispatcher:
            from server.notifications.dispatcher import Dispatcher

            threads.append(Dispatcher(settings, db))
        for thread in threads:
            state.parts.add(thread)
            thread.start_thread()
        try:
            yield
        finally:
            for thread in reversed(threads):  # the dispatcher first, the worker last
                thread.stop(timeout=WORKER_STOP_S)
            db.dispose()

    app = FastAPI(
        title="CSAW-M private leaderboard",
        version="1",
        description="Submit model containers, follow their runs, read the leaderboard (docs/api.md).",
        lifespan=lifespan,
        docs_url=None,  # served from packaged assets by server.core.apidocs
        redoc_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(
        RequestGuard, max_body_bytes=settings.max_json_bytes, principal_dependency=get_principal
    )
    from server.web.router import router as web_router

    for router in [*_routers(), *(routers if routers is not None else [web_router])]:
        app.include_router(router)
    _openapi_with_errors(app)
    return app
