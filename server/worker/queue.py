"""The run queue: find the next run to lease, keep it with a heartbeat, notice it was taken over.

A worker takes a queued run, or an active run whose lease expired (its worker died); the lease
itself is written by `server.runs.leases` (owner, attempt, expiry), and every later write is
conditional on owner and attempt. On PostgreSQL the candidate is selected ``FOR UPDATE SKIP
LOCKED`` (workers never wait on each other's candidates); on SQLite the write transaction began
``BEGIN IMMEDIATE``, so the select and the conditional UPDATE run under the database write lock. A
queued run of a held team (`server.runs.holds`) is not leased until a maintainer releases the team;
a run already past the queue is finished. While runs are paused (`server.operations.pause`)
nothing is leased.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select

from server.clock import utcnow
from server.core.db import Database
from server.models import LEASED_STATUSES, RunStatus, Submission, TeamHold
from server.operations import pause
from server.runs import leases


@dataclass(frozen=True)
class Lease:
    submission_id: int
    owner: str
    attempt: int
    status: RunStatus  # the status right after leasing: where the work resumes
    recovered_from: str | None  # the previous owner, when this lease took over an expired one
    previous_handle: str | None
    retries: int = 0  # failed tries before this lease (server.runs.policy)


def lease_next(db: Database, owner: str, ttl: timedelta) -> Lease | None:
    """Lease the oldest runnable run, or return None when there is none."""
    now = utcnow()
    with db.transaction() as session:
        if pause.runs_paused(session):  # a maintenance pause: queued runs keep their place
            return None
        query = (
            select(Submission)
            .where(
                or_(
                    (Submission.status == RunStatus.QUEUED)
                    & (Submission.retry_at.is_(None) | (Submission.retry_at <= now))
                    & Submission.team_id.not_in(select(TeamHold.team_id)),  # held teams wait
                    Submission.status.in_(LEASED_STATUSES)
                    & (Submission.lease_expires_at.is_(None) | (Submission.lease_expires_at < now)),
                )
            )
            .order_by(Submission.id)
            .limit(1)
        )
        if not db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        sub = session.scalar(query)
        if sub is None:
            return None
        taken = leases.take(session, sub, owner=owner, ttl=ttl)
        if taken is None:
            return None
        return Lease(
            submission_id=sub.id,
            owner=owner,
            attempt=taken.attempt,
            status=taken.status,
            recovered_from=taken.recovered_from,
            previous_handle=sub.runner_handle,
            retries=sub.retries,
        )


@dataclass(frozen=True)
class Heartbeat:
    held: bool
    cancel_requested: bool


def renew(db: Database, lease: Lease, ttl: timedelta) -> Heartbeat:
    """Extend the lease if still ours; report whether a cancel was requested meanwhile."""
    with db.transaction() as session:
        held = leases.renew(session, lease.submission_id, owner=lease.owner, attempt=lease.attempt, ttl=ttl)
        if not held:
            return Heartbeat(held=False, cancel_requested=False)
        cancel = session.scalar(
            select(Submission.cancel_requested).where(Submission.id == lease.submission_id)
        )
        return Heartbeat(held=True, cancel_requested=bool(cancel))
