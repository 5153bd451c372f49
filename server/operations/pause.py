"""The maintenance pause: stop intake, runs or both without stopping the server.

The pause is one database row (`server.models.Pause`), so it survives a restart and every process
reads the same one. The rule:

- **intake paused**: every submission is answered 503 ``paused`` with ``Retry-After`` before a
  byte of its body is read (`require_intake_open`, called first by the intake's `admit`); nothing
  is charged. An upload already streaming when the pause is set goes on: it was admitted.
- **runs paused**: no run is leased (`runs_paused`, read by the lease query in the same
  transaction); queued runs keep their place and running runs finish.

Setting and lifting the pause are audited (``pause``, ``resume``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.core import audit
from server.core.errors import BadRequest, CsawmError
from server.models import Pause

RETRY_AFTER_S = 300  # what a paused intake tells clients to wait before trying again
MAX_MESSAGE = 500


class Paused(CsawmError):
    status_code = 503
    code = "paused"


@dataclass(frozen=True)
class PauseState:
    intake: bool
    runs: bool
    message: str
    set_by: str | None = None
    set_at: datetime | None = None

    @property
    def any(self) -> bool:
        return self.intake or self.runs


NOT_PAUSED = PauseState(intake=False, runs=False, message="")


def current(session: Session) -> PauseState:
    row = session.get(Pause, 1)
    if row is None:
        return NOT_PAUSED
    return PauseState(
        intake=bool(row.intake),
        runs=bool(row.runs),
        message=row.message,
        set_by=row.set_by,
        set_at=row.set_at,
    )


def runs_paused(session: Session) -> bool:
    """True while no run may be leased (read inside the lease's transaction)."""
    return bool(session.scalar(select(Pause.runs).where(Pause.id == 1)))


def require_intake_open(session: Session) -> None:
    """503 ``paused`` with ``Retry-After`` while intake is paused (before any body is read)."""
    state = current(session)
    if state.intake:
        text = f": {state.message}" if state.message else ""
        raise Paused(
            f"submissions are paused for maintenance{text}; nothing was charged — try again later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
            paused_message=state.message,
        )


def set_pause(
    session: Session, *, intake: bool, runs: bool, message: str, actor: str, actor_user_id: int | None = None
) -> PauseState:
    """Pause intake and/or runs with a message for the banner (audited); both false lifts it."""
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE:
        raise BadRequest(f"message: at most {MAX_MESSAGE} characters")
    if not intake and not runs:
        return clear_pause(session, actor=actor, actor_user_id=actor_user_id)
    row = session.get(Pause, 1)
    if row is None:
        row = Pause(id=1, set_by=actor)
        session.add(row)
    row.intake, row.runs, row.message, row.set_by = intake, runs, message, actor
    session.flush()
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="pause",
        target_type="server",
        target_id="pause",
        reason=message or None,
        detail={"intake": intake, "runs": runs},
    )
    return current(session)


def clear_pause(session: Session, *, actor: str, actor_user_id: int | None = None) -> PauseState:
    """Lift the pause (audited; a no-op pause is still recorded, so the log shows who checked)."""
    session.execute(delete(Pause).where(Pause.id == 1))
    audit.record(
        session,
        actor=actor,
        actor_user_id=actor_user_id,
        action="resume",
        target_type="server",
        target_id="pause",
    )
    return NOT_PAUSED
