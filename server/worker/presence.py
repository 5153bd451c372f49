"""Worker heartbeat rows: which workers are alive, what they do, and their last error.

Each worker upserts its row (`WorkerHeartbeat`) at every loop turn and every lease renewal, so
``/readyz`` can tell a dead embedded worker (thread gone, or heartbeat older than three lease TTLs)
from an idle one, and ``/metrics`` can export the age of every worker's heartbeat.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete

from server.clock import utcnow
from server.core.db import Database
from server.models import WorkerHeartbeat

log = logging.getLogger("csawm.worker")

FORGET_AFTER = timedelta(days=1)  # rows of workers gone this long are deleted


def beat(
    db: Database,
    name: str,
    *,
    state: str,
    submission_id: int | None = None,
    error: str | None = None,
    started_at: datetime | None = None,
) -> bool:
    """Write this worker's row; False (logged) when the database is not reachable."""
    now = utcnow()
    try:
        with db.transaction() as session:
            row = session.get(WorkerHeartbeat, name)
            if row is None:
                row = WorkerHeartbeat(name=name, started_at=started_at or now)
                session.add(row)
            row.beat_at = now
            row.state = state
            row.submission_id = submission_id
            if error is not None or state != "backoff":
                row.last_error = error
    except Exception:
        log.warning("worker %s: cannot write its heartbeat", name, exc_info=True)
        return False
    return True


def forget(db: Database, name: str) -> None:
    """Remove this worker's row (a clean exit) and rows of workers long gone."""
    try:
        with db.transaction() as session:
            session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == name))
            session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.beat_at < utcnow() - FORGET_AFTER))
    except Exception:
        log.warning("worker %s: cannot remove its heartbeat row", name, exc_info=True)


def age_s(db: Database, name: str) -> float | None:
    """Seconds since `name` last beat (None when it has no row)."""
    with db.transaction(write=False) as session:
        row = session.get(WorkerHeartbeat, name)
        return None if row is None else (utcnow() - row.beat_at).total_seconds()
