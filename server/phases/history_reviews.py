"""A run's review state at an earlier instant, from the audit trail (issue 22 item 5, boards as they
stood). Here, below `server.leaderboard`, because `server.phases.ladder_steps` needs it too and phases
may not import leaderboard (the "no cycle between packages" contract); `server.leaderboard.history`
re-exports it.

A run's state at `at` is the ``to`` of its last ``review_*`` entry at or before `at`, else the
``from`` of its first later entry, else (never reviewed) its current state.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import AuditEntry, ReviewState

REVIEW_ACTIONS = ("review_approve", "review_hide", "review_disqualify")  # server.review.service


def review_states_at(
    session: Session, current: Iterable[tuple[int, ReviewState]], at: datetime
) -> dict[int, ReviewState]:
    """The review state at `at` of each ``(submission id, current state)`` (module docstring)."""
    states = dict(current)
    if not states:
        return {}
    entries = session.execute(
        select(AuditEntry.target_id, AuditEntry.created_at, AuditEntry.detail)
        .where(
            AuditEntry.action.in_(REVIEW_ACTIONS),
            AuditEntry.target_type == "submission",
            AuditEntry.target_id.in_([str(sub_id) for sub_id in states]),
        )
        .order_by(AuditEntry.id)
    )
    before: dict[int, ReviewState] = {}
    after: dict[int, ReviewState] = {}
    for target, created, detail in entries:
        sub_id, change = int(target), detail or {}
        if created <= at:
            before[sub_id] = ReviewState(change["to"])
        elif sub_id not in after:
            after[sub_id] = ReviewState(change["from"])
    return {sub_id: before.get(sub_id, after.get(sub_id, state)) for sub_id, state in states.items()}
