"""Leases on runs: take the next run, keep it with a heartbeat, or notice it was taken over.

A lease is (`lease_owner`, `attempt`, `lease_expires_at`). A worker takes a queued run, or an active
run whose lease expired (its worker died), and bumps `attempt`; every later write is conditional on
owner and attempt, so a worker that lost its lease can no longer change the run. On PostgreSQL the
candidate is selected ``FOR UPDATE SKIP LOCKED`` (workers never wait on each other's candidates); on
SQLite the write transaction began ``BEGIN IMMEDIATE``, so the select and the conditional UPDATE
below run under the database write lock. A queued run of a held team (`server.runs.holds`) is not
leased until a maintainer releases the team; a run already past the queue is finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update

from server.clock import utcnow
from server.core.db import Database
from server.models import LEASED_STATUSES, RunEvent, RunStatus, Submission
from server.runs.holds import held_team_ids
from server.runs.transitions import transition


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
        query = (
            select(Submission)
            .where(
                or_(
                    (Submission.status == RunStatus.QUEUED)
                    & (Submission.retry_at.is_(None) | (Submission.retry_at <= now))
                    & Submission.team_id.not_in(held_team_ids()),
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
        previous_owner, previous_attempt = sub.lease_owner, sub.attempt
        taken = session.execute(
            update(Submission)
            .where(Submission.id == sub.id, Submission.attempt == previous_attempt)
            .values(
                lease_owner=owner, lease_expires_at=now + ttl, heartbeat_at=now, attempt=previous_attempt + 1
            )
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        attempt = previous_attempt + 1
        if sub.status == RunStatus.QUEUED:
            # A retried or handed-back run resumes where it stopped (server.runs.transitions).
            status = RunStatus(sub.resume_status) if sub.resume_status else RunStatus.PREFLIGHT
            transition(
                session,
                sub.id,
                status,
                note="resumed" if sub.resume_status else "started",
                detail=f"leased by {owner} (attempt {attempt})",
                owner=owner,
                attempt=attempt,
            )
            sub.resume_status = None
            sub.retry_at = None
            recovered = None
        else:
            status, recovered = sub.status, previous_owner or "unknown"
            session.add(
                RunEvent(
                    submission_id=sub.id,
                    from_status=sub.status.value,
                    to_status=sub.status.value,
                    note="resumed after the worker running it was lost",
                    detail=f"lease of {recovered} expired; taken over by {owner} (attempt {attempt})",
                )
            )
        return Lease(
            submission_id=sub.id,
            owner=owner,
            attempt=attempt,
            status=status,
            recovered_from=recovered,
            previous_handle=sub.runner_handle,
            retries=sub.retries,
        )


@dataclass(frozen=True)
class Heartbeat:
    held: bool
    cancel_requested: bool


def renew(db: Database, lease: Lease, ttl: timedelta) -> Heartbeat:
    """Extend the lease if still ours; report whether a cancel was requested meanwhile."""
    now = utcnow()
    with db.transaction() as session:
        result = session.execute(
            update(Submission)
            .where(
                Submission.id == lease.submission_id,
                Submission.lease_owner == lease.owner,
                Submission.attempt == lease.attempt,
            )
            .values(lease_expires_at=now + ttl, heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return Heartbeat(held=False, cancel_requested=False)
        cancel = session.scalar(
            select(Submission.cancel_requested).where(Submission.id == lease.submission_id)
        )
        return Heartbeat(held=True, cancel_requested=bool(cancel))
