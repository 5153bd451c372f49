"""Team holds (issue 19 item 1): after the scorer failed on a team's predictions, none of the team's
runs is leased until a maintainer has looked.

Why hold instead of re-running: the scorer crashed on output the reader accepted, so the model's
output may be what broke it. Re-scoring it, or scoring the team's next image (one extra layer gives
a new digest, so the hold is per team), could make crashes a channel out of the hidden set. The run
that crashed ends ``failed`` / ``infra_error`` and stays charged (a hidden run happened); the
maintainers are alerted (`server.worker.endings`). A held team may still submit: its runs wait queued,
charged as usual, each with a fixed note on its timeline (`HELD_NOTE`); the worker's lease query
skips them (`server.worker.queue.lease_next`). Runs already running when the hold starts finish.

Maintainers hold or release a team with ``csawm admin hold-team`` / ``release-team`` or
``PUT`` / ``DELETE /api/v1/admin/teams/{name}/hold``; every hold and release is in the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.core import audit
from server.core.errors import Conflict
from server.models import RunStatus, Submission, Team, TeamHold
from server.runs.transitions import note_event

#: What a submitter sees on a held run's timeline: fixed, nothing about why.
HELD_NOTE = (
    "held: the maintainers review this team's runs before more of them start; this run waits in the queue"
)
RELEASED_NOTE = "released: the maintainers let this team's runs start again"


def hold(
    session: Session,
    team_id: int,
    *,
    reason: str,
    actor: str,
    actor_user_id: int | None = None,
    submission_id: int | None = None,
) -> TeamHold:
    """Hold the team (audited) and note it on its queued runs; a team already held stays as it is."""
    existing = session.get(TeamHold, team_id)
    if existing is not None:
        return existing
    row = TeamHold(team_id=team_id, reason=reason, submission_id=submission_id, held_by=actor)
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="hold_team",
        target_type="team",
        target_id=team_id,
        reason=reason,
        detail={"submission_id": submission_id},
    )
    _note_queued(session, team_id, HELD_NOTE, detail=reason)
    return row


def release(session: Session, team_id: int, *, actor: str, actor_user_id: int | None = None) -> TeamHold:
    """Release the team's hold (audited); its queued runs are leased again, in their order."""
    row = session.get(TeamHold, team_id)
    if row is None:
        raise Conflict("the team is not held")
    session.delete(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="release_team",
        target_type="team",
        target_id=team_id,
        detail={"held_since": row.created_at.isoformat(), "held_for": row.reason},
    )
    _note_queued(session, team_id, RELEASED_NOTE, detail=None)
    return row


def note_if_held(session: Session, sub: Submission) -> None:
    """A run queued while its team is held gets the held note at once."""
    if session.get(TeamHold, sub.team_id) is not None:
        note_event(session, sub.id, RunStatus.QUEUED, HELD_NOTE)
        session.flush()


def listed(session: Session) -> Sequence[tuple[TeamHold, str]]:
    """Every hold with its team's name, oldest first."""
    rows = session.execute(
        select(TeamHold, Team.name).join(Team, Team.id == TeamHold.team_id).order_by(TeamHold.created_at)
    ).all()
    return [(hold_, str(name)) for hold_, name in rows]


def _note_queued(session: Session, team_id: int, note: str, *, detail: str | None) -> None:
    queued = session.scalars(
        select(Submission.id).where(Submission.team_id == team_id, Submission.status == RunStatus.QUEUED)
    ).all()
    for sub_id in queued:
        note_event(session, sub_id, RunStatus.QUEUED, note, detail)
    session.flush()
