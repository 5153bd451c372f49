"""The lease columns of a run, written here only: taking a run, renewing, recording its container.

A lease is (`lease_owner`, `attempt`, `lease_expires_at`). `take` leases a queued run, or takes over
an active run whose lease expired (its worker died), and bumps `attempt`; every later write is
conditional on owner and attempt, so a worker that lost its lease can no longer change the run.
Finding the candidate is the queue's business (`server.worker.queue`); these functions only guard
and write. Ending a run or requeueing it releases the lease in `server.runs.transitions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.clock import utcnow
from server.models import LEASED_STATUSES, RunEvent, RunStatus, Submission
from server.runs.transitions import TransitionError, note_event, transition


@dataclass(frozen=True)
class Taken:
    """A lease just taken: the new `attempt`, the status the work resumes at, the previous owner
    when the lease took over an expired one."""

    attempt: int
    status: RunStatus
    recovered_from: str | None


def take(session: Session, sub: Submission, *, owner: str, ttl: timedelta) -> Taken | None:
    """Lease `sub` (read in this write transaction) to `owner` for `ttl`; None when another worker
    leased it first (its `attempt` moved on).

    A queued run leaves the queue at the status it resumes at (`transition`); an active run is taken
    over only once its lease expired, with a timeline event that says so. Refused (`TransitionError`)
    for an ended run, a queued run whose retry time has not come, or a live lease.
    """
    now = utcnow()
    if sub.status == RunStatus.QUEUED:
        if sub.retry_at is not None and sub.retry_at > now:
            raise TransitionError(f"run {sub.id} waits to be retried until {sub.retry_at.isoformat()}")
    elif sub.status in LEASED_STATUSES:
        if sub.lease_expires_at is not None and sub.lease_expires_at >= now:
            raise TransitionError(f"run {sub.id} is leased by {sub.lease_owner} until {sub.lease_expires_at}")
    else:
        raise TransitionError(f"run {sub.id} ended ({sub.status.value}); it cannot be leased")
    previous_owner, previous_attempt = sub.lease_owner, sub.attempt
    attempt = previous_attempt + 1
    written = session.execute(
        update(Submission)
        .where(Submission.id == sub.id, Submission.attempt == previous_attempt)
        .values(lease_owner=owner, lease_expires_at=now + ttl, heartbeat_at=now, attempt=attempt)
        .execution_options(synchronize_session=False)
    )
    if written.rowcount != 1:  # type: ignore[attr-defined]
        return None
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
        return Taken(attempt=attempt, status=status, recovered_from=None)
    recovered = previous_owner or "unknown"
    detail = f"lease of {recovered} expired; taken over by {owner} (attempt {attempt})"
    note_event(session, sub.id, sub.status, "resumed after the worker running it was lost", detail)
    return Taken(attempt=attempt, status=sub.status, recovered_from=recovered)


def renew(session: Session, submission_id: int, *, owner: str, attempt: int, ttl: timedelta) -> bool:
    """Extend the lease if `owner` still holds it at `attempt`; False when it was lost."""
    now = utcnow()
    return _write_leased(session, submission_id, owner, attempt, lease_expires_at=now + ttl, heartbeat_at=now)


def record_handle(
    session: Session, submission_id: int, *, owner: str, attempt: int, handle: str, started: bool
) -> bool:
    """Write down the run's container `handle` under the lease (before start: what to stop if this
    worker dies; after: the real one, and when the first container started). False when the lease
    was lost."""
    values: dict[str, object] = {"runner_handle": handle}
    if started:
        sub = session.get(Submission, submission_id)
        if sub is not None and sub.container_started_at is None:
            values["container_started_at"] = utcnow()
    return _write_leased(session, submission_id, owner, attempt, **values)


def _write_leased(session: Session, submission_id: int, owner: str, attempt: int, **values: object) -> bool:
    """Write `values` on the run only while `owner` holds its lease at `attempt`; False when it does not."""
    result = session.execute(
        update(Submission)
        .where(Submission.id == submission_id, Submission.lease_owner == owner, Submission.attempt == attempt)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def note_under_lease(
    session: Session, submission_id: int, *, owner: str, attempt: int, note: str, detail: str
) -> bool:
    """Add a timeline event to a run without changing its status (e.g. "waiting for GPU capacity",
    `server.worker.loop`), only while `owner` holds the lease at `attempt` and not again while
    the latest event says the same; True when written."""
    sub = session.get(Submission, submission_id)
    if sub is None or sub.lease_owner != owner or sub.attempt != attempt:
        return False
    latest = session.scalar(
        select(RunEvent.note)
        .where(RunEvent.submission_id == submission_id)
        .order_by(RunEvent.id.desc())
        .limit(1)
    )
    if latest == note:
        return False
    note_event(session, submission_id, sub.status, note, detail)
    return True
