"""A run's life outside the status machine: creation, cancel requests, stage progress, review state.

Every change to a run goes through a guarded function of `server.runs`: its status through
`transitions.transition`, its lease through `leases`, and the rest through this module. Nothing
else builds a `RunEvent` (the timeline) or writes a lease column; a test holds that line
(tests/server/runs/test_lifecycle.py).

* `create` — a new run starts ``queued``, unleased, unreviewed, with one ``submitted`` event;
* `request_cancel` — an active run past the queue is asked to stop (its worker sees the flag at
  its next heartbeat); a queued run is cancelled at once through `transition` instead;
* `advance` — a stage's success, under the worker's lease: the next status along
  ``preflight → running → scoring → succeeded`` and what the stage produced (`Progress`);
* `requeue` — a stop that the policy table retries or hands back: the run goes back to ``queued``
  under the worker's lease, with the status to resume from and, for a retry, the try counted and
  its earliest next start; `count_retry` counts a try that a takeover used up;
* `set_review` — the review state, by `transitions.REVIEW_ALLOWED`: never back to ``pending``, and
  only a succeeded run (or a baseline, queued because its operators chose it) is approved;
* `earlier_duplicate` — the earlier run of the same image that still counts, by the policy table's
  ``counts_for_duplicates`` column (`server.runs.policy.DUPLICATE_FREE_CODES`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from server.clock import utcnow
from server.core.errors import TransitionConflict
from server.models import LEASED_STATUSES, ReviewState, RunEvent, RunStatus, Submission
from server.runs.disclosure import StageLogs
from server.runs.policy import DUPLICATE_FREE_CODES
from server.runs.transitions import FORWARD, REVIEW_ALLOWED, TransitionError, note_event, transition
from server.scoring.results import RunRecord


def create(session: Session, sub: Submission, *, note: str) -> Submission:
    """Add the new run `sub` (not yet in the database) as ``queued`` with its first timeline event.

    Refused (`TransitionError`) for a row that exists already, or one that arrives with a status
    other than queued, a lease, a cancel request or a review decision: a run begins at the start.
    """
    if sub.id is not None or sub in session:
        raise TransitionError(f"run {sub.id} exists already; it cannot be created again")
    if sub.status not in (None, RunStatus.QUEUED):
        raise TransitionError(f"a new run starts queued, not {sub.status.value}")
    if sub.lease_owner is not None or sub.lease_expires_at is not None or sub.attempt:
        raise TransitionError("a new run starts without a lease")
    if sub.cancel_requested or sub.review_state not in (None, ReviewState.PENDING):
        raise TransitionError("a new run starts with no cancel request and no review decision")
    sub.status = RunStatus.QUEUED
    session.add(sub)
    session.flush()
    session.add(RunEvent(submission_id=sub.id, from_status=None, to_status=RunStatus.QUEUED.value, note=note))
    session.flush()
    return sub


def request_cancel(session: Session, sub: Submission, *, note: str) -> Submission:
    """Ask the worker running `sub` to stop it; recorded on the timeline. Refused unless the run
    is past the queue and not ended (a queued run is cancelled at once, an ended one stays)."""
    if sub.status not in LEASED_STATUSES:
        raise TransitionError(f"run {sub.id} is {sub.status.value}: there is no worker to ask to stop it")
    sub.cancel_requested = True
    note_event(session, sub.id, sub.status, note)
    session.flush()
    return sub


@dataclass(frozen=True)
class Progress:
    """What a stage produced, written with its status change (None: left as it is)."""

    timings: dict[str, Any] | None = None
    runtime: dict[str, Any] | None = None
    logs: StageLogs | None = None  # the stage's log tail, as `disclosure.stage_logs` shares it
    predictions_sha256: str | None = None
    reproducibility: RunRecord | None = None  # written whole (`RunRecord.to_json`)


def advance(
    session: Session,
    submission_id: int,
    to: RunStatus,
    *,
    owner: str,
    attempt: int,
    note: str,
    progress: Progress,
) -> Submission:
    """A stage succeeded: move the run (leased by `owner`, `attempt`) to the next status `to` and
    write `progress`. Refused for any other target (a stop goes through the policy table and
    `transition`) and, by `transition`, for a lost lease (`LeaseLost`)."""
    current = session.scalar(select(Submission.status).where(Submission.id == submission_id))
    if current is None or FORWARD.get(current) is not to:
        shown = "missing" if current is None else current.value
        raise TransitionError(f"run {submission_id} cannot advance from {shown} to {to.value}")
    sub = transition(session, submission_id, to, note=note, owner=owner, attempt=attempt)
    for item in fields(progress):
        value = getattr(progress, item.name)
        if isinstance(value, StageLogs):
            value.write(sub)
        elif isinstance(value, RunRecord):
            sub.reproducibility = value.to_json()
        elif value is not None:
            setattr(sub, item.name, value)
    session.flush()
    return sub


def requeue(
    session: Session,
    submission_id: int,
    *,
    owner: str,
    attempt: int,
    note: str,
    detail: str,
    resume_from: RunStatus,
    retry_after: timedelta | None,
) -> Submission:
    """Back to ``queued`` under the lease (`owner`, `attempt`): a hand-back (`retry_after` None) keeps
    the try count; a retry counts one more try and may not start before `retry_after` from now.
    `resume_from` is the status the run had reached (a run still queued resumes from the start)."""
    sub = transition(
        session, submission_id, RunStatus.QUEUED, note=note, detail=detail, owner=owner, attempt=attempt
    )
    sub.resume_status = resume_from.value if resume_from is not RunStatus.QUEUED else None
    if retry_after is not None:
        sub.retries += 1
        sub.retry_at = utcnow() + retry_after if retry_after > timedelta(0) else None
    session.flush()
    return sub


def count_retry(session: Session, submission_id: int, retries: int) -> None:
    """A takeover used up a try of the run (its previous worker stopped renewing): record the count."""
    sub = session.get(Submission, submission_id)
    if sub is not None:
        sub.retries = retries
        session.flush()


def set_review(
    session: Session,
    sub: Submission,
    to: ReviewState,
    *,
    reason: str | None,
    seeded: bool = False,
    now: datetime | None = None,
) -> ReviewState:
    """Set the review state of `sub` to `to` with `reason`; returns the state it had.

    Refused (`TransitionConflict`, the API's 409 ``invalid_state``) when `REVIEW_ALLOWED` has no such
    step, or when approving a run that has not succeeded. `seeded`: a pending baseline approved when
    `csawm seed-baselines` queues it (its operators chose it), whatever its status.
    """
    previous = sub.review_state
    if to not in REVIEW_ALLOWED[previous]:
        raise TransitionConflict(f"run {sub.id}: review state cannot go from {previous.value} to {to.value}")
    if seeded and not (sub.baseline and previous is ReviewState.PENDING):
        raise TransitionConflict(f"run {sub.id} is not a pending baseline; it cannot be approved as seeded")
    if to is ReviewState.APPROVED and sub.status is not RunStatus.SUCCEEDED and not seeded:
        raise TransitionConflict(
            f"only a succeeded submission can be approved (this one is {sub.status.value})"
        )
    sub.review_state = to
    sub.review_reason = reason
    sub.reviewed_at = now or utcnow()
    session.flush()
    return previous


def earlier_duplicate(session: Session, digest: str, scope: ColumnElement[bool]) -> int | None:
    """The oldest run of image `digest` among those `scope` selects (a team's runs, the baselines)
    that still counts: its ending's rule has ``counts_for_duplicates`` (cancelled runs and runs lost
    to our failures do not block a resubmission)."""
    codes = sorted(code.value for code in DUPLICATE_FREE_CODES)
    return session.scalar(
        select(Submission.id)
        .where(scope, Submission.image_digest == digest)
        .where(Submission.error_code.is_(None) | Submission.error_code.not_in(codes))
        .order_by(Submission.id)
        .limit(1)
    )
