"""The one guarded function through which every run status changes (docs/design.md, Server).

``queued → preflight → running → scoring → succeeded | failed | cancelled``; any active state may go
back to ``queued`` (a retry or a hand-back, see `server.runs.policy`) or to ``failed`` / ``cancelled``.
A requeued run remembers where it was (``resume_status``) and leaves the queue straight into that
status: a passed preflight is not run again, stored hidden predictions are scored, not re-run.
The row is re-read ``FOR UPDATE`` (PostgreSQL) inside the caller's write transaction (``BEGIN
IMMEDIATE`` on SQLite), so the from-state check and the write cannot interleave with another
process; a worker passes its lease (`owner`, `attempt`) and loses the right to write once another
worker took the run over. Entering a terminal status enqueues the team's notifications in the same
transaction (`server.notifications.outbox`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.clock import utcnow
from server.core.errors import Conflict, NotFound
from server.models import TERMINAL_STATUSES, FailedPhase, ReviewState, RunEvent, RunStatus, Submission
from server.notifications import outbox
from server.notifications.events import EVENT_OF_STATUS
from server.operations import budgets

# The statuses a stage moves a run into when it succeeds (each from the one before).
FORWARD: dict[RunStatus, RunStatus] = {
    RunStatus.PREFLIGHT: RunStatus.RUNNING,
    RunStatus.RUNNING: RunStatus.SCORING,
    RunStatus.SCORING: RunStatus.SUCCEEDED,
}
_ENDS = (RunStatus.FAILED, RunStatus.CANCELLED)
# From queued a run starts (or resumes) at any active status; an active one moves forward, back to
# the queue, or ends; an ended one goes nowhere.
ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({*FORWARD, *_ENDS}),
    **{status: frozenset({forward, RunStatus.QUEUED, *_ENDS}) for status, forward in FORWARD.items()},
    **{status: frozenset() for status in TERMINAL_STATUSES},
}


# The review state's own allowed-from table (applied by `server.runs.lifecycle.set_review`, which
# also approves only a succeeded run): a maintainer may change a decision (approve a hidden run,
# disqualify an approved one, give a new reason), but a decided run never goes back to pending.
REVIEW_ALLOWED: dict[ReviewState, frozenset[ReviewState]] = {
    state: frozenset({ReviewState.APPROVED, ReviewState.HIDDEN, ReviewState.DISQUALIFIED})
    for state in ReviewState
}


class TransitionError(Conflict):
    code = "invalid_transition"


class LeaseLost(Conflict):
    """The caller no longer holds the run's lease; it must stop touching the run."""

    code = "lease_lost"


def note_event(
    session: Session, sub_id: int, status: RunStatus, note: str, detail: str | None = None
) -> None:
    """A timeline event that leaves the status as it is (a cancel request, a hold, a takeover, a wait)."""
    value = status.value
    session.add(RunEvent(submission_id=sub_id, from_status=value, to_status=value, note=note, detail=detail))


def load_locked(session: Session, submission_id: int) -> Submission:
    sub = session.scalar(
        select(Submission)
        .where(Submission.id == submission_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if sub is None:
        raise NotFound(f"submission {submission_id} does not exist")
    return sub


def transition(
    session: Session,
    submission_id: int,
    to: RunStatus,
    *,
    note: str | None = None,
    owner: str | None = None,
    attempt: int | None = None,
    error_code: str | None = None,
    failed_phase: FailedPhase | None = None,
    error_message: str | None = None,
    error_detail: str | None = None,
    detail: str | None = None,
) -> Submission:
    """Move a run to `to` if its current status allows it; record the event; return the row.

    `owner`/`attempt`, when given, must match the run's lease (else `LeaseLost`). Entering a terminal
    status or going back to ``queued`` releases the lease. `note` and `error_message` are shown to
    the submitter; `detail` and `error_detail` only to maintainers (`server.runs.disclosure`).
    """
    sub = load_locked(session, submission_id)
    if owner is not None and (sub.lease_owner != owner or (attempt is not None and sub.attempt != attempt)):
        raise LeaseLost(f"run {submission_id} is no longer leased by {owner} (attempt {attempt})")
    if to not in ALLOWED[sub.status]:
        raise TransitionError(f"run {submission_id} cannot go from {sub.status.value} to {to.value}")
    now = utcnow()
    previous = sub.status
    sub.status = to
    if previous == RunStatus.QUEUED and sub.started_at is None and to != RunStatus.CANCELLED:
        sub.started_at = now
    if to in TERMINAL_STATUSES:
        sub.finished_at = now
        sub.error_code = error_code
        sub.failed_phase = failed_phase
        sub.error_message = error_message
        sub.error_detail = error_detail
    if to in TERMINAL_STATUSES or to == RunStatus.QUEUED:
        sub.lease_owner = None
        sub.lease_expires_at = None
    session.add(
        RunEvent(
            submission_id=sub.id,
            from_status=previous.value,
            to_status=to.value,
            at=now,
            note=note,
            detail=detail,
        )
    )
    session.flush()
    if to in TERMINAL_STATUSES:
        # The team's notices are written in this same transaction (durable outbox, issue 15 item 6).
        outbox.enqueue(session, sub, EVENT_OF_STATUS[to])
        alert = None if sub.baseline else budgets.note_usage(session, sub.team_id, sub.phase)
        if alert is not None:  # the team reached 80 % of its compute budget (server/operations/budgets.py)
            outbox.enqueue_maintainers(
                session, sub.team_id, budgets.ALERT_EVENT, budgets.alert_payload(session, alert)
            )
    return sub
