"""Selecting runs for the final ranking of a sealed phase (issue 15).

A team member selects (or unselects) one of the team's runs of a sealed phase while the phase is
open and not revealed. Any run that has not failed or been cancelled may be selected, so a team
need not wait for a queued run to finish before the close (its score stays unknown to the team
either way). At most ``max_selected`` runs per team and phase: one more is a 409 `SelectionLimit`.
After ``reveal-phase`` the phase's board ranks the selected runs only. Each select and unselect that
changes something is in the audit log (``select_run`` / ``unselect_run``, by whom, in which phase),
so the selections a team made over time can be read back after an unselect removed its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.accounts.service import lock_team
from server.clock import iso, utcnow
from server.core import audit
from server.core.errors import Conflict, Forbidden, NotFound, SelectionLimit
from server.core.principal import Principal
from server.models import Phase, PhaseSelection, RunStatus, Submission, Visibility

UNSELECTABLE = (RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True)
class SelectionState:
    submission_id: int
    phase: str
    selected: bool
    selected_ids: list[int]
    max_selected: int


def _own_run(
    session: Session, user: Principal, submission_id: int, now: datetime | None
) -> tuple[Submission, Phase]:
    """The caller's team's run (another team's is 404, as everywhere) and its phase, which must be
    sealed and still open."""
    if user.team_id is None:
        raise Forbidden("only team members select runs, and your account belongs to no team")
    sub = session.get(Submission, submission_id)
    if sub is None or sub.team_id != user.team_id:
        raise NotFound(f"submission {submission_id} not found")
    phase = session.scalar(select(Phase).where(Phase.name == sub.phase))
    if phase is None or phase.visibility != Visibility.SEALED:
        raise Conflict(
            f"submission {sub.id} is in phase {sub.phase!r}, which is not sealed: nothing to select"
        )
    now = now or utcnow()
    if phase.revealed_at is not None or (phase.closes_at is not None and phase.closes_at <= now):
        ended = phase.closes_at if phase.closes_at is not None else phase.revealed_at
        closed = iso(ended) if ended is not None else "an earlier time"
        raise Conflict(f"phase {phase.name!r} closed at {closed}: selections can no longer change")
    return sub, phase


def _selected_ids(session: Session, phase_id: int, team_id: int) -> list[int]:
    return list(
        session.scalars(
            select(PhaseSelection.submission_id)
            .where(PhaseSelection.phase_id == phase_id, PhaseSelection.team_id == team_id)
            .order_by(PhaseSelection.submission_id)
        )
    )


def select_run(
    session: Session, user: Principal, submission_id: int, *, now: datetime | None = None
) -> SelectionState:
    """Select a run (idempotent: selecting a selected run changes nothing)."""
    sub, phase = _own_run(session, user, submission_id, now)
    lock_team(session, sub.team_id)  # two concurrent selections of one team queue here
    if sub.status in UNSELECTABLE:
        raise Conflict(
            f"submission {sub.id} {sub.status.value}; only a run that did not fail can be selected"
        )
    chosen = _selected_ids(session, phase.id, sub.team_id)
    if sub.id not in chosen:
        count = len(chosen)  # the team's selections in the phase, read under its lock
        if count >= phase.max_selected:
            raise SelectionLimit(
                f"your team already selected {count} of at most {phase.max_selected} runs in phase "
                f"{phase.name!r} ({', '.join(map(str, chosen))}); unselect one first",
                selected=chosen,
                max_selected=phase.max_selected,
            )
        session.add(
            PhaseSelection(phase_id=phase.id, team_id=sub.team_id, submission_id=sub.id, user_id=user.user_id)
        )
        session.flush()
        _audit(session, user, "select_run", sub, phase)
        chosen = _selected_ids(session, phase.id, sub.team_id)
    return SelectionState(sub.id, phase.name, True, chosen, phase.max_selected)


def unselect_run(
    session: Session, user: Principal, submission_id: int, *, now: datetime | None = None
) -> SelectionState:
    """Unselect a run (idempotent)."""
    sub, phase = _own_run(session, user, submission_id, now)
    row = session.scalar(select(PhaseSelection).where(PhaseSelection.submission_id == sub.id))
    if row is not None:
        session.delete(row)
        session.flush()
        _audit(session, user, "unselect_run", sub, phase)
    chosen = _selected_ids(session, phase.id, sub.team_id)
    return SelectionState(sub.id, phase.name, False, chosen, phase.max_selected)


def _audit(session: Session, user: Principal, action: str, sub: Submission, phase: Phase) -> None:
    audit.record(
        session, actor=user.audit_name, actor_user_id=user.user_id, action=action,
        target_type="submission", target_id=sub.id, detail={"phase": phase.name, "team_id": sub.team_id},
    )  # fmt: skip
