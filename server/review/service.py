"""Approve, hide or disqualify a submission; every action lands in the audit log, and a change of
the review state notifies the team (`server.notifications.outbox`). The state itself changes by
`server.runs.lifecycle.set_review` (its allowed table: approved only once the run succeeded)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.core import audit, text
from server.core.errors import BadRequest, NotFound
from server.core.principal import Principal
from server.models import AuditEntry, ReviewState, RunStatus, Submission
from server.notifications import outbox
from server.notifications.events import Event
from server.review.schemas import ReviewAction
from server.runs import lifecycle

_TARGET = {
    ReviewAction.APPROVE: ReviewState.APPROVED,
    ReviewAction.HIDE: ReviewState.HIDDEN,
    ReviewAction.DISQUALIFY: ReviewState.DISQUALIFIED,
}


def review_queue(session: Session) -> list[Submission]:
    """Scored submissions waiting for a decision, oldest first."""
    return list(
        session.scalars(
            select(Submission)
            .where(Submission.status == RunStatus.SUCCEEDED, Submission.review_state == ReviewState.PENDING)
            .order_by(Submission.finished_at, Submission.id)
        )
    )


def review(
    session: Session, actor: Principal, submission_id: int, action: ReviewAction, reason: str
) -> Submission:
    reason = text.require(text.check_text, reason.strip(), "reason")  # the web form's too
    if action != ReviewAction.APPROVE and len(reason) < 3:
        raise BadRequest(f"a reason is required to {action.value} a submission")
    sub = session.get(Submission, submission_id)
    if sub is None:
        raise NotFound(f"submission {submission_id} not found")
    previous = lifecycle.set_review(session, sub, _TARGET[action], reason=reason or None)
    audit.record(
        session,
        actor=actor.audit_name,
        actor_user_id=actor.user_id,
        action=f"review_{action.value}",
        target_type="submission",
        target_id=sub.id,
        reason=reason or None,
        detail={"from": previous.value, "to": sub.review_state.value},
    )
    if sub.review_state != previous:
        outbox.enqueue(session, sub, Event.REVIEWED)  # same transaction as the review (issue 15 item 6)
    return sub


def audit_log(session: Session, *, action: str | None, limit: int, offset: int) -> list[AuditEntry]:
    query = select(AuditEntry)
    if action:
        query = query.where(AuditEntry.action == action)
    return list(session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset)))
