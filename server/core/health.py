"""Liveness, readiness and Prometheus metrics endpoints (no auth)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.core import migrate
from server.core.deps import StateDep
from server.core.errors import NotReady

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(state: StateDep) -> dict[str, str]:
    """The database answers and its schema is at the latest migration."""
    try:
        with state.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        up_to_date = migrate.is_up_to_date(state.db.engine)
    except SQLAlchemyError as exc:
        raise NotReady(f"database unreachable: {exc.__class__.__name__}") from None
    if not up_to_date:
        raise NotReady("database schema is not at the latest migration (run `csawm db upgrade`)")
    return {"status": "ready"}


@router.get("/metrics")
def metrics(state: StateDep) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
