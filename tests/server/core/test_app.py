from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from srvtest.app import Api, make_settings, operator_metrics, running_api

from server.agreements.document import Agreement
from server.core import migrate
from server.core.db import Database
from server.core.state import AppState, Parts
from server.leaderboard.cache import BoardCache
from server.leaderboard.references import ReferenceCache
from server.models import Base
from server.notifications.dispatcher import Dispatcher
from server.review.flags import RankCache
from server.submissions.upload import UploadSlots
from server.web.cache import PlotCache
from server.web.session import SessionSigner
from server.worker.loop import Worker


def test_health_ready_docs(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    assert api.client.get("/readyz").json() == {"status": "ready"}
    assert api.client.get("/docs").status_code == 200
    paths = api.client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/submissions", "/api/v1/leaderboard", "/api/v1/quota", "/api/v1/admin/audit"):
        assert path in paths


def test_metrics_exposes_queue_and_runs(api: Api) -> None:
    body = operator_metrics(api)
    assert "csawm_queue_depth 0.0" in body
    assert 'csawm_runs{status="succeeded"} 0.0' in body
    assert "csawm_run_duration_seconds_bucket" in body
    assert "csawm_upload_bytes_total" in body


def test_readyz_refuses_an_unmigrated_database(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    settings.data_dir.mkdir(parents=True)
    with running_api(settings, migrate_on_start=False) as api:
        response = api.client.get("/readyz")
        assert response.status_code == 503
        assert "csawm db upgrade" in response.json()["error"]["message"]


def test_migrations_match_the_models(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    url = db_url.replace("postgresql://", "postgresql+psycopg://")
    db = Database.connect(url)
    try:
        migrate.upgrade(db.engine)
        assert migrate.is_up_to_date(db.engine)
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert set(inspect(db.engine).get_table_names()) >= set(Base.metadata.tables)
        migrate.upgrade(db.engine)  # idempotent
    finally:
        db.dispose()


def test_every_per_app_object_is_made_at_startup_and_serves_the_requests_issue_20(api: Api) -> None:
    """The app state is typed and complete once the lifespan ran: no cache is made on first use (a
    first request racing another used to build two), and the requests use the state's own."""
    state = api.client.app.state.csawm  # type: ignore[attr-defined]
    assert isinstance(state, AppState)
    # Every feature's part is there before the first request; the worker, the dispatcher and the
    # agreement are not (not started here; no CSAWM_DUA_FILE).
    for kind in (UploadSlots, ReferenceCache, BoardCache, PlotCache, SessionSigner, RankCache):
        assert isinstance(state.parts.get(kind), kind)
    for absent in (Worker, Dispatcher, Agreement):
        assert state.parts.find(absent) is None
    board = state.parts.get(BoardCache)
    assert api.client.get("/api/v1/leaderboard").status_code == 200
    assert state.parts.get(BoardCache) is board and board.key is not None and board.boards


def test_parts_give_one_object_per_class_typed_and_refuse_a_second() -> None:
    slots = UploadSlots(2)
    parts = Parts(slots)
    assert parts.get(UploadSlots) is slots
    assert parts.find(RankCache) is None
    with pytest.raises(LookupError, match="RankCache"):
        parts.get(RankCache)
    with pytest.raises(ValueError, match="already holds"):
        parts.add(UploadSlots(3))
